"""The ipxe boot interface: its DHCP option set, its iPXE scripts (the generic
``boot.ipxe`` and its per-MAC chain to a node's script), and that it leaves nothing
behind — with the recording fake network client and a real directory."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urljoin

import pytest
from pydantic import ValidationError

from metalnic.baremetal.drivers.base import (
    DriverConfigError,
    DriverError,
    NetworkPhase,
    NodeContext,
    PortInfo,
)
from metalnic.baremetal.drivers.boot import scripts
from metalnic.baremetal.drivers.boot.ipxe import BootTree, IpxeBoot, IpxeConfig
from metalnic.baremetal.drivers.network.client import (
    DhcpOption,
    NetworkObjectNotFound,
    NetworkPort,
    more_dhcpv6_addresses,
)
from metalnic.server import ipxe_config
from metalnic.settings import Settings
from tests.unit.test_phase_port_security import RecordingClient

NODE = "1be26c0b-03f2-4d2d-ae87-c02d7f33c123"
MAC1, MAC2 = "52:54:00:12:34:56", "52:54:00:ab:cd:ef"
HTTP = "http://192.0.2.10:6385/boot"
API = "http://192.0.2.10:6385"
PROV = NetworkPhase.PROVISIONING


def files(tftp: str = "192.0.2.10") -> scripts.BootFiles:
    return scripts.BootFiles(
        http_url=HTTP, api_url=API, tftp_server=tftp, kernel_append_params="console=ttyS0"
    )


def config(root: Path, tftp: str = "192.0.2.10") -> IpxeConfig:
    images = {
        "deploy": (root / "vmlinuz", root / "initrd"),
        "rescue": (root / "rescue-vmlinuz", root / "rescue-initrd"),
    }
    return IpxeConfig(files(tftp), root / "httpboot", "uefi", images)


def ctx(*macs: str, **instance_info: object) -> NodeContext:
    ports = tuple(
        PortInfo(f"bp-{i}", mac, True, {"hostname": "nic1", "port_id": f"p{i}"})
        for i, mac in enumerate(macs or (MAC1,))
    )
    return NodeContext(
        NODE,
        None,
        "fake-hardware",
        {"ipmi_password": "bmc-secret-pw", "redfish_password": "bmc-secret-pw"},
        instance_info=dict(instance_info),
        driver_internal_info={"agent_token": "agent-secret-token"},
        ports=ports,
    )


# --- the DHCP option set -----------------------------------------------------------------


def test_options_for_ipxe_and_for_other_firmware_as_ironic_sets_them() -> None:
    got = {(o.name, o.value, o.ip_version) for o in scripts.dhcp_options(files(), "bios")}
    assert got == {
        ("tag:ipxe,67", f"{HTTP}/boot.ipxe", 4),  # iPXE: the HTTP boot script
        ("tag:!ipxe,67", "undionly.kpxe", 4),  # other firmware: the iPXE binary over TFTP
        ("66", "192.0.2.10", 4),  # TFTP server name
        ("150", "192.0.2.10", 4),  # TFTP server address
        ("server-ip-address", "192.0.2.10", 4),  # next-server (siaddr)
    }


def test_uefi_firmware_gets_the_efi_binary() -> None:
    by_name = {o.name: o.value for o in scripts.dhcp_options(files(), "uefi")}
    assert by_name["tag:!ipxe,67"] == "snponly.efi"
    assert by_name["tag:ipxe,67"] == f"{HTTP}/boot.ipxe"


def test_without_a_tftp_server_only_ipxe_clients_are_answered() -> None:
    assert scripts.dhcp_options(files(tftp=""), "bios") == [
        DhcpOption("tag:ipxe,67", f"{HTTP}/boot.ipxe", 4)
    ]


def test_removal_names_every_option_with_a_null_value() -> None:
    options = scripts.dhcp_options(files(), "uefi")
    gone = scripts.removal(options)
    assert [(o.name, o.ip_version) for o in gone] == [(o.name, o.ip_version) for o in options]
    assert all(o.value is None for o in gone)
    assert gone[0].body() == {"opt_name": "tag:ipxe,67", "opt_value": None, "ip_version": 4}


def test_ipv6_options_are_option_59_urls_as_ironic_sets_them() -> None:
    got = {(o.name, o.value, o.ip_version) for o in scripts.dhcp_options(files(), "uefi", 6)}
    assert got == {
        ("tag:ipxe6,59", f"{HTTP}/boot.ipxe", 6),  # iPXE (DHCPv6 user class iPXE)
        ("tag:!ipxe6,59", "tftp://192.0.2.10/snponly.efi", 6),  # other firmware: a URL
    }  # no next-server or TFTP server options: DHCPv6 has none
    v6_tftp = scripts.dhcp_options(files(tftp="2001:db8::10"), "bios", 6)
    assert v6_tftp[1] == DhcpOption("tag:!ipxe6,59", "tftp://[2001:db8::10]/undionly.kpxe", 6)
    assert scripts.dhcp_options(files(tftp=""), "bios", 6) == [
        DhcpOption("tag:ipxe6,59", f"{HTTP}/boot.ipxe", 6)
    ]


@pytest.mark.parametrize(
    ("instance_info", "properties", "mode"),
    [
        ({}, {}, "uefi"),
        ({}, {"capabilities": "boot_mode:bios,secure_boot:false"}, "bios"),
        ({}, {"capabilities": {"boot_mode": "bios"}}, "bios"),
        ({"deploy_boot_mode": "uefi"}, {"capabilities": "boot_mode:bios"}, "uefi"),
        ({"deploy_boot_mode": "BIOS"}, {}, "bios"),
    ],
)
def test_boot_mode_precedence(
    instance_info: dict[str, object], properties: dict[str, object], mode: str
) -> None:
    assert scripts.boot_mode(instance_info, properties, "uefi") == mode


def test_a_bad_boot_mode_is_a_config_error(tmp_path: Path) -> None:
    boot = IpxeBoot(RecordingClient(), config(tmp_path))
    _touch_images(tmp_path)
    with pytest.raises(DriverConfigError, match="neither bios nor uefi"):
        boot.validate(ctx(deploy_boot_mode="coreboot"))


# --- the scripts -------------------------------------------------------------------------


def _ipxe_expand(line: str, mac: str) -> str:
    """What iPXE makes of ``${mac:hexhyp}`` / ``${netN/mac:hexhyp}`` for a NIC ``mac``."""
    hexhyp = mac.replace(":", "-")
    line = re.sub(r"\$\{net\$\{nic\}/mac:hexhyp\}", hexhyp, line)
    return line.replace("${mac:hexhyp}", hexhyp)


def _chain_targets(script: str) -> list[str]:
    return [line.split()[-2] for line in script.splitlines() if line.startswith("chain ")]


def test_boot_script_chains_the_script_of_each_nics_mac(tmp_path: Path) -> None:
    """Walk boot.ipxe's chain as iPXE would: for the booting NIC's MAC and for
    another NIC's, the relative target resolves to the node's script on disk."""
    cfg = config(tmp_path)
    boot = IpxeBoot(RecordingClient(), cfg)
    boot.prepare_ramdisk(ctx(MAC1, MAC2), PROV, ["port-1"])
    tree = BootTree(cfg.http_root)
    own = (cfg.http_root / NODE / "config").read_bytes()
    generic = scripts.boot_script()
    assert generic.startswith("#!ipxe\n")
    targets = _chain_targets(generic)
    assert len(targets) == 2  # the booting NIC, then every other NIC in turn
    for target, mac in zip(targets, (MAC1, MAC2), strict=True):
        url = urljoin(f"{HTTP}/boot.ipxe", _ipxe_expand(target, mac))
        assert url == f"{HTTP}/pxelinux.cfg/{mac.replace(':', '-')}"
        assert tree.read(Path(url.removeprefix(HTTP + "/"))) == own
    stranger = urljoin(f"{HTTP}/boot.ipxe", _ipxe_expand(targets[0], "52:54:00:00:00:99"))
    assert tree.read(Path(stranger.removeprefix(HTTP + "/"))) is None
    assert "exit 1" in generic  # no script: back to the firmware's next boot device


@pytest.mark.parametrize(
    ("phase", "ramdisk"),
    [
        (NetworkPhase.PROVISIONING, "deploy"),
        (NetworkPhase.CLEANING, "deploy"),
        (NetworkPhase.RESCUING, "rescue"),
    ],
)
def test_node_script_boots_the_phases_ramdisk(phase: NetworkPhase, ramdisk: str) -> None:
    text = scripts.node_script(files(), NODE, phase)
    lines = text.splitlines()
    assert lines[0] == "#!ipxe"
    kernel = next(line for line in lines if line.startswith("kernel "))
    initrd = next(line for line in lines if line.startswith("initrd "))
    assert f" {HTTP}/images/{ramdisk}/kernel " in kernel
    assert f"ipa-api-url={API}" in kernel.split()
    assert "BOOTIF=${mac}" in kernel.split()
    assert "initrd=initramfs" in kernel.split() and "console=ttyS0" in kernel.split()
    assert f" {HTTP}/images/{ramdisk}/initramfs " in initrd
    assert "boot || goto again" in lines
    assert "iseq ${tries} 5 && goto give_up ||" in lines  # bounded retries


# --- prepare and clean up ------------------------------------------------------------------


def _touch_images(root: Path) -> None:
    for name in ("vmlinuz", "initrd", "rescue-vmlinuz", "rescue-initrd"):
        (root / name).write_bytes(b"x")


def test_prepare_sets_the_options_on_every_phase_port_and_writes_the_script(
    tmp_path: Path,
) -> None:
    client = RecordingClient()
    cfg = config(tmp_path)
    IpxeBoot(client, cfg).prepare_ramdisk(ctx(MAC1, MAC2), PROV, ["port-1", "port-2"])
    expected = {(o.name, 4): o.value for o in scripts.dhcp_options(cfg.files, "uefi")}
    assert client.dhcp == {"port-1": expected, "port-2": expected}
    script = (cfg.http_root / NODE / "config").read_text()
    assert script == scripts.node_script(cfg.files, NODE, PROV)
    links = sorted(p.name for p in (cfg.http_root / "pxelinux.cfg").iterdir())
    assert links == ["52-54-00-12-34-56", "52-54-00-ab-cd-ef"]


def test_the_script_carries_no_secret(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    IpxeBoot(RecordingClient(), cfg).prepare_ramdisk(ctx(), PROV, ["port-1"])
    script = (cfg.http_root / NODE / "config").read_text()
    assert "bmc-secret-pw" not in script and "agent-secret-token" not in script
    assert "token" not in script.lower() and "password" not in script.lower()


def test_clean_up_leaves_nothing_behind(tmp_path: Path) -> None:
    client = RecordingClient()
    cfg = config(tmp_path)
    boot = IpxeBoot(client, cfg)
    boot.prepare_ramdisk(ctx(MAC1, MAC2), PROV, ["port-1"])
    # The node lost a port meanwhile: its MAC's link still goes (found by its target).
    boot.clean_up_ramdisk(ctx(MAC1), PROV, ["port-1"])
    assert client.dhcp == {"port-1": {}}
    assert not (cfg.http_root / NODE).exists()
    assert list((cfg.http_root / "pxelinux.cfg").iterdir()) == []


def test_clean_up_is_idempotent_and_keeps_other_nodes(tmp_path: Path) -> None:
    client = RecordingClient()
    cfg = config(tmp_path)
    boot = IpxeBoot(client, cfg)
    other = NodeContext(
        "0c6d3b0e-7a7e-4f3a-9a55-2b5a7f1f0001",
        None,
        "fake-hardware",
        {},
        ports=(PortInfo("bp-9", MAC2, True, {}),),
    )
    boot.prepare_ramdisk(other, PROV, ["port-9"])
    boot.clean_up_ramdisk(ctx(), PROV, [])  # never prepared
    boot.clean_up_ramdisk(ctx(), PROV, [])
    assert (cfg.http_root / other.uuid / "config").is_file()
    assert (cfg.http_root / "pxelinux.cfg" / "52-54-00-ab-cd-ef").exists()
    assert client.dhcp["port-9"]


class FailingClient(RecordingClient):
    def __init__(self, fail_on: str, error: DriverError) -> None:
        super().__init__()
        self.fail_on, self.error = fail_on, error

    def set_dhcp_options(self, port_id: str, options: Sequence[DhcpOption]) -> None:
        if port_id == self.fail_on:
            raise self.error
        super().set_dhcp_options(port_id, options)


def test_a_failed_prepare_rolls_back_what_it_did(tmp_path: Path) -> None:
    client = FailingClient("port-2", DriverError("network service refused"))
    cfg = config(tmp_path)
    with pytest.raises(DriverError, match="refused"):
        IpxeBoot(client, cfg).prepare_ramdisk(ctx(), PROV, ["port-1", "port-2"])
    assert client.dhcp == {"port-1": {}}
    assert not (cfg.http_root / NODE).exists()
    assert list((cfg.http_root / "pxelinux.cfg").iterdir()) == []


def test_clean_up_of_a_deleted_port_is_fine_other_errors_are_raised_after_the_files(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    IpxeBoot(RecordingClient(), cfg).prepare_ramdisk(ctx(), PROV, ["port-1"])
    gone = FailingClient("port-1", NetworkObjectNotFound("no such port"))
    IpxeBoot(gone, cfg).clean_up_ramdisk(ctx(), PROV, ["port-1"])
    IpxeBoot(RecordingClient(), cfg).prepare_ramdisk(ctx(), PROV, ["port-1"])
    down = FailingClient("port-1", DriverError("network service unreachable"))
    with pytest.raises(DriverError, match="port port-1: network service unreachable"):
        IpxeBoot(down, cfg).clean_up_ramdisk(ctx(), PROV, ["port-1"])
    assert not (cfg.http_root / NODE).exists()  # the script went all the same


def test_prepare_without_phase_ports_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="no network port of node .* provisioning network"):
        IpxeBoot(RecordingClient(), config(tmp_path)).prepare_ramdisk(ctx(), PROV, [])
    assert not (tmp_path / "httpboot" / NODE).exists()


def test_validate_names_what_is_missing(tmp_path: Path) -> None:
    unset = IpxeConfig(scripts.BootFiles(http_url="", api_url=""), tmp_path)
    with pytest.raises(DriverConfigError, match="http_boot_url"):
        IpxeBoot(RecordingClient(), unset).validate(ctx())
    with pytest.raises(DriverConfigError, match="no network service"):
        IpxeBoot(None, config(tmp_path)).validate(ctx())
    no_images = IpxeConfig(files(), tmp_path, images={"deploy": (tmp_path / "k", None)})
    with pytest.raises(DriverConfigError, match="deploy ramdisk's initramfs"):
        IpxeBoot(RecordingClient(), no_images).validate(ctx())
    unbootable = NodeContext(
        NODE, None, "fake-hardware", {}, ports=(PortInfo("p", MAC1, False, {}, pxe_enabled=False),)
    )
    with pytest.raises(DriverConfigError, match="no PXE-enabled port"):
        IpxeBoot(RecordingClient(), config(tmp_path)).validate(unbootable)
    IpxeBoot(RecordingClient(), config(tmp_path)).validate(ctx())


def test_the_tree_follows_no_link_out_of_its_root(tmp_path: Path) -> None:
    root = tmp_path / "httpboot"
    (root / "pxelinux.cfg").mkdir(parents=True)
    (tmp_path / "secret").write_text("outside")
    (root / "pxelinux.cfg" / "52-54-00-12-34-56").symlink_to(tmp_path / "secret")
    tree = BootTree(root)
    assert tree.read(Path("pxelinux.cfg/52-54-00-12-34-56")) is None
    assert tree.read(Path("../secret")) is None
    with pytest.raises(Exception, match="UUID"):
        tree.script("../../etc")


# --- settings ----------------------------------------------------------------------------


def test_settings_derive_the_api_url_and_rescue_images(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        http_boot_url="http://192.0.2.10:6385/boot/",
        deploy_kernel=tmp_path / "k",
        deploy_ramdisk=tmp_path / "r",
    )
    cfg = ipxe_config(settings)
    assert cfg.files.http_url == HTTP  # no trailing slash: the URLs are joined with one
    assert cfg.files.api_url == API  # the boot URL's origin unless ramdisk_api_url is set
    assert cfg.http_root == tmp_path / "httpboot"
    assert cfg.image("rescue", "kernel") == tmp_path / "k"  # rescue defaults to deploy
    assert cfg.image("rescue", "initramfs") == tmp_path / "r"
    assert cfg.image("deploy", "vmlinuz") is None
    own = Settings(state_dir=tmp_path, http_boot_url=HTTP, ramdisk_api_url="https://api:6385")
    assert ipxe_config(own).files.api_url == "https://api:6385"


@pytest.mark.parametrize(
    "bad",
    [
        {"http_boot_url": "tftp://192.0.2.1/boot"},
        {"http_boot_url": "http://192.0.2.1/boot ipa-api-url=http://evil"},
        {"ramdisk_api_url": "192.0.2.1:6385"},
        {"tftp_server": "tftp.example"},  # next-server is an address
        {"kernel_append_params": "console=ttyS0\nshell"},
    ],
)
def test_settings_refuse_what_would_break_a_script_or_an_option(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    with pytest.raises(ValidationError):
        Settings(state_dir=tmp_path, **bad)  # type: ignore[arg-type]


class VersionedClient(RecordingClient):
    """Ports whose fixed IPs have the given IP versions."""

    def __init__(self, versions: dict[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.versions = versions

    def ports(
        self, *, ids: Sequence[str] = (), device_id: str | None = None, name_prefix: str = ""
    ) -> list[NetworkPort]:
        return [
            NetworkPort(p, "", "net", "proj", MAC1, NODE, "baremetal:none", "nic1", "ACTIVE",
                        "ovs", "", False, (), self.versions[p])
            for p in ids if p in self.versions
        ]  # fmt: skip


def test_prepare_sets_each_ports_options_for_the_ip_versions_of_its_addresses(
    tmp_path: Path,
) -> None:
    client = VersionedClient({"p4": (4,), "p6": (6,), "p46": (4, 6), "none": ()})
    cfg = config(tmp_path)
    IpxeBoot(client, cfg).prepare_ramdisk(ctx(), PROV, ["p4", "p6", "p46", "none"])
    v4 = {(o.name, 4): o.value for o in scripts.dhcp_options(cfg.files, "uefi")}
    v6 = {(o.name, 6): o.value for o in scripts.dhcp_options(cfg.files, "uefi", 6)}
    assert client.dhcp == {"p4": v4, "p6": v6, "p46": {**v4, **v6}, "none": v4}
    assert client.dhcp["p6"][("tag:ipxe6,59", 6)] == f"{HTTP}/boot.ipxe"
    IpxeBoot(client, cfg).clean_up_ramdisk(ctx(), PROV, ["p4", "p6", "p46", "none"])
    assert client.dhcp == {"p4": {}, "p6": {}, "p46": {}, "none": {}}


def test_a_new_port_gets_more_addresses_on_its_dhcpv6_stateful_subnets_only() -> None:
    fixed = [("v4", "10.0.0.5"), ("v6s", "2001:db8::5"), ("slaac", "2001:db8:1::5")]
    assert more_dhcpv6_addresses(fixed, ["v6s"], 3) == [
        {"subnet_id": "v4", "ip_address": "10.0.0.5"},
        {"subnet_id": "v6s", "ip_address": "2001:db8::5"},
        {"subnet_id": "slaac", "ip_address": "2001:db8:1::5"},
        {"subnet_id": "v6s"},
        {"subnet_id": "v6s"},
    ]
    assert more_dhcpv6_addresses(fixed, [], 4) is None  # no stateful subnet: no update
    assert more_dhcpv6_addresses(fixed, ["v6s"], 1) is None
    assert more_dhcpv6_addresses([("v4", "10.0.0.5")], ["v6s"], 4) is None  # not on it
