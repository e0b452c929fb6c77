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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalnic.dhcp import dnsmasq
from metalnic.dhcp.render import Files
from metalnic.lab import netns
from metalnic.lab.topology import Lab
from tests.dhcplab import (
    Client,
    DhcpAgentProcess,
    dhcp_agent_config,
    require_dhcp,
    udhcpc_script,
)
from tests.ovslab import (
    AgentProcess,
    bind_port,
    local_agent_config,
    new_lab,
    port_status,
    require_ovs,
    start_agent_server,
    wait_until,
)
from tests.support import Server

ADMIN = ("admin", "admin-secret-1")
AGENT = ("rack-agent", "agent-secret-2")
CIDR = "10.90.0.0/24"
MACS = {"h1": "52:54:00:90:00:01", "h2": "52:54:00:90:00:02", "h3": "52:54:00:90:00:03"}


@dataclass
class World:
    server: Server
    lab: Lab
    nic_agent: AgentProcess
    dhcp_agent: DhcpAgentProcess
    nets: dict[str, str]  # A/B → network id
    ports: dict[str, dict[str, Any]]  # host → its network port
    script: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=ADMIN, timeout=30)

    def udhcpc(self, host: str, tag: str = "") -> Client:
        log = self.lab.dir / f"{host}{tag}.events"
        return Client(self.lab.ns(host), self.lab.state.hosts[host].port_a, log, self.script)

    def dhcp_files(self, net: str) -> Files:
        return Files(self.lab.dhcp_state_dir() / self.nets[net])


def _network(c: httpx.Client, name: str, vlan: int) -> str:
    body = {
        "name": name,
        "provider:network_type": "vlan",
        "provider:physical_network": "physnet1",
        "provider:segmentation_id": vlan,
    }
    net = c.post("/network/v2.0/networks", json={"network": body})
    assert net.status_code == 201, net.text
    net_id = str(net.json()["network"]["id"])
    sub = c.post(
        "/network/v2.0/subnets",
        json={"subnet": {"network_id": net_id, "cidr": CIDR, "ip_version": 4}},
    )
    assert sub.status_code == 201, sub.text
    return net_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_ovs()
    require_dhcp()
    tmp = tmp_path_factory.mktemp("dhcp-e2e")
    server, password = start_agent_server(tmp, ADMIN, AGENT, nic_hosts=["nic1"])
    lab = new_lab("dh")
    lab.dir.chmod(0o755)  # dnsmasq reads its files as nobody
    nic_agent = dhcp_agent = None
    try:
        lab.add_fabric([])
        lab.add_nic("nic1", [101, 102])
        lab.add_dhcp_node([101, 102])
        for host in MACS:
            lab.add_host(host, "nic1", MACS[host], None)
        nic_agent = AgentProcess(
            tmp, "nic1", local_agent_config(server, lab, "nic1", AGENT[0], password)
        )
        nic_agent.start()
        dhcp_agent = DhcpAgentProcess(tmp, dhcp_agent_config(server.url, AGENT[0], password, lab))
        dhcp_agent.start()
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            wait_until(
                lambda: _alive(c, "DHCP agent") and _alive(c, "Open vSwitch agent"),
                20,
                "both agents alive",
            )
            # Until the NIC admits DHCP replies by itself (issue 13's anti-spoofing part),
            # the hosts' group lets the server's answers in.
            sg = c.post(
                "/network/v2.0/security-groups", json={"security_group": {"name": "dhcp-client"}}
            ).json()
            sg_id = sg["security_group"]["id"]
            rule = {
                "security_group_id": sg_id,
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "udp",
                "port_range_min": 68,
                "port_range_max": 68,
            }
            r = c.post("/network/v2.0/security-group-rules", json={"security_group_rule": rule})
            assert r.status_code == 201, r.text
            nets = {"A": _network(c, "dhcp-a", 101), "B": _network(c, "dhcp-b", 102)}
            ports = {
                "h1": bind_port(
                    c, nets["A"], "nic1", lab.state.hosts["h1"].port_b, MACS["h1"], [sg_id]
                ),
                "h2": bind_port(
                    c, nets["B"], "nic1", lab.state.hosts["h2"].port_b, MACS["h2"], [sg_id]
                ),
                # h3's port has another MAC than h3 uses (and no port security, so the
                # NIC lets h3's frames out): dnsmasq must not know h3.
                "h3": bind_port(
                    c,
                    nets["A"],
                    "nic1",
                    lab.state.hosts["h3"].port_b,
                    "52:54:00:90:0f:03",
                    port_security_enabled=False,
                ),
            }
            for port in ports.values():
                wait_until(
                    lambda p=port: port_status(c, p["id"])["status"] == "ACTIVE",
                    20,
                    f"port {port['id']} ACTIVE",
                )
        world = World(server, lab, nic_agent, dhcp_agent, nets, ports, udhcpc_script(lab.dir))
        for net in ("A", "B"):
            wait_until(
                lambda n=net: dnsmasq.running(world.dhcp_files(n)) is not None,
                20,
                f"dnsmasq of network {net}",
                show=lambda: dhcp_agent.log.read_text()[-2000:],
            )
        yield world
    finally:
        for proc in (dhcp_agent, nic_agent):
            if proc is not None:
                proc.stop()
        lab.down()
        server.stop()


def _alive(c: httpx.Client, agent_type: str) -> bool:
    found = c.get("/network/v2.0/agents", params={"agent_type": agent_type}).json()["agents"]
    return bool(found) and all(a["alive"] for a in found)


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
    print(f"h1: DISCOVER → ACK via udhcpc -q in {took * 1000:.0f} ms")


def test_a_host_whose_mac_is_no_port_gets_nothing(world: World) -> None:
    got, _ = world.udhcpc("h3").once(timeout=2)
    assert got is None
    log = world.dhcp_files("A").log.read_text()
    assert f"{MACS['h3']} no address available" in log  # heard, and refused


def test_renewal_is_answered_across_a_dhcp_agent_restart(world: World) -> None:
    h1 = world.udhcpc("h1", "-follow")
    h1.follow()
    try:
        wait_until(lambda: any(e.startswith("bound ") for e in h1.events()), 10, "h1 bound")
        pid = dnsmasq.running(world.dhcp_files("A"))
        world.dhcp_agent.stop()
        with world.client() as c:
            wait_until(lambda: not _alive(c, "DHCP agent"), 30, "the DHCP agent shown dead")
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
            wait_until(lambda: _alive(c, "DHCP agent"), 20, "the DHCP agent alive again")
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
