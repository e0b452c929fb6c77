"""DHCPv6 and SLAAC through the fabric, end to end, on real parts: a real server, a
``metalnic agent`` for the smart NIC, a ``metalnic dhcp-agent`` and its dnsmasq, and
hosts behind the NIC running dhcpcd 9 (``tests/dhcp6lab.py``).

One network per IPv6 mode (Neutron's ``ipv6_address_mode`` = ``ipv6_ra_mode``):
h1 on a ``dhcpv6-stateful`` subnet, h2 on a ``slaac`` one, h3 on a
``dhcpv6-stateless`` one; h4, on h1's network, plays a rogue DHCPv6 server and
router.  Each host's address is the one IPAM gave its port (the lease on the
stateful subnet, the EUI-64 address on the others), and the NIC admits traffic
from it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from metalnic.lab.capture import Capture
from tests.dhcp6lab import DNS, HOSTS, Dhcpcd, World6, dhcp6_world, require_dhcp6
from tests.ovslab import require_ovs, wait_until

scapy_all = pytest.importorskip("scapy.all")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World6]:
    require_ovs()
    require_dhcp6()
    with dhcp6_world(tmp_path_factory.mktemp("hv6-dhcp6")) as built:
        yield built


def _pings(world: World6, host: str, source: str, net: str) -> bool:
    """``host`` pings the network's DHCP port from ``source`` (through NIC and fabric)."""
    target = world.dhcp_port_ip(net)
    done = world.sh(
        host, "ping", "-6", "-n", "-c", "2", "-W", "1", "-I", source, target, check=False
    )
    return done.returncode == 0


def _dhcp_log(world: World6, net: str) -> str:
    """The network's dnsmasq log without its router advertisements."""
    lines = world.dhcp_files(net).log.read_text().splitlines()
    return "\n".join(line for line in lines if "RTR-" not in line)


def _bound(events: list[dict[str, str]], reason: str) -> dict[str, str] | None:
    found = [e for e in events if e.get("reason") == reason]
    return found[-1] if found else None


def test_stateful_lease_is_the_ports_fixed_ip_and_the_nic_admits_it(world: World6) -> None:
    h1 = world.dhcpcd("h1", stateful=True)
    wait_until(lambda: _bound(h1.events(), "BOUND6") is not None, 20, "h1's DHCPv6 lease",
               show=lambda: h1.output()[-3000:])  # fmt: skip
    lease = _bound(h1.events(), "BOUND6")
    assert lease is not None
    assert lease["new_dhcp6_ia_na1_ia_addr1"] == world.v6_ip("h1")
    assert lease.get("new_dhcp6_name_servers") == DNS
    wait_until(lambda: world.v6_ip("h1") in h1.addresses(), 10, "h1's address past DAD")
    leases = world.dhcp_files("stateful").leases.read_text()
    assert world.v6_ip("h1") in leases, leases
    world.sh("h1", "ip", "-6", "route", "replace", world.subnets["stateful"]["cidr"],
             "dev", world.dev("h1"))  # fmt: skip
    assert _pings(world, "h1", world.v6_ip("h1"), "stateful")
    # Another address of the same subnet is not h1's: the NIC drops what h1 sends from it.
    other = world.v6_ip("h1").rsplit(":", 1)[0] + ":beef"
    world.sh("h1", "ip", "-6", "addr", "add", f"{other}/128", "dev", world.dev("h1"), "nodad")
    try:
        assert not _pings(world, "h1", other, "stateful")
    finally:
        world.sh("h1", "ip", "-6", "addr", "del", f"{other}/128", "dev", world.dev("h1"))


def test_slaac_address_from_dnsmasqs_ra_is_the_ports_eui64_address(world: World6) -> None:
    h2 = world.dhcpcd("h2", stateful=False)
    want = world.v6_ip("h2")
    wait_until(lambda: want in h2.addresses(), 20, f"h2's SLAAC address {want}",
               show=lambda: (h2.addresses(), h2.output()[-3000:]))  # fmt: skip
    assert h2.addresses() == [want]  # nothing else (no lease: there is no DHCPv6 here)
    assert _bound(h2.events(), "BOUND6") is None
    routes = world.sh("h2", "ip", "-6", "route", "show", "default").stdout
    assert routes.strip() == "", routes  # dnsmasq's adverts name no router (lifetime 0)
    assert _pings(world, "h2", want, "slaac")


def test_stateless_address_by_slaac_and_dns_by_dhcpv6(world: World6) -> None:
    h3 = world.dhcpcd("h3", stateful=False)
    want = world.v6_ip("h3")
    wait_until(lambda: _bound(h3.events(), "INFORM6") is not None, 20,
               "h3's DHCPv6 information reply", show=lambda: h3.output()[-3000:])  # fmt: skip
    inform = _bound(h3.events(), "INFORM6")
    assert inform is not None and inform.get("new_dhcp6_name_servers") == DNS
    assert "new_dhcp6_ia_na1_ia_addr1" not in inform  # options only, no address
    wait_until(lambda: want in h3.addresses(), 20, f"h3's SLAAC address {want}",
               show=lambda: (h3.addresses(), h3.output()[-3000:]))  # fmt: skip
    assert h3.addresses() == [want]
    assert _pings(world, "h3", want, "stateless")


def _boot_url(world: World6, extra: tuple[str, ...]) -> str | None:
    """A fresh client on h1 (``extra``: its further dhcpcd.conf lines) asks for option
    59: the boot URL it got, if any."""
    h1 = world.dhcpcd("h1", True, "option dhcp6_bootfile_url", *extra)
    lease = _lease(h1, 10) or {}
    h1.stop()
    return lease.get("new_dhcp6_bootfile_url")


def _lease(client: Dhcpcd, timeout: float) -> dict[str, str] | None:
    """The client's DHCPv6 lease (its BOUND6 event) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (found := _bound(client.events(), "BOUND6")) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_ipxe_gets_its_dhcpv6_boot_url_by_option_59(world: World6) -> None:
    """Ironic's DHCPv6 boot options on h1's port (as the ipxe boot interface sets them):
    a client with iPXE's user class gets the HTTP script, other firmware the TFTP URL."""
    script, binary = "http://[2001:db8:a1::5]/boot/boot.ipxe", "tftp://[2001:db8:a1::5]/snponly.efi"
    opts = [
        {"opt_name": "tag:ipxe6,59", "opt_value": script, "ip_version": 6},
        {"opt_name": "tag:!ipxe6,59", "opt_value": binary, "ip_version": 6},
    ]
    port = world.ports["h1"]["id"]
    with world.client() as c:
        r = c.put(f"/network/v2.0/ports/{port}", json={"port": {"extra_dhcp_opts": opts}})
        assert r.status_code == 200, r.text
    try:
        for extra, want in ((("userclass iPXE",), script), ((), binary)):
            # (the DHCP agent's next pass restarts dnsmasq with the port's new tag)

            def served(e: tuple[str, ...] = extra, w: str = want) -> bool:
                return _boot_url(world, e) == w

            wait_until(served, 40,
                       f"h1's boot URL {want}", step=0.5,
                       show=lambda: _dhcp_log(world, "stateful")[-3000:])  # fmt: skip
    finally:
        with world.client() as c:
            gone = [{**o, "opt_value": None} for o in opts]
            c.put(f"/network/v2.0/ports/{port}", json={"port": {"extra_dhcp_opts": gone}})


def test_each_boot_stage_with_its_own_duid_gets_an_address_of_a_phase_port(
    world: World6,
) -> None:
    """Firmware, iPXE and the ramdisk lease with DUIDs of their own and none gives its
    lease back: on a port with one address only the first gets it (dnsmasq: "no
    addresses available"), so a phase port holds several (the conductor makes them,
    Ironic's dhcpv6_stateful_address_count) and each stage gets one of them.  (On h4,
    whose leases are left to expire.)"""
    port, subnet = world.ports["h4"], world.subnets["stateful"]["id"]
    one = world.v6_ip("h4")
    with world.client() as c:
        more = [{"subnet_id": subnet, "ip_address": one}] + [{"subnet_id": subnet}] * 2
        r = c.put(f"/network/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": more}})
        assert r.status_code == 200, r.text
        held = {f["ip_address"] for f in r.json()["port"]["fixed_ips"]}
    assert len(held) == 3
    got = []
    try:
        for stage in range(3):
            # 60 s: a lost ADVERTISE or REPLY is recovered by dhcpcd's own retransmission
            # (RFC 8415 backoff: 1, 2, 4, 8 … s), which a 30 s window cut short once in CI.
            client = world.dhcpcd("h4", True, release=False)
            lease = _lease(client, 60)
            assert lease is not None, (
                stage,
                client.output()[-2000:],
                _dhcp_log(world, "stateful")[-3000:],
            )
            got.append(lease["new_dhcp6_ia_na1_ia_addr1"])
        world.dhcpcd("h4", True).stop()  # (the last stage's client, stopped)
    finally:
        with world.client() as c:
            back = [{"subnet_id": subnet, "ip_address": one}]
            r = c.put(f"/network/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": back}})
            assert r.status_code == 200, r.text
    assert sorted(got) == sorted(held), got  # each stage one address, no two the same


ROGUE_PREFIX = "2001:db8:bad::"


def _from(packets: list[Any], mac: str) -> list[Any]:
    return [p for p in packets if scapy_all.Ether in p and p[scapy_all.Ether].src == mac]


def _dhcp6_replies(packets: list[Any]) -> list[Any]:
    return [p for p in packets if scapy_all.UDP in p and p[scapy_all.UDP].sport == 547]


def _ras(packets: list[Any]) -> list[Any]:
    return [p for p in packets if scapy_all.ICMPv6ND_RA in p]


def test_a_rogue_dhcpv6_server_and_router_reach_nobody(world: World6) -> None:
    """h4 runs dnsmasq as a DHCPv6 server and router for another prefix on h1's network;
    h1 asks for a lease.  h4's replies and RAs leave h4 (captured there) and reach no
    host (captured at h1, and at the network's DHCP port); h1 gets its own lease only."""
    rogue_mac = HOSTS["h4"][1]
    dev4 = world.dev("h4")
    world.sh("h4", "ip", "-6", "addr", "add", f"{ROGUE_PREFIX}1/64", "dev", dev4, "nodad")
    directory = world.lab.dir
    rogue = world.sh(
        "h4", "dnsmasq", "--conf-file=/dev/null", "--port=0", "--user=root",
        f"--interface={dev4}", "--bind-interfaces", "--enable-ra",
        f"--dhcp-range={ROGUE_PREFIX}100,{ROGUE_PREFIX}1ff,64,1h",
        "--ra-param=" + dev4 + ",3", "--dhcp-authoritative",
        f"--dhcp-leasefile={directory}/rogue.leases", f"--pid-file={directory}/rogue.pid",
        "--log-dhcp", f"--log-facility={directory}/rogue.log",
    )  # fmt: skip
    assert rogue.returncode == 0
    pid = int((directory / "rogue.pid").read_text().strip())
    dhcp_ns, dhcp_dev = world.dhcp_ns("stateful"), f"ns-{world.nets['stateful'][:8]}"
    caps = [
        Capture(world.lab.ns("h4"), dev4, directory / "rogue-h4.pcap").start(),
        Capture(world.lab.ns("h1"), world.dev("h1"), directory / "rogue-h1.pcap").start(),
        Capture(dhcp_ns, dhcp_dev, directory / "rogue-dhcp.pcap").start(),
    ]
    h1 = None
    try:
        h1 = world.dhcpcd("h1", stateful=True)  # a fresh client: solicits, waits for RAs
        wait_until(lambda: _bound(h1.events(), "BOUND6") is not None, 20, "h1's lease")
        time.sleep(4)  # more than the rogue's RA interval
    finally:
        time.sleep(1.2)  # tcpdump's buffer (see test_agent_antispoof.seen_by)
        for cap in caps:
            cap.stop()
        os.kill(pid, signal.SIGTERM)
        world.sh("h4", "ip", "-6", "addr", "del", f"{ROGUE_PREFIX}1/64", "dev", dev4, check=False)
    seen = [list(scapy_all.rdpcap(str(cap.path))) for cap in caps]
    sent = _from(seen[0], rogue_mac)
    assert _ras(sent), [p.summary() for p in seen[0]]  # the rogue advertised …
    log = (directory / "rogue.log").read_text()
    assert _dhcp6_replies(sent), log  # … and answered h1's solicit
    for packets in seen[1:]:  # … and nobody heard either (its MLD and ND do pass)
        heard = _from(packets, rogue_mac)
        assert not _ras(heard) and not _dhcp6_replies(heard), [p.summary() for p in heard]
        assert not [p for p in packets if scapy_all.IPv6 in p
                    and p[scapy_all.IPv6].src.startswith(ROGUE_PREFIX)]  # fmt: skip
    assert h1 is not None
    assert not [a for a in h1.addresses() if a.startswith(ROGUE_PREFIX)], h1.addresses()
    lease = _bound(h1.events(), "BOUND6")
    assert lease is not None and lease["new_dhcp6_ia_na1_ia_addr1"] == world.v6_ip("h1")
