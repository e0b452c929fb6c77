"""What the ``ipxe`` boot interface tells a booting host, as pure functions.

* ``dhcp_options``: the ``extra_dhcp_opts`` of a phase port, Ironic's set for
  iPXE behind a Neutron (dnsmasq) DHCP server.  Firmware that is not iPXE
  (dnsmasq has not tagged it ``ipxe``) is told to fetch an iPXE binary over
  TFTP (``tag:!ipxe,67``, the TFTP server as options 66 and 150 and as the
  reply's next-server, ``server-ip-address``); iPXE itself (``tag:ipxe,67``)
  is told the HTTP URL of the generic ``boot.ipxe``.  Without a TFTP server
  only iPXE clients are answered (e.g. QEMU's NIC ROMs, which are iPXE).
* On an IPv6 phase port (``ip_version`` 6) the boot file is DHCPv6 option 59
  (``bootfile-url``), always a URL, as Ironic sets it: iPXE (tagged ``ipxe6``
  by its DHCPv6 user class, see ``metalnic.dhcp.render``) gets the HTTP URL of
  ``boot.ipxe``, other firmware ``tftp://[server]/<binary>``; DHCPv6 has no
  next-server or TFTP server options.
* ``boot_script``: the generic ``boot.ipxe``; it chains
  ``pxelinux.cfg/<MAC>`` (the MAC with hyphens, iPXE's ``${mac:hexhyp}``) for
  the booting NIC, then for every other NIC, and gives up when none has a
  script: only a node in a phase that boots a ramdisk has one.
* ``node_script``: the per-node script: fetch the phase's kernel and initramfs
  over HTTP (with retries) and boot them with the parameters the ramdisk agent
  needs — the bare-metal API's URL (``ipa-api-url``) and the booting MAC
  (``BOOTIF``).  No secret goes in it: the agent gets its one-time token from
  the lookup (``GET /v1/lookup``), and BMC credentials never leave the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metalnic.baremetal.drivers.base import NetworkPhase
from metalnic.baremetal.drivers.network.client import DhcpOption

# DHCP option numbers (RFC 2132, RFC 5859) as dnsmasq takes them.
TFTP_SERVER_NAME = "66"
BOOTFILE_NAME = "67"
TFTP_SERVER_ADDRESS = "150"
BOOTFILE_URL = "59"  # DHCPv6 (RFC 5970)
NEXT_SERVER = "server-ip-address"  # dnsmasq's name for the reply's siaddr
BOOT_SCRIPT = "boot.ipxe"
MAC_DIR = "pxelinux.cfg"
NODE_SCRIPT = "config"
BOOT_MODES = ("bios", "uefi")
# Which ramdisk each phase boots (Ironic: deploy_* for deploy and clean, rescue_*).
RAMDISK_OF = {
    NetworkPhase.PROVISIONING: "deploy",
    NetworkPhase.CLEANING: "deploy",
    NetworkPhase.RESCUING: "rescue",
}
KERNEL, INITRAMFS = "kernel", "initramfs"


@dataclass(frozen=True)
class BootFiles:
    """The values that shape the DHCP options and scripts (from settings)."""

    http_url: str  # where this server's /boot is reached, without a trailing slash
    api_url: str  # the bare-metal API as the ramdisk reaches it
    tftp_server: str = ""  # next-server for firmware that is not iPXE; "" = none
    bios_bootfile: str = "undionly.kpxe"
    uefi_bootfile: str = "snponly.efi"
    kernel_append_params: str = ""

    def image_url(self, ramdisk: str, part: str) -> str:
        return f"{self.http_url}/images/{ramdisk}/{part}"


def boot_mode(instance_info: Mapping[str, Any], properties: Mapping[str, Any], default: str) -> str:
    """``bios`` or ``uefi``: ``instance_info.deploy_boot_mode``, else the node's
    ``boot_mode`` capability (``"boot_mode:uefi,…"`` or an object), else ``default``."""
    chosen = instance_info.get("deploy_boot_mode")
    if chosen is None:
        capabilities = properties.get("capabilities") or {}
        if isinstance(capabilities, str):
            pairs = (item.split(":", 1) for item in capabilities.split(",") if ":" in item)
            capabilities = {k.strip(): v.strip() for k, v in pairs}
        if isinstance(capabilities, Mapping):
            chosen = capabilities.get("boot_mode")
    mode = str(chosen or default).lower()
    if mode not in BOOT_MODES:
        raise ValueError(f"boot mode {mode!r} is neither bios nor uefi")
    return mode


def dhcp_options(files: BootFiles, mode: str, ip_version: int = 4) -> list[DhcpOption]:
    """The phase port's ``extra_dhcp_opts`` for a host booting in ``mode`` over DHCP
    (``ip_version`` 4) or DHCPv6 (6)."""
    binary = files.uefi_bootfile if mode == "uefi" else files.bios_bootfile
    if ip_version == 6:
        script = f"{files.http_url}/{BOOT_SCRIPT}"
        options = [DhcpOption(f"tag:ipxe6,{BOOTFILE_URL}", script, 6)]
        if files.tftp_server:
            host = f"[{files.tftp_server}]" if ":" in files.tftp_server else files.tftp_server
            options.append(DhcpOption(f"tag:!ipxe6,{BOOTFILE_URL}", f"tftp://{host}/{binary}", 6))
        return options
    options = [DhcpOption(f"tag:ipxe,{BOOTFILE_NAME}", f"{files.http_url}/{BOOT_SCRIPT}")]
    if files.tftp_server:
        options += [
            DhcpOption(f"tag:!ipxe,{BOOTFILE_NAME}", binary),
            DhcpOption(TFTP_SERVER_NAME, files.tftp_server),
            DhcpOption(TFTP_SERVER_ADDRESS, files.tftp_server),
            DhcpOption(NEXT_SERVER, files.tftp_server),
        ]
    return options


def removal(options: list[DhcpOption]) -> list[DhcpOption]:
    """The update that removes ``options`` again (null values, Neutron's way)."""
    return [DhcpOption(o.name, None, o.ip_version) for o in options]


def mac_file(mac: str) -> str:
    """The name under ``pxelinux.cfg/`` iPXE asks for: ``${mac:hexhyp}``."""
    return mac.lower().replace(":", "-")


def boot_script() -> str:
    """The generic ``boot.ipxe`` (relative chains: they resolve against its own URL)."""
    return f"""#!ipxe
# metalnic: every host network-booting on a phase network gets this script.
# It chains the script written for the node that owns the booting NIC's MAC,
# then tries the host's other NICs.
chain --autofree {MAC_DIR}/${{mac:hexhyp}} ||
set nic:int32 0
:next_nic
isset ${{net${{nic}}/mac}} || goto no_script
chain --autofree {MAC_DIR}/${{net${{nic}}/mac:hexhyp}} ||
inc nic
goto next_nic
:no_script
echo metalnic: no boot script for this host (${{mac}}): no node in a ramdisk phase owns it
sleep 5
exit 1
"""


def node_script(
    files: BootFiles,
    node: str,
    phase: NetworkPhase,
    extra: Sequence[str] = (),
    tries: int = 5,
) -> str:
    """The script of ``node`` while it boots ``phase``'s ramdisk (absolute URLs: it is
    reached through ``pxelinux.cfg/<MAC>`` as well as its own path), ``extra`` added to
    the kernel command line (the deploy interface's ``ramdisk_params``)."""
    ramdisk = RAMDISK_OF[phase]
    for param in extra:
        if not param or any(c.isspace() or c in "${}" for c in param):
            raise ValueError(f"kernel parameter {param!r}: no spaces or iPXE expansions")
    params = " ".join(
        p
        for p in (
            files.kernel_append_params,
            f"initrd={INITRAMFS}",
            f"ipa-api-url={files.api_url}",
            "BOOTIF=${mac}",
            *extra,
        )
        if p
    )
    return f"""#!ipxe
# metalnic: node {node} boots the {ramdisk} ramdisk on the {phase} network.
# Written by the conductor; removed when the node leaves that network.
set tries:int32 0
:fetch
imgfree
kernel --name {KERNEL} {files.image_url(ramdisk, KERNEL)} {params} || goto again
initrd --name {INITRAMFS} {files.image_url(ramdisk, INITRAMFS)} || goto again
boot || goto again
:again
inc tries
iseq ${{tries}} {tries} && goto give_up ||
echo metalnic: fetching the {ramdisk} ramdisk failed (attempt ${{tries}} of {tries}); again in 3 s
sleep 3
goto fetch
:give_up
echo metalnic: the {ramdisk} ramdisk could not be fetched; the conductor's timeout fails the node
exit 1
"""
