"""DHCP through the fabric, end to end: a real server, a ``metalnic agent`` for the smart
NIC, a ``metalnic dhcp-agent`` on the lab's DHCP node, dnsmasq, and hosts behind the NIC
running ``busybox udhcpc``.

Lab: NIC nic1 (uplink trunking VLANs 101, 102 into the fabric), the DHCP node
(br-dhcp, uplink trunking the same VLANs), hosts h1 and h3 on network A (VLAN
101) and h2 on network B (VLAN 102); A and B have the **same CIDR**.  The
server makes each network's DHCP port with its subnet and schedules it to the
DHCP agent, which serves it through its own namespace and VLAN access port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from metalnic.dhcp import dnsmasq
from metalnic.lab import netns
from tests.dhcplab import MACS, World, alive, fabric_world, require_dhcp
from tests.ovslab import require_ovs, wait_until


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_ovs()
    require_dhcp()
    with fabric_world(tmp_path_factory.mktemp("dhcp-e2e")) as built:
        yield built


def _ip(port: dict[str, Any]) -> str:
    return str(port["fixed_ips"][0]["ip_address"])


def test_each_host_gets_its_ports_fixed_ip_from_its_own_network(world: World) -> None:
    got, took = world.udhcpc("h1").once()
    assert got == _ip(world.ports["h1"])  # through NIC, fabric, VLAN 101, A's dnsmasq
    got, _ = world.udhcpc("h2").once()
    assert got == _ip(world.ports["h2"])  # same CIDR, B's own lease
    assert MACS["h1"] in world.dhcp_files("A").leases.read_text()
    assert MACS["h1"] not in world.dhcp_files("B").leases.read_text()
    assert MACS["h2"] not in world.dhcp_files("A").leases.read_text()
    with world.client() as c:  # the agent reports what it serves, as Neutron's does

        def reported() -> dict[str, Any]:
            found = c.get("/network/v2.0/agents", params={"agent_type": "DHCP agent"})
            return dict(found.json()["agents"][0]["configurations"])

        # h1 and h3 on A, h2 on B (its next heartbeat after its last pass says so)
        wait_until(
            lambda: (reported()["networks"], reported()["ports"]) == (2, 3),
            5,
            "the DHCP agent's heartbeat shows 2 networks, 3 ports",
            show=reported,
        )
    print(f"h1: DISCOVER → ACK via udhcpc -q in {took * 1000:.0f} ms")


def test_extra_dhcp_opts_set_through_the_api_reach_that_host_only(world: World) -> None:
    opts = [{"opt_name": "bootfile-name", "opt_value": "ipxe-h1.efi"}]
    with world.client() as c:
        r = c.put(
            f"/network/v2.0/ports/{world.ports['h1']['id']}",
            json={"port": {"extra_dhcp_opts": opts}},
        )
        assert r.status_code == 200, r.text
    h1 = world.udhcpc("h1", "-opts")

    def booted() -> bool:
        got, _ = h1.once(3, "-O", "bootfile")
        return got is not None and h1.events()[-1].endswith("boot=ipxe-h1.efi")

    wait_until(booted, 15, "h1's lease with its boot file", step=0.2, show=h1.events)
    h2 = world.udhcpc("h2", "-opts")
    got, _ = h2.once(3, "-O", "bootfile")
    assert got == _ip(world.ports["h2"]) and h2.events()[-1].endswith("boot=")
    with world.client() as c:  # and gone again
        gone = [{"opt_name": "bootfile-name", "opt_value": None}]
        r = c.put(
            f"/network/v2.0/ports/{world.ports['h1']['id']}",
            json={"port": {"extra_dhcp_opts": gone}},
        )
        assert r.status_code == 200, r.text

    def plain() -> bool:
        got, _ = h1.once(3, "-O", "bootfile")
        return got is not None and h1.events()[-1].endswith("boot=")

    wait_until(plain, 15, "h1's lease without a boot file", step=0.2, show=h1.events)


def test_a_host_whose_mac_is_no_port_gets_nothing(world: World) -> None:
    got, _ = world.udhcpc("h3").once(timeout=2)
    assert got is None
    log = world.dhcp_files("A").log.read_text()
    assert f"{MACS['h3']} no address available" in log  # heard, and refused


def test_a_host_on_the_wrong_network_is_answered_by_nobody(world: World) -> None:
    """h3 sits on network A; a port with h3's MAC (and a fixed IP) exists on network B.
    B's dnsmasq knows h3 and would answer, but never hears it (VLAN isolation through
    the NIC and the fabric); A's dnsmasq hears it and does not know it."""
    with world.client() as c:
        r = c.post(
            "/network/v2.0/ports",
            json={"port": {"network_id": world.nets["B"], "mac_address": MACS["h3"]}},
        )
        assert r.status_code == 201, r.text
        on_b = r.json()["port"]
        try:
            files = world.dhcp_files("B")
            wait_until(
                lambda: MACS["h3"] in files.hosts.read_text(),
                15,
                "network B's dnsmasq knows h3's MAC",
                show=lambda: files.hosts.read_text(),
            )
            got, _ = world.udhcpc("h3", "-wrong").once(timeout=3)
            assert got is None
            heard = [ln for ln in files.log.read_text().splitlines() if MACS["h3"] in ln]
            assert not heard, heard  # B's dnsmasq never saw a request from h3
            assert f"{MACS['h3']} no address available" in world.dhcp_files("A").log.read_text()
        finally:
            assert c.delete(f"/network/v2.0/ports/{on_b['id']}").status_code == 204


def test_renewal_is_answered_across_a_dhcp_agent_restart(world: World) -> None:
    h1 = world.udhcpc("h1", "-follow")
    h1.follow()
    try:
        wait_until(lambda: any(e.startswith("bound ") for e in h1.events()), 10, "h1 bound")
        pid = dnsmasq.running(world.dhcp_files("A"))
        world.dhcp_agent.stop()
        with world.client() as c:
            wait_until(lambda: not alive(c, "DHCP agent"), 30, "the DHCP agent shown dead")
        renewed = len([e for e in h1.events() if e.startswith("renew ")])
        h1.renew()  # the agent is down; its dnsmasq answers
        wait_until(
            lambda: len([e for e in h1.events() if e.startswith("renew ")]) > renewed,
            10,
            "renewal while the agent is down",
            show=h1.events,
        )
        world.dhcp_agent.start()
        with world.client() as c:
            wait_until(lambda: alive(c, "DHCP agent"), 20, "the DHCP agent alive again")
        time.sleep(1.5)  # a reconcile pass of the restarted agent
        assert dnsmasq.running(world.dhcp_files("A")) == pid  # found again, not restarted
        renewed = len([e for e in h1.events() if e.startswith("renew ")])
        h1.renew()
        wait_until(
            lambda: len([e for e in h1.events() if e.startswith("renew ")]) > renewed,
            10,
            "renewal after the restart",
            show=h1.events,
        )
        last = [e for e in h1.events() if e.startswith("renew ")][-1]
        assert last.split()[1] == _ip(world.ports["h1"])
    finally:
        h1.stop()


def test_deleting_a_network_removes_its_dnsmasq_and_namespace(world: World) -> None:
    files = world.dhcp_files("B")
    pid = dnsmasq.running(files)
    assert pid is not None
    ns = f"{world.lab.prefix}-dhcp-{world.nets['B'][:8]}"
    assert ns in netns.list_ns(world.lab.prefix)
    with world.client() as c:
        assert c.delete(f"/network/v2.0/ports/{world.ports['h2']['id']}").status_code == 204
        assert c.delete(f"/network/v2.0/networks/{world.nets['B']}").status_code == 204
    wait_until(lambda: ns not in netns.list_ns(world.lab.prefix), 15, "B's namespace gone")
    assert dnsmasq.running(files) is None and not files.directory.exists()
    assert dnsmasq.running(world.dhcp_files("A")) is not None  # A is still served
