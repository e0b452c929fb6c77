"""The smartnic network interface against the embedded network service, with fake
agent processes that heartbeat and ack through the real HTTP contract."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conductor_helpers import audit_smartnic_order, history, provision, wait_for
from tests.integration.helpers import fault, make_node, make_port, random_mac
from tests.support import ROOT, Server, start_server

ENV = {
    "METALNIC_PERIODIC_INTERVAL": "0.3",
    "METALNIC_PORT_ACTIVE_TIMEOUT": "4",
    "METALNIC_PORT_REMOVED_TIMEOUT": "4",
    "METALNIC_AGENT_DOWN_TIME": "2",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("smartnic"), env=ENV)
    with srv.client(None) as c:
        for name in ("provisioning", "tenant-a"):
            r = c.post("/network/v2.0/networks", json={"network": {"name": name}})
            assert r.status_code == 201, r.text
    yield srv
    srv.stop()


class Agents:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server, self.tmp = server, tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, host: str, *args: str) -> None:
        self.procs[host] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fake_agent",
                "--url",
                self.server.url,
                "--host",
                host,
                "--log",
                str(self.tmp / f"{host}.log"),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, host: str) -> None:
        proc = self.procs.pop(host)
        proc.terminate()
        proc.wait(timeout=10)

    def seen(self, host: str) -> list[float]:
        path = self.tmp / f"{host}.log"
        return [float(line.split()[2]) for line in path.read_text().splitlines()]

    def wait_alive(self, c: httpx.Client, *hosts: str) -> None:
        for _ in range(100):
            agents = c.get("/network/v2.0/agents").json()["agents"]
            if {h for h in hosts} <= {a["host"] for a in agents if a["alive"]}:
                return
            time.sleep(0.1)
        raise AssertionError(f"agents {hosts} never became alive")

    def wait_dead(self, c: httpx.Client, host: str) -> None:
        for _ in range(100):
            agents = c.get("/network/v2.0/agents").json()["agents"]
            if not any(a["host"] == host and a["alive"] for a in agents):
                return
            time.sleep(0.1)
        raise AssertionError(f"agent {host} still alive")

    def close(self) -> None:
        for host in list(self.procs):
            self.stop(host)


@pytest.fixture
def agents(server: Server, tmp_path: Path) -> Iterator[Agents]:
    fleet = Agents(server, tmp_path)
    yield fleet
    fleet.close()


def smartnic_node(c: httpx.Client, hosts: list[str]) -> tuple[str, str]:
    """A node with one smart NIC port per host and a tenant VIF; returns (node, vif)."""
    node = make_node(c, network_interface="smartnic", deploy_interface="fake")["uuid"]
    for i, host in enumerate(hosts):
        make_port(
            c,
            node,
            is_smartnic=True,
            local_link_connection={"hostname": host, "port_id": f"pf{i}hpf"},
        )
    net = c.get("/network/v2.0/networks", params={"name": "tenant-a"}).json()["networks"][0]
    vif = c.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    r = c.post(f"/v1/nodes/{node}/vifs", json={"id": vif["id"]})
    assert r.status_code == 204, r.text
    return node, vif["id"]


def node_ports(c: httpx.Client, node: str) -> list[dict[str, Any]]:
    return list(c.get("/network/v2.0/ports", params={"device_id": node}).json()["ports"])


def test_deploy_plugs_both_ports_in_parallel(server: Server, agents: Agents) -> None:
    agents.start("nic-a", "--delay", "1.0")
    agents.start("nic-b", "--delay", "1.0")
    with server.client() as c:
        agents.wait_alive(c, "nic-a", "nic-b")
        node, vif = smartnic_node(c, ["nic-a", "nic-b"])
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        wait_for(c, node, "available", timeout=60)
        provision(c, node, "active")
        active = wait_for(c, node, "active", timeout=60)
        events = history(c, node)
        bound = c.get(f"/network/v2.0/ports/{vif}").json()["port"]
        leftovers = [p for p in node_ports(c, node) if p["id"] != vif]
    assert active["last_error"] is None
    assert bound["status"] == "ACTIVE" and bound["binding:host_id"] in ("nic-a", "nic-b")
    assert bound["binding:profile"]["baremetal_node"] == node
    assert leftovers == []  # provisioning and cleaning ports were deleted again
    audit_smartnic_order(events)
    # Each agent saw its first (cleaning) port within the other's 1 s ack delay: parallel.
    assert abs(agents.seen("nic-a")[0] - agents.seen("nic-b")[0]) < 0.9


def test_dead_agent_fails_cleanly(server: Server, agents: Agents) -> None:
    agents.start("nic-c")
    with server.client() as c:
        agents.wait_alive(c, "nic-c")
        node, _vif = smartnic_node(c, ["nic-c", "nic-d"])  # nobody serves nic-d
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        failed = wait_for(c, node, "clean failed", timeout=60)
        leftovers = [p for p in node_ports(c, node) if p["name"].startswith("metalnic-")]
    assert "nic-d" in failed["last_error"] and "no live agent" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert leftovers == []  # nic-c's cleaning port was rolled back


def test_timeout_rolls_back_every_port(server: Server, agents: Agents) -> None:
    agents.start("nic-e")
    agents.start("nic-f", "--silent")
    with server.client() as c:
        agents.wait_alive(c, "nic-e", "nic-f")
        node, _vif = smartnic_node(c, ["nic-e", "nic-f"])
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        failed = wait_for(c, node, "clean failed", timeout=60)
        leftovers = [p for p in node_ports(c, node) if p["name"].startswith("metalnic-")]
    assert "nic-f" in failed["last_error"] and "timed out" in failed["last_error"]
    assert leftovers == []


def test_agent_error_is_reported(server: Server, agents: Agents) -> None:
    agents.start("nic-g", "--error", "port pf0hpf missing on the NIC")
    with server.client() as c:
        agents.wait_alive(c, "nic-g")
        node, _vif = smartnic_node(c, ["nic-g"])
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        failed = wait_for(c, node, "clean failed", timeout=60)
    assert "port pf0hpf missing on the NIC" in failed["last_error"]


def test_vif_api(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        make_port(
            c, node, is_smartnic=True, local_link_connection={"hostname": "nic-x", "port_id": "p0"}
        )
        r = c.post(f"/v1/nodes/{node}/vifs", json={"id": "00000000-0000-0000-0000-00000000abcd"})
        assert r.status_code == 404 and "could not be found" in r.text
        net = c.get("/network/v2.0/networks", params={"name": "tenant-a"}).json()["networks"][0]
        vif = c.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()
        vif_id = vif["port"]["id"]
        assert c.post(f"/v1/nodes/{node}/vifs", json={"id": vif_id}).status_code == 204
        assert c.get(f"/v1/nodes/{node}/vifs").json() == {"vifs": [{"id": vif_id}]}
        assert c.post(f"/v1/nodes/{node}/vifs", json={"id": vif_id}).status_code == 409
        assert c.delete(f"/v1/nodes/{node}/vifs/{vif_id}").status_code == 204
        assert c.get(f"/v1/nodes/{node}/vifs").json() == {"vifs": []}


def test_agent_dying_mid_wait_fails_fast(server: Server, agents: Agents) -> None:
    agents.start("nic-h", "--silent")
    with server.client() as c:
        agents.wait_alive(c, "nic-h")
        node, _vif = smartnic_node(c, ["nic-h"])
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        r = c.patch(
            f"/v1/nodes/{node}",
            json=[{"op": "add", "path": "/driver_info/fake_power_delay", "value": "0.2"}],
        )
        assert r.status_code == 200
        provision(c, node, "provide")
        for _ in range(50):  # until the cleaning port exists and the wait has begun
            if [p for p in node_ports(c, node) if p["name"].startswith("metalnic-cleaning")]:
                break
            time.sleep(0.1)
        agents.stop("nic-h")
        failed = wait_for(c, node, "clean failed", timeout=30)
    assert "nic-h stopped meanwhile" in failed["last_error"]


def test_missing_provisioning_network_is_a_clear_error(tmp_path: Path, agents: Agents) -> None:
    srv = start_server(
        tmp_path,
        env={
            **ENV,
            "METALNIC_PROVISIONING_NETWORK": "no-such-net",
            "METALNIC_CLEANING_NETWORK": "no-such-net",
        },
    )
    try:
        agents.server = srv
        agents.start("nic-i")
        with srv.client() as c:
            agents.wait_alive(c, "nic-i")
            node = make_node(c, network_interface="smartnic")["uuid"]
            make_port(
                c,
                node,
                is_smartnic=True,
                local_link_connection={"hostname": "nic-i", "port_id": "p0"},
            )
            provision(c, node, "manage")
            wait_for(c, node, "manageable")
            provision(c, node, "provide")
            failed = wait_for(c, node, "clean failed")
        assert "Network no-such-net could not be found" in failed["last_error"]
    finally:
        agents.close()
        srv.stop()


def test_bond_of_smart_nic_ports_is_one_network_port(server: Server, agents: Agents) -> None:
    """A port group of two smart NIC ports on one NIC plugs as one bonded network port;
    a standalone smart NIC port on another NIC is plugged beside it, in parallel."""
    agents.start("nic-bond", "--delay", "0.5")
    agents.start("nic-solo", "--delay", "0.5")
    with server.client() as c:
        agents.wait_alive(c, "nic-bond", "nic-solo")
        node = make_node(c, network_interface="smartnic", deploy_interface="fake")["uuid"]
        r = c.post(
            "/v1/portgroups",
            json={
                "node_uuid": node,
                "name": f"bond-{node[:8]}",
                "mode": "802.3ad",
                "address": random_mac(),
                "properties": {"miimon": "100"},
            },
        )
        assert r.status_code == 201, r.text
        group = r.json()
        members = [
            make_port(
                c,
                node,
                is_smartnic=True,
                portgroup_uuid=group["uuid"],
                local_link_connection={"hostname": "nic-bond", "port_id": f"pf{i}hpf"},
            )
            for i in range(2)
        ]
        solo = make_port(
            c,
            node,
            is_smartnic=True,
            local_link_connection={"hostname": "nic-solo", "port_id": "pf0hpf"},
        )
        net = c.get("/network/v2.0/networks", params={"name": "tenant-a"}).json()["networks"][0]
        vifs = [
            c.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
            for _ in range(2)
        ]
        for vif in vifs:
            assert c.post(f"/v1/nodes/{node}/vifs", json={"id": vif["id"]}).status_code == 204
        # Ironic's order: the port group takes the first VIF, the free port the second.
        shown_group = c.get(f"/v1/portgroups/{group['uuid']}").json()
        assert shown_group["internal_info"] == {"tenant_vif_port_id": vifs[0]["id"]}
        assert c.get(f"/v1/ports/{solo['uuid']}").json()["internal_info"] == {
            "tenant_vif_port_id": vifs[1]["id"]
        }
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        wait_for(c, node, "available", timeout=60)
        provision(c, node, "active")
        active = wait_for(c, node, "active", timeout=60)
        bond = c.get(f"/network/v2.0/ports/{vifs[0]['id']}").json()["port"]
        single = c.get(f"/network/v2.0/ports/{vifs[1]['id']}").json()["port"]
        leftovers = [p for p in node_ports(c, node) if p["id"] not in {v["id"] for v in vifs}]
        events = history(c, node)
        # While deployed, bond membership and mode are wiring: refused.
        r = c.patch(
            f"/v1/portgroups/{group['uuid']}",
            json=[{"op": "replace", "path": "/mode", "value": "active-backup"}],
        )
        assert r.status_code == 409, r.text
        r = c.patch(
            f"/v1/ports/{members[1]['uuid']}", json=[{"op": "remove", "path": "/portgroup_uuid"}]
        )
        assert r.status_code == 409, r.text
    assert active["last_error"] is None
    assert bond["status"] == "ACTIVE" and bond["binding:host_id"] == "nic-bond"
    profile = bond["binding:profile"]
    assert [x["port_id"] for x in profile["local_link_information"]] == ["pf0hpf", "pf1hpf"]
    assert profile["local_group_information"] == {
        "id": group["uuid"],
        "name": group["name"],
        "bond_mode": "802.3ad",
        "bond_properties": {"miimon": "100"},
    }
    assert profile["baremetal_portgroup"] == group["uuid"]
    # The VIFs took the MACs the host sends with (Ironic's rule): the bond's, the port's.
    assert bond["mac_address"] == group["address"] and single["mac_address"] == solo["address"]
    assert single["status"] == "ACTIVE" and single["binding:host_id"] == "nic-solo"
    assert single["binding:profile"]["baremetal_port"] == solo["uuid"]
    assert leftovers == []
    audit_smartnic_order(events)
    # Cleaning and provisioning each made one network port per link: bond + solo.
    assert len(agents.seen("nic-bond")) == 3 and len(agents.seen("nic-solo")) == 3


def test_vif_hot_attach_and_detach_on_a_deployed_node(server: Server, agents: Agents) -> None:
    """On an active node a VIF is plugged (ACTIVE on the NIC) before the API answers,
    and unplugged before a detach answers; with the NIC's agent gone, attach fails
    with a clear error and leaves neither a record nor a bound port."""
    agents.start("nic-hot1")
    agents.start("nic-hot2")
    with server.client() as c:
        agents.wait_alive(c, "nic-hot1", "nic-hot2")
        node, first = smartnic_node(c, ["nic-hot1", "nic-hot2"])
        for verb, state in (("manage", "manageable"), ("provide", "available")):
            provision(c, node, verb)
            wait_for(c, node, state, timeout=60)
        provision(c, node, "active")
        wait_for(c, node, "active", timeout=60)
        net = c.get("/network/v2.0/networks", params={"name": "tenant-a"}).json()["networks"][0]
        second = c.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()
        second_id = second["port"]["id"]
        r = c.post(f"/v1/nodes/{node}/vifs", json={"id": second_id})
        assert r.status_code == 204, r.text
        plugged = c.get(f"/network/v2.0/ports/{second_id}").json()["port"]
        hosts = {
            plugged["binding:host_id"],
            c.get(f"/network/v2.0/ports/{first}").json()["port"]["binding:host_id"],
        }
        assert plugged["status"] == "ACTIVE" and hosts == {"nic-hot1", "nic-hot2"}
        assert {v["id"] for v in c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]} == {
            first,
            second_id,
        }
        r = c.delete(f"/v1/nodes/{node}/vifs/{second_id}")
        assert r.status_code == 204, r.text
        unplugged = c.get(f"/network/v2.0/ports/{second_id}").json()["port"]
        assert unplugged["binding:host_id"] == "" and unplugged["status"] == "DOWN"
        # The NIC that would take it loses its agent: attach fails, nothing stays.
        agents.stop(plugged["binding:host_id"])
        agents.wait_dead(c, plugged["binding:host_id"])
        r = c.post(f"/v1/nodes/{node}/vifs", json={"id": second_id})
        assert r.status_code == 503, r.text
        assert "no live agent serves NIC host" in fault(r)
        assert [v["id"] for v in c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]] == [first]
        again = c.get(f"/network/v2.0/ports/{second_id}").json()["port"]
        assert again["binding:host_id"] == "" and again["status"] == "DOWN"
        shown = c.get(f"/v1/nodes/{node}").json()
        assert shown["provision_state"] == "active" and shown["reservation"] is None
        events = [e["event"] for e in history(c, node)]
    assert any(f"tenant VIF {second_id} plugged" in e for e in events)
    assert any(f"tenant VIF {second_id} not plugged" in e for e in events)


def _since(events: list[dict[str, Any]], seen: int) -> list[str]:
    return [f"{e['event_type']}: {e['event']}" for e in events[seen:]]


def _power(c: httpx.Client, node: str, target: str) -> None:
    r = c.put(f"/v1/nodes/{node}/states/power", json={"target": target})
    assert r.status_code == 202, r.text
    for _ in range(100):
        shown = c.get(f"/v1/nodes/{node}").json()
        if shown["reservation"] is None and shown["power_state"] == target:
            return
        time.sleep(0.1)
    raise AssertionError(f"node {node} never reached {target}")


def test_vif_hot_plug_follows_the_power_rule(server: Server, agents: Agents) -> None:
    """On a deployed host that is off, a VIF attach or detach holds the host in BIOS
    while its smart NIC changes, passes the boot gate before the NIC loses power and
    gives the disk back as boot device; on a running host nothing is power cycled."""
    agents.start("nic-rule1")
    agents.start("nic-rule2")
    with server.client() as c:
        agents.wait_alive(c, "nic-rule1", "nic-rule2")
        node, _first = smartnic_node(c, ["nic-rule1", "nic-rule2"])
        for verb, state in (
            ("manage", "manageable"),
            ("provide", "available"),
            ("active", "active"),
        ):
            provision(c, node, verb)
            wait_for(c, node, state, timeout=60)
        _power(c, node, "power off")
        net = c.get("/network/v2.0/networks", params={"name": "tenant-a"}).json()["networks"][0]
        vif = c.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()
        vif_id = vif["port"]["id"]
        seen = len(history(c, node))
        assert c.post(f"/v1/nodes/{node}/vifs", json={"id": vif_id}).status_code == 204
        attach_log = _since(history(c, node), seen)
        shown = c.get(f"/v1/nodes/{node}").json()
        seen = len(history(c, node))
        assert c.delete(f"/v1/nodes/{node}/vifs/{vif_id}").status_code == 204
        detach_log = _since(history(c, node), seen)
        _power(c, node, "power on")
        seen = len(history(c, node))
        assert c.post(f"/v1/nodes/{node}/vifs", json={"id": vif_id}).status_code == 204
        running_log = _since(history(c, node), seen)
        plugged = c.get(f"/network/v2.0/ports/{vif_id}").json()["port"]

    def at(log: list[str], text: str) -> int:
        return next(i for i, e in enumerate(log) if text in e)

    # Off: BIOS, power on, plug, gate, power off, disk again — in that order.
    order = [
        at(attach_log, "next boot from bios"),
        at(attach_log, "power on (BMC confirmed)"),
        at(attach_log, f"tenant VIF {vif_id}: plugging"),
        at(attach_log, "boot_gate: ports verified ACTIVE on the tenant network"),
        at(attach_log, f"tenant VIF {vif_id} plugged"),
        at(attach_log, "power off (BMC confirmed)"),
        at(attach_log, "next boot from disk (persistent)"),
    ]
    assert order == sorted(order), attach_log
    assert shown["power_state"] == "power off" and shown["reservation"] is None
    order = [
        at(detach_log, "next boot from bios"),
        at(detach_log, "power on (BMC confirmed)"),
        at(detach_log, f"tenant VIF {vif_id} unplugged"),
        at(detach_log, "power off (BMC confirmed)"),
        at(detach_log, "next boot from disk (persistent)"),
    ]
    assert order == sorted(order), detach_log
    # Running: plugged and gated without touching the power or the boot device.
    assert not [e for e in running_log if e.startswith(("power:", "boot_device:"))], running_log
    assert any("boot_gate" in e for e in running_log) and plugged["status"] == "ACTIVE"
