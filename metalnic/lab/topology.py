"""The lab's data centre: smart NICs (OVS in a namespace each), a VLAN-trunking fabric
switch, and hosts (namespaces, or VMs on taps) wired to their NIC's port B.

Every name starts with the lab's prefix and everything made is recorded in
``<dir>/lab.json`` first, so ``down`` removes exactly this lab — also after a
crash — and nothing else (another lab or test run has another prefix)::

    host netns <p>-hN  [<p>-hNa] ─veth─ [<p>-hNb]  in NIC netns <p>-<nic>, on br-int (by the agent)
    or a VM host: qemu in NIC netns <p>-<nic>, its NIC's backend the persistent tap [<p>-hNb]
    NIC netns <p>-<nic>: br-int, br-phys (netdev, fail_mode=secure), port C [<p>-<i>c] on br-phys
    fabric netns <p>-fab: br-fab, a trunk port [<p>-<i>f] per NIC
    DHCP node netns <p>-dhcp: br-dhcp (netdev, NORMAL), uplink [<p>-dc] ─veth─ [<p>-df]
        trunk on br-fab; the DHCP agent adds one namespace <p>-dhcp-<net8> per network
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from metalnic.dhcp import dnsmasq
from metalnic.dhcp.render import Files
from metalnic.lab import netns, sshd
from metalnic.lab.ovs import OvsInstance


@dataclass
class HostSpec:
    name: str
    nic: str
    mac: str
    ip: str | None  # CIDR; None: the host simulator configures it
    port_b: str
    port_a: str
    kind: str = "netns"  # or "vm": port B is a tap, port A is inside the VM


@dataclass
class LabState:
    prefix: str
    nics: list[str] = field(default_factory=list)
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    fabric: bool = False
    dhcp: bool = False
    management: dict[str, str] = field(default_factory=dict)  # remote NIC → its address


class Lab:
    def __init__(self, prefix: str, directory: Path) -> None:
        if not prefix.isalnum() or len(prefix) > 6:
            raise ValueError("the lab prefix must be 1-6 letters or digits (interface names ≤ 15)")
        self.prefix, self.dir = prefix, directory
        self.state = LabState(prefix)
        self.dir.mkdir(parents=True, exist_ok=True)

    # --- names ------------------------------------------------------------------------

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def ovs(self, name: str) -> OvsInstance:
        return OvsInstance(name, self.ns(name), self.dir / name)

    def _save(self) -> None:
        doc = asdict(self.state)
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.dir / "lab.json")

    # --- building ---------------------------------------------------------------------

    def add_fabric(self, trunks: list[int]) -> OvsInstance:
        self.state.fabric = True
        self._save()
        netns.add(self.ns("fab"))
        fab = self.ovs("fab")
        fab.start()
        fab.vsctl("add-br", "br-fab", "--", "set", "Bridge", "br-fab", "datapath_type=netdev")
        self.trunks = trunks
        return fab

    def uplink(self, nic: str) -> str:
        """The NIC's port C (in its namespace), facing the fabric."""
        return f"{self.prefix}-{self.state.nics.index(nic) + 1}c"

    def add_nic(self, name: str, uplink_trunks: list[int]) -> OvsInstance:
        """A NIC with br-int and br-phys; port C trunks into the fabric."""
        index = len(self.state.nics) + 1
        self.state.nics.append(name)
        self._save()
        ns = self.ns(name)
        netns.add(ns)
        nic = self.ovs(name)
        nic.start()
        port_c, fab_side = self.uplink(name), f"{self.prefix}-{index}f"
        netns.veth(port_c, ns, fab_side, self.ns("fab"))
        nic.vsctl(
            "--may-exist",
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=netdev",
            "fail_mode=secure",
            "--",
            "--may-exist",
            "add-br",
            "br-phys",
            "--",
            "set",
            "Bridge",
            "br-phys",
            "datapath_type=netdev",
            "fail_mode=secure",
            "--",
            "--may-exist",
            "add-port",
            "br-phys",
            port_c,
        )
        self.ovs("fab").vsctl(
            "add-port",
            "br-fab",
            fab_side,
            "vlan_mode=trunk",
            "trunks=" + ",".join(str(t) for t in uplink_trunks),
        )
        return nic

    def add_dhcp_node(self, trunks: list[int]) -> OvsInstance:
        """The network node of the DHCP agent: its own OVS with br-dhcp, whose uplink
        trunks ``trunks`` into the fabric — dnsmasq sits on each network like a host."""
        self.state.dhcp = True
        self._save()
        ns = self.ns("dhcp")
        netns.add(ns)
        node = self.ovs("dhcp")
        node.start()
        uplink, fab_side = f"{self.prefix}-dc", f"{self.prefix}-df"
        netns.veth(uplink, ns, fab_side, self.ns("fab"))
        node.vsctl(
            "--may-exist",
            "add-br",
            "br-dhcp",
            "--",
            "set",
            "Bridge",
            "br-dhcp",
            "datapath_type=netdev",
            "--",
            "--may-exist",
            "add-port",
            "br-dhcp",
            uplink,
        )
        self.ovs("fab").vsctl(
            "add-port",
            "br-fab",
            fab_side,
            "vlan_mode=trunk",
            "trunks=" + ",".join(str(t) for t in trunks),
        )
        return node

    def dhcp_state_dir(self) -> Path:
        """Where the lab's DHCP agent keeps dnsmasq's files (``down`` stops those)."""
        return dhcp_state_dir(self.prefix)

    def add_host(self, name: str, nic: str, mac: str, ip: str | None) -> HostSpec:
        """A host namespace whose port A faces port B on ``nic`` (B stays off br-int:
        the agent plugs it)."""
        spec = HostSpec(name, nic, mac, ip, f"{self.prefix}-{name}b", f"{self.prefix}-{name}a")
        self.state.hosts[name] = spec
        self._save()
        ns = self.ns(name)
        netns.add(ns)
        netns.veth(spec.port_a, ns, spec.port_b, self.ns(nic))
        if ip is None:
            netns.run(netns.in_ns(ns, "ip", "link", "set", spec.port_a, "address", mac))
        else:
            netns.address(ns, spec.port_a, ip, mac)
        # TCP fails silently through the userspace datapath with checksum offload on.
        netns.run(netns.in_ns(ns, "ethtool", "-K", spec.port_a, "tx", "off"))
        return spec

    def add_vm_host(self, name: str, nic: str, mac: str) -> HostSpec:
        """A host that is a VM (``metalnic.lab.vm``): port B is a persistent tap in the
        NIC's namespace (off br-int: the agent plugs it), so that it, its OVS port and
        its ofport stay while qemu processes come and go; the VM's NIC carries ``mac``."""
        port_b = f"{self.prefix}-{name}b"
        spec = HostSpec(name, nic, mac, None, port_b, port_b, "vm")
        self.state.hosts[name] = spec
        self._save()
        ns = self.ns(nic)
        netns.run(netns.in_ns(ns, "ip", "tuntap", "add", "dev", port_b, "mode", "tap"))
        netns.run(netns.in_ns(ns, "ip", "link", "set", port_b, "up"))
        return spec

    def expose_over_ssl(
        self, name: str, ovsdb_port: int, private_key: Path, certificate: Path, ca_cert: Path
    ) -> tuple[str, dict[str, str]]:
        """Make NIC ``name`` remotely manageable: OVSDB on ``ssl:127.0.0.1:<port>`` and a
        passive OpenFlow-SSL listener per bridge on a management link into its namespace.
        The NIC presents ``certificate`` and accepts clients whose certificate ``ca_cert``
        issued.  Returns (OVSDB target, bridge → OpenFlow target)."""
        index = self.state.nics.index(name) + 1
        nic = self.ovs(name)
        nic.vsctl("set-ssl", str(private_key), str(certificate), str(ca_cert))
        netns.run(
            [
                "ovs-appctl",
                "-t",
                f"{nic.dir}/ovsdb-server.ctl",
                "ovsdb-server/add-remote",
                f"pssl:{ovsdb_port}:127.0.0.1",
            ]
        )
        root_ip, nic_ip = management_link(self.prefix, index)
        self.state.management[name] = nic_ip
        self._save()
        outside, inside = f"{self.prefix}-{index}m", f"{self.prefix}-{index}mi"
        netns.veth(outside, None, inside, self.ns(name))
        netns.address(None, outside, f"{root_ip}/30")
        netns.address(self.ns(name), inside, f"{nic_ip}/30")
        targets: dict[str, str] = {}
        for offset, bridge in enumerate(("br-int", "br-phys")):
            port = 6653 + offset
            # Passive listener, out of band: adding it leaves the bridge's flows alone
            # (an *active* controller would flush them).
            nic.vsctl(
                "set-controller",
                bridge,
                f"pssl:{port}:{nic_ip}",
                "--",
                "set",
                "Controller",
                bridge,
                "connection_mode=out-of-band",
                "--",
                "set",
                "Bridge",
                bridge,
                "other_config:disable-in-band=true",
            )
            targets[bridge] = f"ssl:{nic_ip}:{port}"
        return f"ssl:127.0.0.1:{ovsdb_port}", targets

    def serve_ssh(
        self, name: str, host_key: Path, authorized_keys: Path, port: int = 22
    ) -> tuple[str, int, Path]:
        """sshd for remote NIC ``name`` (after ``expose_over_ssl``) on its management
        address, presenting ``host_key``, letting in the keys in ``authorized_keys``
        (``lab.sshd``).  Returns (address, port, the boot id file it serves)."""
        address = self.state.management[name]
        boot_id = sshd.start(self.ns(name), self.ovs(name).dir, address, port, host_key,
                             authorized_keys)  # fmt: skip
        return address, port, boot_id

    # --- tearing down -----------------------------------------------------------------

    def down(self) -> None:
        down(self.prefix, self.dir)


def management_link(prefix: str, index: int) -> tuple[str, str]:
    """(root side, NIC side) of a /30 in 169.254.0.0/16 that no address in the root
    namespace overlaps.  The root side is shared by every lab on the machine: with
    ``169.254.<index>.0/30`` for every lab, a demo's nic4 and a test run's nic4 had the
    same route, and one lab's agent reached the other's NIC (an SSL "Protocol error").
    The search starts at a block picked from the prefix, so labs rarely even probe alike."""
    taken = [
        ipaddress.ip_interface(word).network
        for line in netns.run(["ip", "-o", "-4", "addr", "show"]).splitlines()
        for word in line.split()[3:4]
    ]
    first, count = 64, 16384 - 128  # /30 blocks, leaving out 169.254.0.0/24 and .255.0/24
    start = zlib.crc32(prefix.encode()) % count
    for step in range(count):
        block = first + (start + index * 7 + step) % count
        net = ipaddress.ip_network(f"169.254.{block // 64}.{block % 64 * 4}/30")
        if not any(net.overlaps(other) for other in taken):
            hosts = list(net.hosts())
            return str(hosts[0]), str(hosts[1])
    raise netns.LabError("no free /30 left in 169.254.0.0/16")


DHCP_STATE_ROOT = Path("/run/metalnic-lab")


def dhcp_state_dir(prefix: str) -> Path:
    """The lab's DHCP state directory: outside the lab's directory, because dnsmasq
    rereads its files as user nobody and a lab directory may sit in a private (0700)
    tree — a test's temporary directory, an operator's home."""
    return DHCP_STATE_ROOT / f"{prefix}-dhcp"


def down(prefix: str, directory: Path) -> None:
    """Remove every OVS instance under ``directory`` and every namespace named ``prefix-*``
    (the DHCP agent's dnsmasq processes first: a process keeps its namespace alive)."""
    for pidfile in sorted(dhcp_state_dir(prefix).glob("*/pid")):
        dnsmasq.stop(Files(pidfile.parent))
    if directory.exists():
        for child in directory.iterdir():
            sshd.stop(child)  # a remote NIC's SSH server (by its pid)
            if (child / "conf.db").exists():
                OvsInstance(child.name, f"{prefix}-{child.name}", child).stop()
    for ns in netns.list_ns(f"{prefix}-"):
        netns.delete(ns)
    for link in netns.run(["ip", "-o", "link", "show"], check=False).splitlines():
        name = link.split(":")[1].strip().split("@")[0] if ":" in link else ""
        if name.startswith(f"{prefix}-"):  # root ends of management links
            netns.run(["ip", "link", "del", name], check=False)
    shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(dhcp_state_dir(prefix), ignore_errors=True)
