"""End to end on real Open vSwitch: the conductor deploys smart NIC nodes, real agents
program real NICs (two local, one remote over SSL), and packets show the result.

The lab is ``metalnic lab``'s data centre; power and deploy are the fake-hardware
interfaces (the BMC emulators and host simulators of issue 6 are not wired in
yet), so the "instance" is configured by the test once the node is active.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalnic.lab import datacentre, netns
from metalnic.lab.topology import Lab
from tests.integration.conductor_helpers import audit_smartnic_order, history, provision, wait_for
from tests.ovslab import AgentProcess, ping, require_ovs, wait_until
from tests.support import Server, add_user, ssh_public_key, start_server

ADMIN = ("admin", "admin-secret-1")
TENANT_IPS = {"host1": "10.50.0.1", "host2": "10.50.0.2", "host3": "10.50.0.3"}


@dataclass
class E2E:
    server: Server
    lab: dict[str, Any]
    nodes: dict[str, str]  # host → node uuid
    nets: dict[str, str]
    agents: list[AgentProcess]


def _agents(tmp: Path, server: Server, lab: dict[str, Any], password: Path) -> list[AgentProcess]:
    common = (
        f'server = "{server.url}"\nusername = "lab-agent"\npassword_file = "{password}"\n'
        'datapath_type = "netdev"\nresync_interval = 2.0\nheartbeat_interval = 0.5\n'
    )
    agents = []
    remote_nics = ""
    for nic in lab["nics"]:
        flows = ", ".join(f'{b} = "{t}"' for b, t in nic["openflow"].items())
        block = (
            f'[nics.{nic["name"]}]\novsdb = "{nic["ovsdb"]}"\nopenflow = {{ {flows} }}\n'
            'bridge_mappings = { physnet1 = "br-phys" }\n'
        )
        if nic["mode"] == "local":
            agents.append(
                AgentProcess(
                    tmp,
                    f"agent-{nic['name']}",
                    common + f'mode = "local"\nhost = "agent-{nic["name"]}"\n' + block,
                )
            )
        else:
            remote_nics += block
    if remote_nics:
        tls = lab["agent_tls"]
        agents.append(
            AgentProcess(
                tmp,
                "agent-remote",
                common + 'mode = "remote"\nhost = "agent-remote"\n'
                f'private_key = "{tls["private_key"]}"\ncertificate = "{tls["certificate"]}"\n'
                f'state_dir = "{tmp / "agent-state"}"\n' + remote_nics,
            )
        )
    return agents


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    require_ovs()
    tmp = tmp_path_factory.mktemp("e2e")
    users = tmp / "users.toml"
    add_user(users, "admin", ADMIN[1], "admin", "ops")
    add_user(users, "lab-agent", "lab-agent-secret", "agent", None)
    (tmp / "agent.password").write_text("lab-agent-secret\n")
    spec = datacentre.LabSpec(f"e2e{tmp.name[-4:]}", local_nics=2, remote_nics=1)
    lab_dir = tmp / "lab"
    server = start_server(
        tmp / "server",
        "--auth",
        "http_basic",
        "--users-file",
        str(users),
        env={
            "METALNIC_PERIODIC_INTERVAL": "0.5",
            "METALNIC_PORT_ACTIVE_TIMEOUT": "20",
            "METALNIC_PORT_REMOVED_TIMEOUT": "20",
            "METALNIC_AGENT_DOWN_TIME": "4",
        },
    )
    server.auth = ADMIN
    agents: list[AgentProcess] = []
    try:
        lab = datacentre.up(spec, lab_dir)
        agents = _agents(tmp, server, lab, tmp / "agent.password")
        for agent in agents:
            agent.start()
        with httpx.Client(
            base_url=server.url,
            auth=ADMIN,
            timeout=30,
            headers={"X-OpenStack-Ironic-API-Version": "1.53"},
        ) as c:
            wait_until(
                lambda: (
                    len([a for a in c.get("/network/v2.0/agents").json()["agents"] if a["alive"]])
                    == len(agents)
                ),
                20,
                "agents alive",
            )
            nets = {}
            r = c.post(
                "/network/v2.0/networks",
                json={
                    "network": {
                        "name": "provisioning",
                        "provider:network_type": "vlan",
                        "provider:physical_network": "physnet1",
                        "provider:segmentation_id": lab["provisioning"]["vlan"],
                    }
                },
            )
            assert r.status_code == 201, r.text
            nets["provisioning"] = r.json()["network"]["id"]
            for name in ("tenant-a", "tenant-b"):
                r = c.post("/network/v2.0/networks", json={"network": {"name": name}})
                assert r.status_code == 201, r.text
                nets[name] = r.json()["network"]["id"]
            nodes = {}
            for host in lab["hosts"]:
                nic = next(n for n in lab["nics"] if n["name"] == host["nic"])
                node = c.post(
                    "/v1/nodes",
                    json={
                        "driver": "fake-hardware",
                        "name": f"node-{host['name']}",
                        "network_interface": "smartnic",
                        "deploy_interface": "fake",
                    },
                ).json()["uuid"]
                llc = {"hostname": nic["name"], "port_id": host["port_b"]}
                if nic["mode"] == "remote":
                    llc.update(
                        ssh_public_key=ssh_public_key(),
                        ovsdb_cert=nic["ovsdb_cert"],
                        ovsdb_ca_cert=nic["ovsdb_ca_cert"],
                    )
                r = c.post(
                    "/v1/ports",
                    json={
                        "node_uuid": node,
                        "address": host["mac"],
                        "is_smartnic": True,
                        "local_link_connection": llc,
                    },
                )
                assert r.status_code == 201, r.text
                nodes[host["name"]] = node
        yield E2E(server, lab, nodes, nets, agents)
    finally:
        for agent in agents:
            agent.stop()
        datacentre.teardown(spec.prefix, lab_dir)
        server.stop()


def _host(e2e: E2E, name: str) -> dict[str, Any]:
    return next(h for h in e2e.lab["hosts"] if h["name"] == name)


def _instance(e2e: E2E, name: str) -> None:
    """What the deployed image would do: configure its tenant address."""
    host = _host(e2e, name)
    netns.run(
        netns.in_ns(
            host["netns"], "ip", "addr", "replace", f"{TENANT_IPS[name]}/24", "dev", host["port_a"]
        )
    )
    netns.run(netns.in_ns(host["netns"], "ip", "neigh", "flush", "all"))


def test_deploy_two_tenants_and_check_packets(e2e: E2E) -> None:
    lab = Lab(e2e.lab["prefix"], Path(e2e.lab["dir"]))
    tenants = {"host1": "tenant-a", "host2": "tenant-a", "host3": "tenant-b"}
    with httpx.Client(
        base_url=e2e.server.url,
        auth=ADMIN,
        timeout=30,
        headers={"X-OpenStack-Ironic-API-Version": "1.53"},
    ) as c:
        for host, node in e2e.nodes.items():
            vif = c.post(
                "/network/v2.0/ports", json={"port": {"network_id": e2e.nets[tenants[host]]}}
            ).json()
            assert (
                c.post(f"/v1/nodes/{node}/vifs", json={"id": vif["port"]["id"]}).status_code == 204
            )
            provision(c, node, "manage")
            wait_for(c, node, "manageable")
            provision(c, node, "provide")
        for node in e2e.nodes.values():
            wait_for(c, node, "available", timeout=120)
            provision(c, node, "active")
        for node in e2e.nodes.values():
            shown = wait_for(c, node, "active", timeout=120)
            assert shown["last_error"] is None
            audit_smartnic_order(history(c, node))
        events = " ".join(e["event"] for e in history(c, e2e.nodes["host3"]))
    for host in tenants:
        _instance(e2e, host)
    wait_until(lambda: ping(lab, "host1", TENANT_IPS["host2"]), 15, "host1 reaches host2")
    assert ping(lab, "host2", TENANT_IPS["host1"])
    for a, b in (("host3", "host1"), ("host1", "host3"), ("host3", "host2")):
        assert not ping(lab, a, TENANT_IPS[b])
    # host3 sits behind the remote NIC (programmed over SSL); its boot gate passed,
    # which includes the agent's read-back from OVS.
    assert "ports verified ACTIVE on the tenant network" in events
    # A deployed host is on its tenant network only: the provisioning network is gone.
    host1 = _host(e2e, "host1")
    netns.run(
        netns.in_ns(host1["netns"], "ip", "addr", "add", "10.99.0.51/24", "dev", host1["port_a"])
    )
    assert not ping(lab, "host1", e2e.lab["provisioning"]["server_ip"])
    # Undeploy host2: cleaning returns its NIC port to deny-by-default.
    with httpx.Client(
        base_url=e2e.server.url,
        auth=ADMIN,
        timeout=30,
        headers={"X-OpenStack-Ironic-API-Version": "1.53"},
    ) as c:
        provision(c, e2e.nodes["host2"], "deleted")
        wait_for(c, e2e.nodes["host2"], "available", timeout=120)
    assert not ping(lab, "host1", TENANT_IPS["host2"])
    assert not ping(lab, "host2", TENANT_IPS["host1"])


def test_dead_agent_fails_the_deploy_cleanly_then_redeploy_works(e2e: E2E) -> None:
    """host2 (available after the previous test) is deployed while its NIC's agent is
    stopped: the deploy fails with a clear last_error, the host is off, and nothing is
    plugged on its NIC; with the agent back, the same deploy succeeds."""
    agent = next(a for a in e2e.agents if a.path.name == "agent-nic2.toml")
    node = e2e.nodes["host2"]
    lab = Lab(e2e.lab["prefix"], Path(e2e.lab["dir"]))
    nic = lab.ovs("nic2")
    port_b = _host(e2e, "host2")["port_b"]
    with httpx.Client(
        base_url=e2e.server.url,
        auth=ADMIN,
        timeout=30,
        headers={"X-OpenStack-Ironic-API-Version": "1.53"},
    ) as c:
        assert c.get(f"/v1/nodes/{node}").json()["provision_state"] == "available"
        agent.stop()
        wait_until(
            lambda: (
                not any(
                    a["host"] == "agent-nic2" and a["alive"]
                    for a in c.get("/network/v2.0/agents").json()["agents"]
                )
            ),
            20,
            "agent-nic2 seen dead",
        )
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed", timeout=120)
        assert "no live agent serves NIC host nic2" in failed["last_error"], failed["last_error"]
        assert failed["power_state"] == "power off"
        leftovers = c.get("/network/v2.0/ports", params={"device_id": node}).json()["ports"]
        assert [p for p in leftovers if p["binding:host_id"]] == []
        tag = nic.vsctl("--if-exists", "get", "Port", port_b, "tag").strip()
        assert tag in ("", "4095")  # never plugged into a network while the agent was away
        agent.start()
        wait_until(
            lambda: any(
                a["host"] == "agent-nic2" and a["alive"]
                for a in c.get("/network/v2.0/agents").json()["agents"]
            ),
            20,
            "agent-nic2 back",
        )
        provision(c, node, "active")
        assert wait_for(c, node, "active", timeout=120)["last_error"] is None
    _instance(e2e, "host2")
    wait_until(lambda: ping(lab, "host2", TENANT_IPS["host1"]), 15, "host2 reaches host1 again")
