"""IP anti-spoofing of the smart NIC agent on real Open vSwitch, checked with real packets.

The agent's NIC code (``metalnic.agent.nic.Nic``: observe → plan → apply) is driven
with desired states written here — fixed IPs, allowed address pairs, DHCP servers —
as the server will send them once IPAM and the DHCP agent fill them.

Lab: NICs nic1 and nic2 (own ovsdb-server + ovs-vswitchd, userspace datapath), a
fabric, one VLAN network.  On nic1: h1 (the victim and DHCP client), h2 (the
spoofer, with address pairs), hd (the network's DHCP port, dnsmasq); on nic2: h3
(a remote peer).  Every attack is a real packet (ping from an added address,
scapy-crafted frames, ARP, an IPv6 NA, a rogue dnsmasq), shown to reach nobody by
capture on the other hosts and by the victim not getting the answer; the same
checks show the legitimate traffic passing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metalnic.agent.nic import Nic, NicConfig, Pass
from metalnic.agent.ovs import Endpoint, Ovs
from metalnic.contract.agent import DesiredState
from metalnic.lab import netns
from metalnic.lab.capture import Capture
from metalnic.lab.topology import Lab
from tests.ovslab import new_lab, ping, require_ovs, require_root_tools, wait_until

scapy_all = pytest.importorskip("scapy.all")

NIC_OF = {"h1": "nic1", "h2": "nic1", "hd": "nic1", "h3": "nic2"}
MACS = {"h1": "52:54:00:81:00:01", "h2": "52:54:00:81:00:02", "hd": "52:54:00:81:00:fe",
        "h3": "52:54:00:81:00:03"}  # fmt: skip
IPS = {"h1": "10.81.0.1", "h2": "10.81.0.2", "hd": "10.81.0.254", "h3": "10.81.0.3"}
V6 = {"h1": "2001:db8:81::1", "h2": "2001:db8:81::2", "h3": "2001:db8:81::3"}
PAIR_CIDR = "10.81.0.64/28"  # h2 may use any address of it, with its own MAC
PAIR_IP, PAIR_MAC = "10.81.0.30", "02:81:00:00:00:30"  # … and this one with this MAC
SEGMENT = 181
FABRIC_DHCP = ("fd", "52:54:00:81:00:fd", "10.81.0.253")  # a DHCP server on the fabric
OPEN = [  # the security group lets everything through: only anti-spoofing filters
    {"direction": d, "ethertype": e} for d in ("ingress", "egress") for e in ("IPv4", "IPv6")
]


@dataclass
class World:
    lab: Lab
    nics: dict[str, Nic]
    tmp: Path
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)  # host → desired port

    def dev(self, host: str) -> str:
        if host == FABRIC_DHCP[0]:
            return f"{self.lab.prefix}-{host}a"
        return self.lab.state.hosts[host].port_a

    def ns(self, host: str) -> str:
        return self.lab.ns(host)

    def apply(self, **changes: dict[str, Any]) -> list[Pass]:
        """Each NIC reconciled to the ports (``changes``: host → fields to replace);
        each NIC's first pass."""
        passes = []
        for host, fields in changes.items():
            self.ports[host] = {**self.ports[host], **fields}
        for nic_name, nic in self.nics.items():
            ports = [p for h, p in self.ports.items() if NIC_OF[h] == nic_name]
            state = DesiredState.model_validate(
                {"host": nic_name, "revision": 1, "ports": ports,
                 "security_groups": {"open": OPEN}}
            )  # fmt: skip
            done = nic.reconcile(state)
            assert all(r.status == "ACTIVE" for r in done.results.values()), done.results
            again = nic.reconcile(state)  # reconciled: a second pass changes nothing
            assert again.flows_added == 0 and again.groups_removed == 0
            passes.append(done)
        return passes

    def sh(self, host: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(netns.in_ns(self.ns(host), *cmd), capture_output=True, text=True)
        if check:
            assert done.returncode == 0, (cmd, done.stdout, done.stderr)
        return done

    def scapy(self, host: str, code: str) -> None:
        """Run scapy ``code`` in ``host`` (``dev`` is its port A)."""
        prelude = f"from scapy.all import *\nconf.verb = 0\ndev = {self.dev(host)!r}\n"
        self.sh(host, sys.executable, "-c", prelude + code)

    def capture(self, host: str, name: str) -> Capture:
        return Capture(self.ns(host), self.dev(host), self.tmp / f"{name}-{host}.pcap").start()


def port(host: str, world_lab: Lab, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"port-{host}",
        "mac_address": MACS[host],
        "network_id": "net-1",
        "network_type": "vlan",
        "physical_network": "physnet1",
        "segmentation_id": SEGMENT,
        "device_id": f"node-{host}",
        "local_link_information": [
            {"port_id": world_lab.state.hosts[host].port_b, "hostname": NIC_OF[host]}
        ],
        "security_groups": ["open"],
        "dhcp_servers": [{"mac_address": MACS["hd"], "ip_addresses": [IPS["hd"]]}],
        **extra,
    }


def fixed(*addresses: str) -> list[dict[str, str]]:
    return [{"subnet_id": "v6" if ":" in a else "v4", "ip_address": a} for a in addresses]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_ovs()
    require_root_tools(("arping", "busybox"), "iputils-arping, busybox-static")
    tmp = tmp_path_factory.mktemp("antispoof")
    lab = new_lab("sp")
    nics: dict[str, Nic] = {}
    try:
        lab.add_fabric([])
        for nic in ("nic1", "nic2"):
            lab.add_nic(nic, [SEGMENT])
        for host, nic in NIC_OF.items():
            lab.add_host(host, nic, MACS[host], f"{IPS[host]}/24")
        # A namespace on the fabric itself, in the network's VLAN: where a DHCP agent's
        # dnsmasq is reached "like any host", behind the NICs' uplinks.
        name, mac, ip = FABRIC_DHCP
        inside, outside = f"{lab.prefix}-{name}a", f"{lab.prefix}-{name}b"
        netns.add(lab.ns(name))  # named <prefix>-…: lab.down removes it
        netns.veth(inside, lab.ns(name), outside, lab.ns("fab"))
        netns.address(lab.ns(name), inside, f"{ip}/24", mac)
        netns.run(netns.in_ns(lab.ns(name), "ethtool", "-K", inside, "tx", "off"))
        lab.ovs("fab").vsctl("add-port", "br-fab", outside, f"tag={SEGMENT}")
        for nic in ("nic1", "nic2"):
            ovs = lab.ovs(nic)
            flows = {b: ovs.mgmt(b) for b in ("br-int", "br-phys")}
            config = NicConfig(host=nic, datapath_type="netdev")
            nics[nic] = Nic(Ovs(Endpoint(ovs.db, flows)), config)
        world = World(lab, nics, tmp)
        world.ports = {
            "h1": port("h1", lab, fixed_ips=fixed(IPS["h1"], V6["h1"])),
            "h2": port(
                "h2",
                lab,
                fixed_ips=fixed(IPS["h2"], V6["h2"]),
                allowed_address_pairs=[
                    {"ip_address": PAIR_CIDR, "mac_address": MACS["h2"]},
                    {"ip_address": PAIR_IP, "mac_address": PAIR_MAC},
                ],
            ),
            "hd": port("hd", lab, fixed_ips=fixed(IPS["hd"])),
            "h3": port("h3", lab, fixed_ips=fixed(IPS["h3"], V6["h3"])),
        }
        for host in V6:  # the lab turns IPv6 off in its namespaces; these hosts use it
            for key in ("all", "default", world.dev(host)):
                world.sh(host, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=0")
            world.sh(host, "ip", "-6", "addr", "add", f"{V6[host]}/64", "dev", world.dev(host))
        world.apply()
        for host in V6:  # duplicate address detection done (its NS from :: went through)
            wait_until(
                lambda h=host: "tentative" not in world.sh(h, "ip", "-6", "addr").stdout,
                10,
                f"{host}'s IPv6 addresses past DAD",
            )
        yield world
    finally:
        lab.down()


def seen_by(*captures: Capture) -> list[list[Any]]:
    """The packets each capture saw.  tcpdump gets packets from the kernel in blocks
    retired up to 1 s late (libpcap's buffer timeout; not immediate mode) and loses
    the last block when stopped: that is waited out, or the last packets sent are
    missing (and a test that nothing arrived would prove nothing)."""
    time.sleep(1.2)
    out = []
    for capture in captures:
        capture.stop()
        out.append(list(scapy_all.rdpcap(str(capture.path))) if capture.path.exists() else [])
    return out


def sources(packets: list[Any]) -> set[str]:
    layer_ip, layer_ip6 = scapy_all.IP, scapy_all.IPv6
    out = {p[layer_ip].src for p in packets if layer_ip in p}
    return out | {p[layer_ip6].src for p in packets if layer_ip6 in p}


def neighbours(world: World, host: str) -> str:
    return world.sh(host, "ip", "-4", "neigh", "show", "dev", world.dev(host)).stdout


def test_fixed_ips_and_address_pairs_flow(world: World) -> None:
    assert ping(world.lab, "h1", IPS["h3"], count=2)  # across the fabric
    assert ping(world.lab, "h1", IPS["h2"], count=2)  # on one NIC
    assert ping(world.lab, "h1", V6["h3"], count=2)
    assert ping(world.lab, "h3", V6["h2"], count=2)
    # An address of h2's CIDR pair, with its own MAC.
    world.sh("h2", "ip", "addr", "add", "10.81.0.70/24", "dev", world.dev("h2"))
    try:
        assert ping(world.lab, "h3", "10.81.0.70", count=2)
    finally:
        world.sh("h2", "ip", "addr", "del", "10.81.0.70/24", "dev", world.dev("h2"))
    # The pair with its own MAC: a macvlan on h2 with that MAC and address.
    world.sh("h2", "ip", "link", "add", "mv0", "link", world.dev("h2"), "address", PAIR_MAC,
             "type", "macvlan", "mode", "bridge")  # fmt: skip
    try:
        world.sh("h2", "ip", "addr", "add", f"{PAIR_IP}/32", "dev", "mv0")
        world.sh("h2", "ip", "link", "set", "mv0", "up")
        world.sh("h2", "ip", "route", "add", f"{IPS['h3']}/32", "dev", "mv0", "src", PAIR_IP)
        world.sh("h3", "ip", "route", "add", f"{PAIR_IP}/32", "dev", world.dev("h3"))
        assert ping(world.lab, "h3", PAIR_IP, count=3, wait=2)
        assert PAIR_MAC in neighbours(world, "h3")
    finally:
        world.sh("h3", "ip", "route", "del", f"{PAIR_IP}/32", check=False)
        world.sh("h2", "ip", "link", "del", "mv0", check=False)


def test_a_spoofed_source_ip_reaches_nobody(world: World) -> None:
    spoofed = "10.81.0.99"  # nobody's: not a fixed IP, not in a pair
    world.sh("h2", "ip", "addr", "add", f"{spoofed}/24", "dev", world.dev("h2"))
    caps = [world.capture(h, "spoof-ip") for h in ("h1", "h3")]
    try:
        assert ping(world.lab, "h2", IPS["h3"], count=2)  # its own address: passes
        spoof = world.sh("h2", "ping", "-n", "-c", "3", "-W", "1", "-I", spoofed, IPS["h3"],
                         check=False)  # fmt: skip
        # … and another host's address, crafted.
        world.scapy(
            "h2",
            f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h3']!r})/IP(src={IPS['h1']!r},"
            f" dst={IPS['h3']!r})/ICMP(), iface=dev, count=3)\n"
            f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h3']!r})/IPv6(src={V6['h1']!r},"
            f" dst={V6['h3']!r})/ICMPv6EchoRequest(), iface=dev, count=3)",
        )
    finally:
        seen = seen_by(*caps)
        world.sh("h2", "ip", "addr", "del", f"{spoofed}/24", "dev", world.dev("h2"))
    assert spoof.returncode != 0, spoof.stdout
    for packets in seen:
        assert spoofed not in sources(packets)
        assert not [p for p in packets if scapy_all.Ether in p and p.src == MACS["h2"]
                    and (IPS["h1"] in sources([p]) or V6["h1"] in sources([p]))]  # fmt: skip
    # The h2 → h3 ping from its own address passed the same capture: the test can see.
    assert IPS["h2"] in sources(seen[1])


def test_a_spoofed_mac_reaches_nobody(world: World) -> None:
    caps = [world.capture(h, "spoof-mac") for h in ("h1", "h3")]
    try:
        for src in (MACS["h1"], "52:54:00:81:00:99"):
            world.scapy(
                "h2",
                f"sendp(Ether(src={src!r}, dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc={src!r},"
                f" psrc={IPS['h2']!r}, pdst={IPS['h3']!r}), iface=dev, count=3)\n"
                f"sendp(Ether(src={src!r}, dst={MACS['h3']!r})/IP(src={IPS['h2']!r},"
                f" dst={IPS['h3']!r})/ICMP(id=4343), iface=dev, count=3)",
            )
        # The same frame with h2's own MAC passes (the capture sees it).
        world.scapy(
            "h2",
            f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h3']!r})/IP(src={IPS['h2']!r},"
            f" dst={IPS['h3']!r})/ICMP(id=4242), iface=dev, count=3)",
        )
    finally:
        seen = seen_by(*caps)
    for packets in seen:
        macs = {p[scapy_all.Ether].src for p in packets if scapy_all.Ether in p}
        assert "52:54:00:81:00:99" not in macs
        # Nothing h2 sent with h1's MAC (h1 itself sends none of these here).
        assert not [p for p in packets if p.src == MACS["h1"] and scapy_all.ARP in p
                    and p[scapy_all.ARP].psrc == IPS["h2"]]  # fmt: skip
        assert 4343 not in [p[scapy_all.ICMP].id for p in packets if scapy_all.ICMP in p]
    ids = [p[scapy_all.ICMP].id for p in seen[1] if scapy_all.ICMP in p]
    assert 4242 in ids


def test_arp_for_another_ip_reaches_nobody(world: World) -> None:
    world.sh("h3", "ip", "neigh", "flush", "dev", world.dev("h3"))
    world.sh("h1", "ip", "neigh", "flush", "dev", world.dev("h1"))
    caps = [world.capture(h, "spoof-arp") for h in ("h1", "h3")]
    try:
        # Gratuitous ARP replies claiming h1's address and an unassigned one, as h2.
        for claimed in (IPS["h1"], "10.81.0.98"):
            world.scapy(
                "h2",
                f"sendp(Ether(src={MACS['h2']!r}, dst='ff:ff:ff:ff:ff:ff')/ARP(op=2,"
                f" hwsrc={MACS['h2']!r}, psrc={claimed!r}, hwdst='ff:ff:ff:ff:ff:ff',"
                f" pdst={claimed!r}), iface=dev, count=3)\n"
                f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h3']!r})/ARP(op=2,"
                f" hwsrc={MACS['h2']!r}, psrc={claimed!r}, hwdst={MACS['h3']!r},"
                f" pdst={IPS['h3']!r}), iface=dev, count=3)",
            )
        # arping as a person would: with the address added, unsolicited (-U) and -A.
        world.sh("h2", "ip", "addr", "add", "10.81.0.97/24", "dev", world.dev("h2"))
        try:
            for flag in ("-U", "-A"):
                world.sh("h2", "arping", flag, "-c", "2", "-I", world.dev("h2"), "10.81.0.97",
                         check=False)  # fmt: skip
        finally:
            world.sh("h2", "ip", "addr", "del", "10.81.0.97/24", "dev", world.dev("h2"))
        # An ARP probe (sender 0.0.0.0) passes: h1 answers it, arping -D sees the duplicate.
        probe = world.sh("h2", "arping", "-D", "-c", "2", "-w", "3", "-I", world.dev("h2"),
                         IPS["h1"], check=False)  # fmt: skip
    finally:
        seen = seen_by(*caps)
    # 1: the address is in use — h1 replied (and it was arping that said so: `ip netns
    # exec` also exits 1 when it cannot run a command)
    assert probe.returncode == 1 and "reply from" in probe.stdout, probe.stdout + probe.stderr
    for packets in seen:
        arps = [p[scapy_all.ARP] for p in packets if scapy_all.ARP in p]
        claims = {a.psrc for a in arps if a.hwsrc == MACS["h2"]}
        assert claims <= {IPS["h2"], "0.0.0.0"}, claims  # its own, or a probe
        assert "10.81.0.97" not in {a.psrc for a in arps}
    probes = [p for p in seen[0] if scapy_all.ARP in p and p[scapy_all.ARP].psrc == "0.0.0.0"]
    assert [p for p in probes if p[scapy_all.ARP].hwsrc == MACS["h2"]]
    assert MACS["h2"] not in neighbours(world, "h3")
    assert ping(world.lab, "h3", IPS["h1"])  # h3 still reaches the real h1
    assert MACS["h1"] in neighbours(world, "h3")


def test_a_neighbour_advertisement_for_another_address_reaches_nobody(world: World) -> None:
    world.sh("h3", "ip", "-6", "neigh", "flush", "dev", world.dev("h3"))
    caps = [world.capture(h, "spoof-na") for h in ("h1", "h3")]
    try:
        for target in (V6["h1"], "2001:db8:81::99"):
            world.scapy(
                "h2",
                f"sendp(Ether(src={MACS['h2']!r}, dst='33:33:00:00:00:01')/IPv6(src={V6['h2']!r},"
                f" dst='ff02::1')/ICMPv6ND_NA(tgt={target!r}, R=0, S=0, O=1)/"
                f"ICMPv6NDOptDstLLAddr(lladdr={MACS['h2']!r}), iface=dev, count=3)",
            )
        # Its own address: passes (the capture sees it).
        world.scapy(
            "h2",
            f"sendp(Ether(src={MACS['h2']!r}, dst='33:33:00:00:00:01')/IPv6(src={V6['h2']!r},"
            f" dst='ff02::1')/ICMPv6ND_NA(tgt={V6['h2']!r}, R=0, S=0, O=1)/"
            f"ICMPv6NDOptDstLLAddr(lladdr={MACS['h2']!r}), iface=dev, count=3)",
        )
        # A router advertisement from a host: dropped.
        world.scapy(
            "h2",
            f"sendp(Ether(src={MACS['h2']!r}, dst='33:33:00:00:00:01')/IPv6(src='fe80::1',"
            f" dst='ff02::1')/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix='2001:db8:99::',"
            f" prefixlen=64), iface=dev, count=3)",
        )
    finally:
        seen = seen_by(*caps)
    for packets in seen:
        targets = {p[scapy_all.ICMPv6ND_NA].tgt for p in packets if scapy_all.ICMPv6ND_NA in p}
        assert V6["h1"] not in targets and "2001:db8:81::99" not in targets
        assert not [p for p in packets if scapy_all.ICMPv6ND_RA in p]
    assert V6["h2"] in {p[scapy_all.ICMPv6ND_NA].tgt for p in seen[1] if scapy_all.ICMPv6ND_NA in p}
    assert MACS["h2"] not in world.sh("h3", "ip", "-6", "neigh", "show", V6["h1"]).stdout
    assert "2001:db8:99" not in world.sh("h3", "ip", "-6", "addr").stdout
    assert ping(world.lab, "h3", V6["h1"], count=2)
    assert (
        f"{V6['h1']} dev {world.dev('h3')} lladdr {MACS['h1']}"
        in world.sh("h3", "ip", "-6", "neigh").stdout
    )


# --- DHCP -------------------------------------------------------------------------------


class Dnsmasq:
    """A DHCP server (dnsmasq, Debian's dnsmasq-base) in a host's namespace."""

    def __init__(self, world: World, host: str, *options: str) -> None:
        self.world, self.host = world, host
        base = world.tmp / f"dnsmasq-{host}"
        cmd = [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--user=root", f"--interface={world.dev(host)}", "--bind-interfaces",
            f"--dhcp-leasefile={base}.leases", f"--pid-file={base}.pid",
            "--log-dhcp", "--log-facility=-", *options,
        ]  # fmt: skip
        self.log = (base.with_suffix(".log")).open("w")
        self.proc = subprocess.Popen(
            netns.in_ns(world.ns(host), *cmd), stdout=self.log, stderr=subprocess.STDOUT
        )
        time.sleep(0.5)
        assert self.proc.poll() is None, (world.tmp / f"dnsmasq-{host}.log").read_text()

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
        return (self.world.tmp / f"dnsmasq-{self.host}.log").read_text()


def udhcpc(world: World, host: str) -> subprocess.CompletedProcess[str]:
    """busybox udhcpc: a DHCP client that asks three times and changes nothing (-s true)."""
    return world.sh(
        host, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "1", "-A", "1",
        "-s", "/bin/true", "-i", world.dev(host), check=False,
    )  # fmt: skip


def dhcp_replies(packets: list[Any]) -> list[Any]:
    return [p for p in packets if scapy_all.UDP in p and p[scapy_all.UDP].sport == 67]


def test_a_rogue_dhcp_server_reaches_nobody(world: World) -> None:
    # h2 runs a DHCP server that hands out any address; h1 asks.
    rogue = Dnsmasq(world, "h2", "--dhcp-range=10.81.0.100,10.81.0.150,255.255.255.0,1h",
                    "--dhcp-authoritative", "--no-ping")  # fmt: skip
    caps = [world.capture(h, "rogue") for h in ("h1", "h2", "h3")]
    try:
        client = udhcpc(world, "h1")
    finally:
        seen = seen_by(*caps)
        log = rogue.stop()
    assert client.returncode != 0, client.stdout + client.stderr  # no lease
    assert "DHCPOFFER" in log, log  # the rogue heard the discover and answered …
    assert dhcp_replies(seen[1]), (log, [p.summary() for p in seen[1]])
    assert not dhcp_replies(seen[0]) and not dhcp_replies(seen[2])  # … and nobody got it


def test_dhcp_replies_from_another_source_port_reach_nobody(world: World) -> None:
    """A rogue server that picks a source port other than 67/547 (a client does not
    check it) is dropped as well: on the way out of its host (to a client port, from
    any port), and at the victim's port for one on the fabric (no port security there)."""
    lla = {h: f"fe80::5054:ff:fe81:{MACS[h].split(':')[-1].lstrip('0') or '0'}" for h in MACS}
    offer = (
        "BOOTP(op=2, yiaddr='10.81.0.77', chaddr=bytes.fromhex({mac!r}.replace(':', '')))"
        "/DHCP(options=[('message-type', 'offer'), 'end'])"
    )
    frames = {
        # h2 (port security on): unicast to h1 and broadcast, v4 and v6, from port 5067.
        "h2": [
            f"Ether(src={MACS['h2']!r}, dst={dst!r})/IP(src={IPS['h2']!r}, dst={ip!r})"
            f"/UDP(sport=5067, dport=68)/" + offer.format(mac=MACS["h1"])
            for dst, ip in ((MACS["h1"], IPS["h1"]), ("ff:ff:ff:ff:ff:ff", "255.255.255.255"))
        ]
        + [
            f"Ether(src={MACS['h2']!r}, dst={MACS['h1']!r})/IPv6(src={lla['h2']!r},"
            f" dst={lla['h1']!r})/UDP(sport=5547, dport=546)/DHCP6_Advertise(trid=4713)"
        ],
        # The fabric's server (no port of ours): unicast to h1 from port 5067.
        FABRIC_DHCP[0]: [
            f"Ether(src={FABRIC_DHCP[1]!r}, dst={MACS['h1']!r})/IP(src={FABRIC_DHCP[2]!r},"
            f" dst={IPS['h1']!r})/UDP(sport=5067, dport=68)/" + offer.format(mac=MACS["h1"])
        ],
    }
    caps = [world.capture(h, "off-port-dhcp") for h in ("h1", "h3", "hd")]
    try:
        for sender, sent in frames.items():
            world.scapy(sender, "".join(f"sendp({f}, iface=dev, count=3)\n" for f in sent))
    finally:
        seen = seen_by(*caps)
    for packets in seen:
        assert not [
            p for p in packets if scapy_all.UDP in p and p[scapy_all.UDP].sport in (5067, 5547)
        ], [p.summary() for p in packets]
    # Nothing was lost to the capture itself: a discover h2 sends as a client does
    # (68 → 67) is seen by hd.
    cap = world.capture("hd", "off-port-dhcp-control")
    try:
        world.scapy(
            "h2",
            f"sendp(Ether(src={MACS['h2']!r}, dst='ff:ff:ff:ff:ff:ff')/IP(src='0.0.0.0',"
            " dst='255.255.255.255')/UDP(sport=68, dport=67)/BOOTP(op=1)"
            "/DHCP(options=[('message-type', 'discover'), 'end']), iface=dev, count=3)",
        )
    finally:
        (control,) = seen_by(cap)
    assert [p for p in control if scapy_all.UDP in p and p[scapy_all.UDP].dport == 67]


def test_dhcp_replies_come_only_from_the_networks_dhcp_port(world: World) -> None:
    server = Dnsmasq(world, "hd", "--dhcp-range=10.81.0.0,static,255.255.255.0,1h",
                     f"--dhcp-host={MACS['h1']},{IPS['h1']}")  # fmt: skip
    try:
        client = udhcpc(world, "h1")
        assert client.returncode == 0, client.stdout + client.stderr
        assert f"lease of {IPS['h1']} obtained" in client.stdout + client.stderr
        # The same server is not one of h1's DHCP servers any more: no reply reaches h1.
        world.apply(h1={"dhcp_servers": []})
        cap = world.capture("h1", "no-dhcp-server")
        try:
            refused = udhcpc(world, "h1")
        finally:
            (seen,) = seen_by(cap)
            world.apply(h1={"dhcp_servers": world.ports["h2"]["dhcp_servers"]})
    finally:
        log = server.stop()
    assert refused.returncode != 0, refused.stdout
    assert "DHCPOFFER" in log or "DHCPACK" in log, log
    assert not dhcp_replies(seen)


def test_without_addresses_only_the_mac_is_filtered(world: World) -> None:
    """A port with no fixed IPs and no pairs (a network without subnets: today's lab)
    may use any source address with its MAC; another MAC is still dropped."""
    world.apply(h2={"fixed_ips": [], "allowed_address_pairs": []})
    try:
        world.sh("h2", "ip", "addr", "add", "10.81.0.96/24", "dev", world.dev("h2"))
        assert world.sh("h2", "ping", "-n", "-c", "2", "-W", "1", "-I", "10.81.0.96", IPS["h3"],
                        check=False).returncode == 0  # fmt: skip
        cap = world.capture("h3", "no-addresses")
        try:
            world.scapy(
                "h2",
                f"sendp(Ether(src='52:54:00:81:00:98', dst={MACS['h3']!r})/IP(src={IPS['h2']!r},"
                f" dst={IPS['h3']!r})/ICMP(id=777), iface=dev, count=3)",
            )
        finally:
            (seen,) = seen_by(cap)
        assert not [p for p in seen if scapy_all.ICMP in p and p[scapy_all.ICMP].id == 777]
    finally:
        world.sh("h2", "ip", "addr", "del", "10.81.0.96/24", "dev", world.dev("h2"), check=False)
        world.apply(
            h2={
                "fixed_ips": fixed(IPS["h2"], V6["h2"]),
                "allowed_address_pairs": [
                    {"ip_address": PAIR_CIDR, "mac_address": MACS["h2"]},
                    {"ip_address": PAIR_IP, "mac_address": PAIR_MAC},
                ],
            }
        )
    # Filtering is back: the same source address no longer gets through.
    world.sh("h2", "ip", "addr", "add", "10.81.0.96/24", "dev", world.dev("h2"))
    try:
        assert world.sh("h2", "ping", "-n", "-c", "2", "-W", "1", "-I", "10.81.0.96", IPS["h3"],
                        check=False).returncode != 0  # fmt: skip
    finally:
        world.sh("h2", "ip", "addr", "del", "10.81.0.96/24", "dev", world.dev("h2"))


def test_dhcpv6_a_host_may_ask_but_not_answer(world: World) -> None:
    lla = {h: f"fe80::5054:ff:fe81:{MACS[h].split(':')[-1].lstrip('0') or '0'}" for h in MACS}
    caps = [world.capture(h, "dhcpv6") for h in ("h1", "h3", "hd")]
    try:
        # h1 solicits (UDP 546 → 547, from its link-local address): allowed (hd, on its
        # NIC, hears it; multicast from the uplink reaches no host, see docs/agent.md).
        world.scapy(
            "h1",
            f"sendp(Ether(src={MACS['h1']!r}, dst='33:33:00:01:00:02')/IPv6(src={lla['h1']!r},"
            " dst='ff02::1:2')/UDP(sport=546, dport=547)/DHCP6_Solicit(trid=4711),"
            " iface=dev, count=3)",
        )
        # h2 answers as a DHCPv6 server (UDP 547 → 546): dropped.
        world.scapy(
            "h2",
            f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h1']!r})/IPv6(src={lla['h2']!r},"
            f" dst={lla['h1']!r})/UDP(sport=547, dport=546)/DHCP6_Advertise(trid=4711),"
            f" iface=dev, count=3)\n"
            f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h3']!r})/IPv6(src={lla['h2']!r},"
            f" dst={lla['h3']!r})/UDP(sport=547, dport=546)/DHCP6_Advertise(trid=4712),"
            f" iface=dev, count=3)",
        )
    finally:
        seen = seen_by(*caps)
    for packets in seen:
        assert not [p for p in packets if scapy_all.UDP in p and p[scapy_all.UDP].sport == 547]
    solicits = [p for p in seen[2] if scapy_all.DHCP6_Solicit in p]
    assert solicits and solicits[0][scapy_all.IPv6].src == lla["h1"]


@pytest.mark.parametrize("broadcast", [False, True], ids=["unicast", "broadcast"])
def test_a_dhcp_server_behind_the_uplink(world: World, broadcast: bool) -> None:
    """The DHCP port reached through the fabric (as the network's DHCP agent is):
    its replies, unicast or broadcast (``--dhcp-broadcast``, as for a client that
    sets the broadcast flag), reach h1 when it is h1's DHCP server, and not otherwise."""
    name, mac, _ = FABRIC_DHCP
    listed = [{"mac_address": mac, "ip_addresses": [FABRIC_DHCP[2]]}]
    options = ["--dhcp-range=10.81.0.0,static,255.255.255.0,1h",
               f"--dhcp-host={MACS['h1']},{IPS['h1']}"]  # fmt: skip
    server = Dnsmasq(world, name, *options, *(["--dhcp-broadcast"] if broadcast else []))
    try:
        world.apply(h1={"dhcp_servers": listed})
        got = udhcpc(world, "h1")
        assert got.returncode == 0, got.stdout + got.stderr
        assert f"lease of {IPS['h1']} obtained from {FABRIC_DHCP[2]}" in got.stdout + got.stderr
        world.apply(h1={"dhcp_servers": world.ports["h2"]["dhcp_servers"]})  # hd only
        cap = world.capture("h1", f"fabric-dhcp-{broadcast}")
        try:
            refused = udhcpc(world, "h1")
        finally:
            (seen,) = seen_by(cap)
    finally:
        world.apply(h1={"dhcp_servers": world.ports["h2"]["dhcp_servers"]})
        log = server.stop()
    assert refused.returncode != 0, refused.stdout
    assert log.count("DHCPOFFER") >= 2, log  # it answered both times
    assert not dhcp_replies(seen)


def test_port_security_off_filters_nothing(world: World) -> None:
    """As before anti-spoofing: a port without port security may send from any address."""
    world.apply(h2={"port_security_enabled": False})
    try:
        cap = world.capture("h3", "no-port-security")
        try:
            world.scapy(
                "h2",
                f"sendp(Ether(src={MACS['h2']!r}, dst={MACS['h3']!r})/IP(src='10.81.0.95',"
                f" dst={IPS['h3']!r})/ICMP(id=995), iface=dev, count=3)",
            )
        finally:
            (seen,) = seen_by(cap)
    finally:
        world.apply(h2={"port_security_enabled": True})
    assert "10.81.0.95" in sources(seen)


def test_a_restarted_agent_rewrites_no_flow(world: World) -> None:
    """A new ``Nic`` (an agent restart) finds every anti-spoofing flow in place."""
    before = {n: world.lab.ovs(n).ofctl("dump-flows", "br-int", "--no-stats") for n in world.nics}
    for name, nic in list(world.nics.items()):
        ovs = world.lab.ovs(name)
        flows = {b: ovs.mgmt(b) for b in ("br-int", "br-phys")}
        world.nics[name] = Nic(Ovs(Endpoint(ovs.db, flows)), nic.config)
    for done in world.apply():  # asserts ACTIVE, and a second pass changes nothing
        assert done.flows_added == 0 and done.groups_removed == 0 and not done.tried
    after = {n: world.lab.ovs(n).ofctl("dump-flows", "br-int", "--no-stats") for n in world.nics}
    assert after == before
    assert ping(world.lab, "h1", IPS["h3"]) and ping(world.lab, "h3", V6["h2"])
