"""The DHCP agent's data plane on real parts: Open vSwitch (userspace datapath, its own
namespace), dnsmasq per network in its namespace, hosts running ``busybox udhcpc``.

The desired state is fed to the driver directly (the server's side is tested in
``tests/integration/test_dhcp_contract.py`` and through the agent process in
``test_dhcp_agent.py``).  Hosts are access ports of the DHCP bridge in their
network's VLAN, as the fabric delivers them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metalnic.contract import dhcp as dc
from metalnic.dhcp import dnsmasq
from metalnic.dhcp.driver import DhcpDriver, DriverConfig
from metalnic.lab import netns
from metalnic.lab.ovs import OvsInstance
from tests.dhcplab import Client, host_on_bridge, network, require_dhcp, udhcpc_script
from tests.ovslab import wait_until

NET_A = "aaaaaaaa-0000-4000-8000-000000000001"
NET_B = "bbbbbbbb-0000-4000-8000-000000000002"
CIDR = "10.88.0.0/24"  # both networks: the same CIDR


@dataclass
class Rig:
    prefix: str
    dir: Path
    ovs: OvsInstance
    driver: DhcpDriver
    script: Path

    def client(self, name: str, mac: str, vlan: int | None) -> Client:
        ns = host_on_bridge(self.prefix, name, mac, self.ovs.ns, self.ovs.db, "br-dhcp", vlan)
        return Client(ns, "eth0", self.dir / f"{name}.events", self.script)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    require_dhcp()
    prefix = f"dh{os.getpid() % 1000}"
    directory = Path(tempfile.mkdtemp(prefix=f"dhcp-{prefix}-"))
    directory.chmod(0o755)  # dnsmasq reads its files as nobody
    ovs_ns = f"{prefix}-ovs"
    netns.add(ovs_ns)
    ovs = OvsInstance("ovs", ovs_ns, directory / "ovs")
    ovs.start()
    config = DriverConfig(
        ovsdb=ovs.db,
        bridge_mappings={"physnet1": "br-dhcp"},
        state_dir=directory / "state",
        prefix=prefix,
        ovs_namespace=ovs_ns,
        lease_time=120,
        datapath_type="netdev",
    )
    rig = Rig(prefix, directory, ovs, DhcpDriver(config), udhcpc_script(directory))
    try:
        yield rig
    finally:
        rig.driver.reconcile(dc.DhcpDesiredState(host="t", revision=0, networks=[]))
        ovs.stop()
        for ns in netns.list_ns(prefix):
            netns.delete(ns)


def desired(*networks: dc.DhcpNetwork) -> dc.DhcpDesiredState:
    return dc.DhcpDesiredState(host="dhcp-test", revision=1, networks=list(networks))


def test_only_known_ports_get_their_fixed_ip_per_network(rig: Rig) -> None:
    a = network(
        NET_A,
        101,
        CIDR,
        "fa:16:3e:00:0a:02",
        "10.88.0.2",
        [("pa1", "52:54:00:88:0a:01", "10.88.0.11")],
        gateway="10.88.0.1",
    )
    b = network(
        NET_B,
        102,
        CIDR,
        "fa:16:3e:00:0b:02",
        "10.88.0.2",
        [("pb1", "52:54:00:88:0b:01", "10.88.0.77")],
    )
    done = rig.driver.reconcile(desired(a, b))
    assert done.errors == {}
    assert sorted(done.started) == sorted([NET_A, NET_B])

    a1 = rig.client("a1", "52:54:00:88:0a:01", 101)
    got, _ = a1.once()
    assert got == "10.88.0.11"  # exactly its port's fixed IP, from A's server
    assert "router=10.88.0.1" in a1.events()[-1].split()  # A's gateway as router

    b1 = rig.client("b1", "52:54:00:88:0b:01", 102)
    got, _ = b1.once()
    assert got == "10.88.0.77"  # same CIDR, its own network's lease

    stranger = rig.client("s1", "52:54:00:88:0c:01", 101)
    got, _ = stranger.once(timeout=2)
    assert got is None  # not a port: no lease (no dynamic range)

    # B's port MAC, but on A's VLAN: A's server does not know it, B's cannot hear it.
    wrong = rig.client("w1", "52:54:00:88:0b:01", 101)
    got, _ = wrong.once(timeout=2)
    assert got is None

    lonely = rig.client("v1", "52:54:00:88:0a:01", 103)  # A's MAC on a VLAN nobody serves
    got, _ = lonely.once(timeout=2)
    assert got is None


def test_change_reloads_with_sighup_keeping_leases(rig: Rig) -> None:
    a = network(
        NET_A,
        101,
        CIDR,
        "fa:16:3e:00:0a:02",
        "10.88.0.2",
        [("pa1", "52:54:00:88:0a:01", "10.88.0.11")],
    )
    rig.driver.reconcile(desired(a))
    files = rig.driver.files(NET_A)
    pid = dnsmasq.running(files)
    assert pid is not None
    leases = files.leases.read_text()
    assert "52:54:00:88:0a:01" in leases

    hosts = [("pa1", "52:54:00:88:0a:01", "10.88.0.11"), ("pa2", "52:54:00:88:0a:22", "10.88.0.22")]
    a2 = network(NET_A, 101, CIDR, "fa:16:3e:00:0a:02", "10.88.0.2", hosts)
    done = rig.driver.reconcile(desired(a2))
    assert done.reloaded == [NET_A] and done.started == []
    assert dnsmasq.running(files) == pid  # the same process: reloaded (SIGHUP), not restarted

    newcomer = Client(f"{rig.prefix}-s1", "eth0", rig.dir / "s1b.events", rig.script)
    netns.run(netns.in_ns(newcomer.ns, "ip", "link", "set", "eth0", "down"))
    netns.run(netns.in_ns(newcomer.ns, "ip", "link", "set", "eth0", "address", "52:54:00:88:0a:22"))
    netns.run(netns.in_ns(newcomer.ns, "ip", "link", "set", "eth0", "up"))
    got, _ = newcomer.once()
    assert got == "10.88.0.22"  # the new host entry took effect
    assert "52:54:00:88:0a:01" in files.leases.read_text()  # the old lease survived
    assert files.log.read_text().count("read " + str(files.hosts)) >= 2  # reread on SIGHUP

    # Options for pa2: a new tag → a restart, and the lease file carries the leases over.
    boot = [dc.DhcpOption(opt_name="bootfile-name", opt_value="pxe-a.0")]
    a2 = network(NET_A, 101, CIDR, "fa:16:3e:00:0a:02", "10.88.0.2", hosts, opts={"pa2": boot})
    done = rig.driver.reconcile(desired(a2))
    assert done.started == [NET_A]
    assert dnsmasq.running(files) not in (None, pid)
    got, _ = newcomer.once()
    assert got == "10.88.0.22"
    log = files.log.read_text()
    assert "bootfile name: pxe-a.0" in log  # the option reached pa2
    leases = files.leases.read_text()
    assert "52:54:00:88:0a:01" in leases and "52:54:00:88:0a:22" in leases

    # Another value for the same port: the tag stays, so a SIGHUP is enough.
    pid = dnsmasq.running(files)
    boot = [dc.DhcpOption(opt_name="bootfile-name", opt_value="pxe-b.0")]
    a2 = network(NET_A, 101, CIDR, "fa:16:3e:00:0a:02", "10.88.0.2", hosts, opts={"pa2": boot})
    done = rig.driver.reconcile(desired(a2))
    assert done.reloaded == [NET_A] and dnsmasq.running(files) == pid
    got, _ = newcomer.once()
    assert got == "10.88.0.22" and "bootfile name: pxe-b.0" in files.log.read_text()

    again = rig.driver.reconcile(desired(a2))
    assert again.reloaded == [] and again.started == []  # converged: nothing to do


def test_stopping_a_network_removes_its_dnsmasq_and_namespace(rig: Rig) -> None:
    a = network(NET_A, 101, CIDR, "fa:16:3e:00:0a:02", "10.88.0.2", [])
    b = network(NET_B, 102, CIDR, "fa:16:3e:00:0b:02", "10.88.0.2", [])
    rig.driver.reconcile(desired(a, b))
    pid = dnsmasq.running(rig.driver.files(NET_B))
    assert pid is not None
    done = rig.driver.reconcile(desired(a))
    assert done.removed == [NET_B]
    assert not Path(f"/proc/{pid}").exists() or dnsmasq.running(rig.driver.files(NET_B)) is None
    assert rig.driver.namespace(NET_B) not in netns.list_ns(rig.prefix)
    assert rig.driver.outer(NET_B) not in rig.ovs.vsctl("list-ports", "br-dhcp").split()
    assert dnsmasq.running(rig.driver.files(NET_A)) is not None  # A is untouched


def test_a_flat_network_is_served_untagged_only(rig: Rig) -> None:
    flat_id = "ffffffff-0000-4000-8000-000000000003"
    flat = network(
        flat_id, None, "10.89.0.0/24", "fa:16:3e:00:0f:02", "10.89.0.2",
        [("pf1", "52:54:00:89:0f:01", "10.89.0.31")],
    )  # fmt: skip
    done = rig.driver.reconcile(desired(flat))
    assert done.errors == {} and flat_id in done.started
    untagged = rig.client("f1", "52:54:00:89:0f:01", None)
    got, _ = untagged.once()
    assert got == "10.89.0.31"
    tagged = rig.client("f2", "52:54:00:89:0f:01", 104)  # the same MAC, but on a VLAN
    got, _ = tagged.once(timeout=2)
    assert got is None
    rig.driver.reconcile(desired())
    assert dnsmasq.running(rig.driver.files(flat_id)) is None


def test_an_ipv6_slaac_subnet_is_announced_by_router_adverts(rig: Rig) -> None:
    """dnsmasq's RA (``enable-ra``, ``ra-only``) reaches the host through the bridge and
    the host's kernel makes its EUI-64 address in the subnet's prefix (no DHCPv6
    client is needed for SLAAC)."""
    net_id = "66666666-0000-4000-8000-000000000006"
    v4 = network(net_id, 106, "10.86.0.0/24", "fa:16:3e:00:06:02", "10.86.0.2", [])
    v6 = dc.DhcpSubnet(
        id="s6", cidr="fd00:86::/64", ip_version=6,
        ipv6_address_mode="slaac", ipv6_ra_mode="slaac",
    )  # fmt: skip
    dhcp_v6 = dc.FixedIp(subnet_id="s6", ip_address="fd00:86::f816:3eff:fe00:602")
    served = v4.model_copy(
        update={
            "subnets": [*v4.subnets, v6],
            "port": v4.port.model_copy(update={"fixed_ips": [*v4.port.fixed_ips, dhcp_v6]}),
        }
    )
    done = rig.driver.reconcile(desired(served))
    assert done.errors == {}, done.errors
    ns = host_on_bridge(
        rig.prefix, "r6", "52:54:00:86:00:01", rig.ovs.ns, rig.ovs.db, "br-dhcp", 106
    )
    for key in ("all", "default", "eth0"):
        netns.run(netns.in_ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=0"))
    netns.run(netns.in_ns(ns, "ip", "link", "set", "eth0", "down"))
    netns.run(netns.in_ns(ns, "ip", "link", "set", "eth0", "up"))  # solicits a router

    def slaac() -> bool:
        out = netns.run(netns.in_ns(ns, "ip", "-6", "-o", "addr", "show", "dev", "eth0"))
        return "fd00:86::5054:ff:fe86:1/64" in out

    wait_until(slaac, 20, "the host's SLAAC address from dnsmasq's router advert")
