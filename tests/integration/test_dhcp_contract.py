"""The DHCP agent contract over real HTTP: registration, liveness, RBAC, desired state.

A DHCP agent heartbeats like the smart NIC agent (``agent_type`` "DHCP agent")
and claims no NIC host; ``/v2.0/agents`` shows it, and shows it dead once its
heartbeats stop.  Its desired state (``/metalnic/dhcp-agents/{host}/desired``)
is readable by the agent user that registered it (and admins) only, lists
the networks whose DHCP port is bound to its host with their other ports as
host entries (MAC, ``extra_dhcp_opts``), and its long poll wakes on a change.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalnic.contract import agent as ac
from metalnic.contract import dhcp as dc
from tests.support import (
    Postgres,
    Server,
    User,
    module_server,
    network_client,
    start_postgres,
    start_with_users,
)

DOWN_TIME = 3.0
ADMIN = ("admin", "admin-pw-1")
PW = {"dhcp1": "dhcp1-pw-2", "dhcp2": "dhcp2-pw-3", "alice": "alice-pw-4"}
VERSION = {ac.CONTRACT_HEADER: str(ac.CONTRACT_VERSION)}


def _start(tmp: Path, database_url: str | None = None) -> Server:
    users = [
        User(*ADMIN, "admin", "ops"),
        User("dhcp1", PW["dhcp1"], "agent"),
        User("dhcp2", PW["dhcp2"], "agent"),
        User("alice", PW["alice"], "member", "project-a"),
    ]
    env = {"METALNIC_AGENT_DOWN_TIME": str(DOWN_TIME)}
    return start_with_users(tmp, users, database_url, env)


server = module_server(_start, "dhcp-contract")


def client(server: Server, user: str) -> httpx.Client:
    return network_client(server, ADMIN if user == "admin" else (user, PW[user]), VERSION)


def beat(c: httpx.Client, host: str) -> httpx.Response:
    body = ac.Heartbeat(
        host=host,
        agent_type=dc.DHCP_AGENT,
        binary=dc.DHCP_BINARY,
        configurations=ac.AgentConfigurations.model_validate(
            {"bridge_mappings": {"physnet1": "br-dhcp"}, "dhcp_driver": "dnsmasq"}
        ),
    )
    return c.post("/metalnic/agents/heartbeat", json=body.model_dump(mode="json"))


def agents_of(server: Server, host: str) -> list[dict[str, Any]]:
    with client(server, "admin") as c:
        r = c.get("/agents", params={"host": host})
        assert r.status_code == 200, r.text
        return list(r.json()["agents"])


def test_a_dhcp_agent_registers_claims_nothing_and_dies_visibly(server: Server) -> None:
    with client(server, "dhcp1") as c:
        r = beat(c, "netnode-1")
        assert r.status_code == 200, r.text
        reply = ac.HeartbeatReply.model_validate(r.json())
        assert reply.agent.agent_type == "DHCP agent"
        assert reply.agent.configurations.nic_hosts == []  # it serves no NIC host
    (agent,) = agents_of(server, "netnode-1")
    assert agent["agent_type"] == "DHCP agent" and agent["binary"] == "metalnic-dhcp-agent"
    assert agent["alive"] is True
    with client(server, "admin") as c:
        only = c.get("/agents", params={"agent_type": "DHCP agent"}).json()["agents"]
        assert [a["host"] for a in only] == ["netnode-1"]
    time.sleep(DOWN_TIME + 0.5)
    (agent,) = agents_of(server, "netnode-1")
    assert agent["alive"] is False  # no heartbeat for agent_down_time: shown dead


def test_only_its_own_agent_user_reads_the_desired_state(server: Server) -> None:
    with client(server, "dhcp1") as c:
        assert beat(c, "netnode-2").status_code == 200
        r = c.get("/metalnic/dhcp-agents/netnode-2/desired")
        assert r.status_code == 200, r.text
        assert r.headers[ac.CONTRACT_HEADER] == str(ac.CONTRACT_VERSION)
        dc.DhcpDesiredState.model_validate(r.json())
    with client(server, "dhcp2") as other:
        r = other.get("/metalnic/dhcp-agents/netnode-2/desired")
        assert r.status_code == 403, r.text
        assert r.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
        # Another user cannot take the registered host over by heartbeating for it.
        assert beat(other, "netnode-2").status_code == 403
    with client(server, "alice") as member:
        assert member.get("/metalnic/dhcp-agents/netnode-2/desired").status_code == 403
    with client(server, "dhcp1") as c:
        # A host nobody registered: nobody speaks for it.
        assert c.get("/metalnic/dhcp-agents/netnode-9/desired").status_code == 403
        old = {ac.CONTRACT_HEADER: "99"}
        r = c.get("/metalnic/dhcp-agents/netnode-2/desired", headers=old)
        assert r.status_code == 400 and "version" in r.json()["NeutronError"]["message"]


def test_desired_state_lists_served_networks_and_wakes_on_change(server: Server) -> None:
    with client(server, "dhcp1") as agent, client(server, "admin") as admin:
        assert beat(agent, "netnode-3").status_code == 200
        net = admin.post(
            "/networks",
            json={
                "network": {
                    "name": "dhcp-net",
                    "provider:network_type": "vlan",
                    "provider:physical_network": "physnet1",
                    "provider:segmentation_id": 333,
                }
            },
        )
        assert net.status_code == 201, net.text
        net_id = net.json()["network"]["id"]
        before = agent.get("/metalnic/dhcp-agents/netnode-3/desired").json()
        assert before["networks"] == []
        dhcp_port = admin.post(
            "/ports",
            json={
                "port": {
                    "network_id": net_id,
                    "device_owner": "network:dhcp",
                    "binding:host_id": "netnode-3",
                }
            },
        )
        assert dhcp_port.status_code == 201, dhcp_port.text
        state = dc.DhcpDesiredState.model_validate(
            agent.get("/metalnic/dhcp-agents/netnode-3/desired").json()
        )
        assert state.revision > before["revision"]
        (served,) = state.networks
        assert (served.id, served.network_type, served.segmentation_id) == (net_id, "vlan", 333)
        assert served.port.mac_address == dhcp_port.json()["port"]["mac_address"]
        assert served.hosts == []

        # A long poll past the current revision wakes on the next port of the network.
        got: dict[str, Any] = {}

        def poll() -> None:
            params = {"since": state.revision, "wait": 20}
            got["r"] = agent.get("/metalnic/dhcp-agents/netnode-3/desired", params=params)

        waiter = threading.Thread(target=poll)
        began = time.monotonic()
        waiter.start()
        time.sleep(0.3)
        opts = [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"}]
        host_port = admin.post(
            "/ports",
            json={
                "port": {
                    "network_id": net_id,
                    "mac_address": "52:54:00:33:00:01",
                    "extra_dhcp_opts": opts,
                }
            },
        )
        assert host_port.status_code == 201, host_port.text
        waiter.join(timeout=25)
        assert time.monotonic() - began < 10  # woken by the change, not the timeout
        woke = dc.DhcpDesiredState.model_validate(got["r"].json())
        (entry,) = woke.networks[0].hosts
        assert entry.mac_address == "52:54:00:33:00:01"
        assert entry.port_id == host_port.json()["port"]["id"]
        assert [(o.opt_name, o.opt_value) for o in entry.extra_dhcp_opts] == [
            ("bootfile-name", "pxelinux.0")
        ]

        # Deleting the DHCP port: the network is no longer served by this agent.
        assert admin.delete(f"/ports/{dhcp_port.json()['port']['id']}").status_code == 204
        after = agent.get("/metalnic/dhcp-agents/netnode-3/desired").json()
        assert after["networks"] == [] and after["revision"] > woke.revision


def _dhcp_ports(admin: httpx.Client, net_id: str) -> list[dict[str, Any]]:
    r = admin.get("/ports", params={"network_id": net_id, "device_owner": "network:dhcp"})
    assert r.status_code == 200, r.text
    return list(r.json()["ports"])


def test_first_dhcp_subnet_makes_a_dhcp_port_scheduled_when_an_agent_registers(
    server: Server,
) -> None:
    with client(server, "admin") as admin, client(server, "dhcp2") as agent:
        net = admin.post("/networks", json={"network": {"name": "sched"}}).json()["network"]
        # No subnet, or one without DHCP: no DHCP port.
        plain = admin.post(
            "/subnets",
            json={
                "subnet": {
                    "network_id": net["id"],
                    "cidr": "10.61.0.0/24",
                    "ip_version": 4,
                    "enable_dhcp": False,
                }
            },
        )
        assert plain.status_code == 201, plain.text
        assert _dhcp_ports(admin, net["id"]) == []
        # Every DHCP agent registered so far is dead (the first test's) or not yet there:
        # netnode-s has not beaten yet, so the port waits unscheduled.
        for a in admin.get("/agents", params={"agent_type": "DHCP agent"}).json()["agents"]:
            admin.put(f"/agents/{a['id']}", json={"agent": {"admin_state_up": False}})
        sub = admin.post(
            "/subnets",
            json={
                "subnet": {
                    "network_id": net["id"],
                    "cidr": "10.62.0.0/24",
                    "ip_version": 4,
                    "gateway_ip": "10.62.0.1",
                    "dns_nameservers": ["10.62.0.53"],
                }
            },
        )
        assert sub.status_code == 201, sub.text
        sub_id = sub.json()["subnet"]["id"]
        (port,) = _dhcp_ports(admin, net["id"])
        assert port["binding:host_id"] == ""
        assert [ip["subnet_id"] for ip in port["fixed_ips"]] == [sub_id]  # DHCP subnets only

        on_dhcp = {"network_id": net["id"], "fixed_ips": [{"subnet_id": sub_id}]}
        host = admin.post("/ports", json={"port": on_dhcp}).json()["port"]
        assert beat(agent, "netnode-s").status_code == 200  # a DHCP agent registers
        (port,) = _dhcp_ports(admin, net["id"])
        assert port["binding:host_id"] == "netnode-s"
        state = dc.DhcpDesiredState.model_validate(
            agent.get("/metalnic/dhcp-agents/netnode-s/desired").json()
        )
        (served,) = state.networks
        assert [(s.id, s.cidr, s.gateway_ip, s.dns_nameservers) for s in served.subnets] == [
            (sub_id, "10.62.0.0/24", "10.62.0.1", ["10.62.0.53"])
        ]
        assert [ip.ip_address for ip in served.port.fixed_ips] == [
            port["fixed_ips"][0]["ip_address"]
        ]
        (entry,) = served.hosts
        got = [(ip.subnet_id, ip.ip_address) for ip in entry.fixed_ips]
        assert got == [
            (i["subnet_id"], i["ip_address"]) for i in host["fixed_ips"] if i["subnet_id"] == sub_id
        ]
        assert entry.hostname == "host-" + got[0][1].replace(".", "-")

        # A second DHCP subnet: the DHCP port gets an address on it too.
        sub2 = admin.post(
            "/subnets",
            json={"subnet": {"network_id": net["id"], "cidr": "10.63.0.0/24", "ip_version": 4}},
        ).json()["subnet"]
        (port,) = _dhcp_ports(admin, net["id"])
        assert {ip["subnet_id"] for ip in port["fixed_ips"]} == {sub_id, sub2["id"]}

        # The last DHCP subnet goes (the host port's addresses first): the DHCP port goes.
        assert admin.delete(f"/ports/{host['id']}").status_code == 204
        assert admin.delete(f"/subnets/{sub2['id']}").status_code == 204
        assert len(_dhcp_ports(admin, net["id"])) == 1
        assert admin.delete(f"/subnets/{sub_id}").status_code == 204
        assert _dhcp_ports(admin, net["id"]) == []
        after = agent.get("/metalnic/dhcp-agents/netnode-s/desired").json()
        assert after["networks"] == []

        # DHCP switched on (PUT) on the remaining subnet: a DHCP port again; off: gone.
        plain_id = plain.json()["subnet"]["id"]
        on = admin.put(f"/subnets/{plain_id}", json={"subnet": {"enable_dhcp": True}})
        assert on.status_code == 200, on.text
        (port,) = _dhcp_ports(admin, net["id"])
        assert [ip["subnet_id"] for ip in port["fixed_ips"]] == [plain_id]
        assert port["binding:host_id"] == "netnode-s"  # the live agent
        off = admin.put(f"/subnets/{plain_id}", json={"subnet": {"enable_dhcp": False}})
        assert off.status_code == 200, off.text
        assert _dhcp_ports(admin, net["id"]) == []


def test_nic_agents_learn_the_dhcp_servers_and_a_network_delete_takes_its_dhcp_port(
    server: Server,
) -> None:
    with client(server, "admin") as admin, client(server, "dhcp1") as agent:
        assert beat(agent, "netnode-n").status_code == 200
        ovs = {"host": "nic-agent-d", "configurations": {"smartnic": True, "nic_hosts": ["nic-d"]}}
        assert admin.post("/metalnic/agents/heartbeat", json=ovs).status_code == 200
        net = admin.post("/networks", json={"network": {"name": "nicnet"}}).json()["network"]
        bound = admin.post(
            "/ports",
            json={
                "port": {
                    "network_id": net["id"],
                    "binding:vnic_type": "smart-nic",
                    "binding:host_id": "nic-d",
                    "binding:profile": {
                        "local_link_information": [{"hostname": "nic-d", "port_id": "pf0hpf"}]
                    },
                }
            },
        )
        assert bound.status_code == 201, bound.text
        before = admin.get("/metalnic/hosts/nic-d/desired").json()
        assert before["ports"][0]["dhcp_servers"] == []
        sub = admin.post(
            "/subnets",
            json={"subnet": {"network_id": net["id"], "cidr": "10.64.0.0/24", "ip_version": 4}},
        )
        assert sub.status_code == 201, sub.text
        (dhcp,) = _dhcp_ports(admin, net["id"])
        after = admin.get("/metalnic/hosts/nic-d/desired").json()
        assert after["revision"] > before["revision"]  # the DHCP port bumped the NIC's feed
        assert after["ports"][0]["dhcp_servers"] == [
            {
                "mac_address": dhcp["mac_address"],
                "ip_addresses": [dhcp["fixed_ips"][0]["ip_address"]],
            }
        ]
        assert admin.delete(f"/ports/{bound.json()['port']['id']}").status_code == 204
        # Only the DHCP port is left: the network goes, and takes it along.
        assert admin.delete(f"/networks/{net['id']}").status_code == 204
        assert _dhcp_ports(admin, net["id"]) == []


def _race_subnets(server: Server) -> None:
    """Ten DHCP subnets created at once on one network: exactly one DHCP port, with one
    address on each of them."""
    with client(server, "admin") as admin:
        net = admin.post("/networks", json={"network": {"name": "race"}}).json()["network"]

    def create(i: int) -> int:
        body = {"network_id": net["id"], "cidr": f"10.7{i}.0.0/24", "ip_version": 4}
        with client(server, "admin") as c:
            r = c.post("/subnets", json={"subnet": body})
            return r.status_code if r.status_code == 201 else (r.status_code, r.text[:300])

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(create, range(10)))
    assert codes == [201] * 10, codes
    with client(server, "admin") as admin:
        (port,) = _dhcp_ports(admin, net["id"])
        subnets = admin.get("/subnets", params={"network_id": net["id"]}).json()["subnets"]
    assert sorted(ip["subnet_id"] for ip in port["fixed_ips"]) == sorted(s["id"] for s in subnets)


def test_racing_dhcp_subnets_make_one_dhcp_port(server: Server) -> None:
    _race_subnets(server)


@pytest.mark.postgres
def test_racing_dhcp_subnets_make_one_dhcp_port_on_postgres(tmp_path: Path) -> None:
    pg: Postgres = start_postgres()
    try:
        srv = _start(tmp_path, pg.create_database("dhcp_race"))
        try:
            _race_subnets(srv)
        finally:
            srv.stop()
    finally:
        pg.stop()


def test_deleting_a_dhcp_agent_moves_its_networks_to_a_live_one(server: Server) -> None:
    admin, one, two = (client(server, u) for u in ("admin", "dhcp1", "dhcp2"))
    with admin, one, two:
        for a in admin.get("/agents", params={"agent_type": "DHCP agent"}).json()["agents"]:
            admin.put(f"/agents/{a['id']}", json={"agent": {"admin_state_up": False}})
        assert beat(one, "netnode-m1").status_code == 200
        net = admin.post("/networks", json={"network": {"name": "move"}}).json()["network"]
        body = {"network_id": net["id"], "cidr": "10.66.0.0/24", "ip_version": 4}
        assert admin.post("/subnets", json={"subnet": body}).status_code == 201
        (port,) = _dhcp_ports(admin, net["id"])
        assert port["binding:host_id"] == "netnode-m1"
        assert beat(two, "netnode-m2").status_code == 200
        (gone,) = admin.get("/agents", params={"host": "netnode-m1"}).json()["agents"]
        assert admin.delete(f"/agents/{gone['id']}").status_code == 204
        (port,) = _dhcp_ports(admin, net["id"])
        assert port["binding:host_id"] == "netnode-m2"
        state = two.get("/metalnic/dhcp-agents/netnode-m2/desired").json()
        assert [n["id"] for n in state["networks"]] == [net["id"]]


def test_the_dhcp_port_is_the_network_services_not_the_network_owners(server: Server) -> None:
    with client(server, "alice") as alice:
        net = alice.post("/networks", json={"network": {"name": "owned"}})
        assert net.status_code == 201, net.text
        net_id = net.json()["network"]["id"]
        body = {"network_id": net_id, "cidr": "10.67.0.0/24", "ip_version": 4}
        assert alice.post("/subnets", json={"subnet": body}).status_code == 201
        (port,) = _dhcp_ports(alice, net_id)  # she sees it, as in Neutron
        for r in (
            alice.put(f"/ports/{port['id']}", json={"port": {"name": "mine"}}),
            alice.delete(f"/ports/{port['id']}"),
            alice.post(
                "/ports", json={"port": {"network_id": net_id, "device_owner": "network:dhcp"}}
            ),
        ):
            assert r.status_code == 403, r.text
            assert r.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
        assert [p["id"] for p in _dhcp_ports(alice, net_id)] == [port["id"]]
