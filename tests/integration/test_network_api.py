"""The network API (/network/v2.0) with the real openstack CLI and openstacksdk."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest

from tests.conftest import PASSWORDS
from tests.support import Server, add_user, openstack_cli, start_server


@pytest.fixture(scope="module")
def net_server(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("network")
    own_users = tmp / "users.toml"  # the shared file stays as other tests expect it
    shutil.copy(users_file, own_users)
    granted = ("nic-sdk", "nic-poll", "nic-r1", "nic-r2", "nic-owned", "nic-mac")
    add_user(own_users, "nic-agent", "agent-secret-5", "agent", None, nic_hosts=granted)
    add_user(own_users, "other-agent", "agent-secret-6", "agent", None)
    srv = start_server(
        tmp,
        "--auth",
        "http_basic",
        "--users-file",
        str(own_users),
        env={
            "METALNIC_NETWORK_VLAN_RANGES": '["physnet1:100:102"]',
            "METALNIC_AGENT_DOWN_TIME": "30",  # a loaded machine: the CLI starts slowly
        },
    )
    srv.auth = ("admin", PASSWORDS["admin"])
    yield srv
    srv.stop()


def os_cli(server: Server, user: str, *args: str) -> Any:
    r = openstack_cli(server.url + "/network", *args, auth=(user, PASSWORDS[user]))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "-f" in args and "json" in args else r.stdout


def agent_client(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/network/v2.0", timeout=30, auth=("nic-agent", "agent-secret-5")
    )


def neutron_error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    assert set(body["NeutronError"]) == {"type", "message", "detail"}
    return dict(body["NeutronError"])


def test_discovery_is_neutron_shaped(net_server: Server) -> None:
    body = httpx.get(net_server.url + "/network/").json()
    assert body["versions"][0]["id"] == "v2.0"
    assert "/v1" not in str(body)


def test_networks_with_the_openstack_cli(net_server: Server) -> None:
    net = os_cli(net_server, "admin", "network", "create", "cli-net", "-f", "json")
    assert net["provider:network_type"] == "vlan"
    assert 100 <= net["provider:segmentation_id"] <= 102
    fixed = os_cli(
        net_server,
        "admin",
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "2000",
        "cli-fixed",
        "-f",
        "json",
    )
    assert fixed["provider:segmentation_id"] == 2000
    dup = openstack_cli(
        net_server.url + "/network",
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "2000",
        "dup",
        auth=("admin", PASSWORDS["admin"]),
    )
    assert dup.returncode != 0 and "VLAN 2000 on physical network physnet1 is in use" in dup.stderr
    listed = os_cli(net_server, "olga", "network", "list", "-f", "json")
    assert {"cli-net", "cli-fixed"} <= {n["Name"] for n in listed}
    refused = openstack_cli(
        net_server.url + "/network", "network", "create", "x", auth=("olga", PASSWORDS["olga"])
    )
    assert refused.returncode != 0


def test_vlan_out_of_range_and_exhaustion(net_server: Server) -> None:
    with net_server.client(None) as c:
        r = c.post(
            "/network/v2.0/networks",
            json={
                "network": {
                    "name": "bad",
                    "provider:network_type": "vlan",
                    "provider:physical_network": "physnet1",
                    "provider:segmentation_id": 5000,
                }
            },
        )
        assert r.status_code == 400 and "4094" in neutron_error(r)["message"]
        made = []
        while True:
            r = c.post("/network/v2.0/networks", json={"network": {"name": "fill"}})
            if r.status_code != 201:
                break
            made.append(r.json()["network"]["id"])
        assert r.status_code == 409
        assert neutron_error(r)["type"] == "NoNetworkAvailable"
        for net_id in made:
            assert c.delete(f"/network/v2.0/networks/{net_id}").status_code == 204
        r = c.get("/network/v2.0/networks/00000000-0000-0000-0000-000000000000")
        assert r.status_code == 404 and neutron_error(r)["type"] == "NetworkNotFound"


def test_smartnic_port_binding_follows_the_agent(net_server: Server) -> None:
    conn = openstack.connect(
        auth_type="http_basic",
        username="admin",
        password=PASSWORDS["admin"],
        network_endpoint_override=net_server.url + "/network",
        load_yaml_config=False,
        load_envvars=False,
    )
    net = conn.network.create_network(name="sdk-net")
    profile = {"local_link_information": [{"hostname": "nic-sdk", "port_id": "pf0hpf"}]}
    port = conn.network.create_port(
        network_id=net.id,
        binding_vnic_type="smart-nic",
        binding_host_id="nic-sdk",
        binding_profile=profile,
        device_owner="baremetal:none",
    )
    assert port.binding_vif_type == "binding_failed"
    assert "no live Open vSwitch agent serves NIC host nic-sdk" in str(port.binding_vif_details)
    with agent_client(net_server) as agent:
        r = agent.post(
            "/metalnic/agents/heartbeat",
            json={"host": "nic-sdk", "configurations": {"mode": "local", "smartnic": True}},
        )
        assert r.status_code == 200, r.text
        assert conn.network.get_port(port.id).binding_vif_type == "ovs"
        desired = agent.get("/metalnic/hosts/nic-sdk/desired").json()
        assert [p["id"] for p in desired["ports"]] == [port.id]
        assert desired["ports"][0]["local_link_information"] == profile["local_link_information"]
        r = agent.post(
            "/metalnic/hosts/nic-sdk/report",
            json={
                "ports": {port.id: {"status": "ACTIVE"}},
                "applied_revision": desired["revision"],
            },
        )
        assert r.status_code == 204
    assert conn.network.get_port(port.id).status == "ACTIVE"
    agents = list(conn.network.agents(host="nic-sdk"))
    assert agents[0].is_alive and agents[0].agent_type == "Open vSwitch agent"
    cli_port = os_cli(
        net_server,
        "admin",
        "port",
        "create",
        "--network",
        net.id,
        "--vnic-type",
        "smart-nic",
        "--host",
        "nic-sdk",
        "--binding-profile",
        json.dumps(profile),
        "cli-port",
        "-f",
        "json",
    )
    assert cli_port["binding_vif_type"] == "ovs"
    dup = openstack_cli(
        net_server.url + "/network",
        "port",
        "create",
        "--network",
        net.id,
        "--mac-address",
        cli_port["mac_address"],
        "dup",
        auth=("admin", PASSWORDS["admin"]),
    )
    assert dup.returncode != 0 and "is in use" in dup.stderr


def test_long_poll_returns_on_change(net_server: Server) -> None:
    import threading
    import time

    with agent_client(net_server) as agent:
        agent.post(
            "/metalnic/agents/heartbeat",
            json={"host": "nic-poll", "configurations": {"smartnic": True}},
        )
        start = agent.get("/metalnic/hosts/nic-poll/desired").json()["revision"]
        with net_server.client(None) as c:
            net = c.post("/network/v2.0/networks", json={"network": {"name": "poll"}}).json()
            timer = threading.Timer(
                0.2,
                lambda: c.post(
                    "/network/v2.0/ports",
                    json={
                        "port": {
                            "network_id": net["network"]["id"],
                            "binding:vnic_type": "smart-nic",
                            "binding:host_id": "nic-poll",
                            "binding:profile": {
                                "local_link_information": [
                                    {"hostname": "nic-poll", "port_id": "p0"}
                                ]
                            },
                        }
                    },
                ),
            )
            began = time.monotonic()
            timer.start()
            r = agent.get("/metalnic/hosts/nic-poll/desired", params={"since": start, "wait": 20})
            waited = time.monotonic() - began
            timer.join()
    assert r.json()["revision"] > start and len(r.json()["ports"]) == 1
    # Woken by the commit itself: not by the 20 s timeout, nor by the 1 s safety-net re-check.
    assert 0.15 < waited < 0.7


def test_security_groups_with_the_cli(net_server: Server) -> None:
    group = os_cli(net_server, "alice", "security", "group", "create", "web", "-f", "json")
    rule = os_cli(
        net_server,
        "alice",
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "--remote-ip",
        "10.0.0.0/8",
        group["id"],
        "-f",
        "json",
    )
    assert rule["port_range_min"] == 22 and rule["remote_ip_prefix"] == "10.0.0.0/8"
    groups = os_cli(net_server, "alice", "security", "group", "list", "-f", "json")
    assert {"default", "web"} <= {g["Name"] for g in groups}
    bob_sees = os_cli(net_server, "bob", "security", "group", "list", "-f", "json")
    assert "web" not in {g["Name"] for g in bob_sees}
    bad = openstack_cli(
        net_server.url + "/network",
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "99999",
        group["id"],
        auth=("alice", PASSWORDS["alice"]),
    )
    assert bad.returncode != 0


def test_agents_with_the_cli(net_server: Server) -> None:
    with agent_client(net_server) as agent:
        agent.post(
            "/metalnic/agents/heartbeat",
            json={
                "host": "nic-cli",
                "configurations": {
                    "mode": "remote",
                    "smartnic": True,
                    "nic_hosts": ["nic-r1", "nic-r2"],
                },
            },
        )
    listed = os_cli(net_server, "admin", "network", "agent", "list", "-f", "json")
    row = next(a for a in listed if a["Host"] == "nic-cli")
    assert row["Agent Type"] == "Open vSwitch agent" and row["Alive"] in (True, ":-)")
    # Agents are shown to admins only, as in Neutron.
    hidden = openstack_cli(
        net_server.url + "/network",
        "network",
        "agent",
        "list",
        auth=("olga", PASSWORDS["olga"]),
    )
    assert hidden.returncode != 0 and "nic-cli" not in hidden.stdout
    refused = openstack_cli(
        net_server.url + "/network",
        "network",
        "agent",
        "delete",
        row["ID"],
        auth=("olga", PASSWORDS["olga"]),
    )
    assert refused.returncode != 0
    os_cli(net_server, "admin", "network", "agent", "delete", row["ID"])
    after = os_cli(net_server, "admin", "network", "agent", "list", "-f", "json")
    assert "nic-cli" not in {a["Host"] for a in after}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"network": ', "Malformed JSON"),
        (b'{"network": {"colour": "red"}}', "colour"),
        (b'{"net": {}}', "expected"),
        (b'{"network": {"provider:network_type": "vxlan"}}', "vxlan"),
        (b'{"network": {"name": 7}}', "not a valid string"),
    ],
)
def test_bad_input_gets_neutron_errors(net_server: Server, body: bytes, needle: str) -> None:
    with net_server.client(None) as c:
        before = len(c.get("/network/v2.0/networks").json()["networks"])
        r = c.post(
            "/network/v2.0/networks", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, r.text
        assert needle in neutron_error(r)["message"]
        assert len(c.get("/network/v2.0/networks").json()["networks"]) == before


def test_unauthenticated_network_calls_are_refused(net_server: Server) -> None:
    r = httpx.get(net_server.url + "/network/v2.0/networks")
    assert r.status_code == 401 and neutron_error(r)["type"] == "HTTPUnauthorized"
    with agent_client(net_server) as agent:
        r = agent.post("/networks", json={"network": {"name": "x"}})
        assert r.status_code == 403 and neutron_error(r)["type"] == "PolicyNotAuthorized"


def test_an_agent_speaks_only_for_its_own_nic_hosts(net_server: Server) -> None:
    with agent_client(net_server) as agent:
        r = agent.post(
            "/metalnic/agents/heartbeat",
            json={"host": "nic-owned", "configurations": {"smartnic": True}},
        )
        assert r.status_code == 200
        assert agent.get("/metalnic/hosts/nic-owned/desired").status_code == 200
    other = httpx.Client(
        base_url=net_server.url + "/network/v2.0",
        timeout=30,
        auth=("other-agent", "agent-secret-6"),
    )
    with other:
        for r in (
            other.get("/metalnic/hosts/nic-owned/desired"),
            other.get("/metalnic/hosts/nic-owned/desired", params={"since": 0, "wait": 5}),
            other.post("/metalnic/hosts/nic-owned/report", json={"ports": {}}),
            other.post(
                "/metalnic/agents/heartbeat",
                json={"host": "nic-owned", "configurations": {"smartnic": True}},
            ),
        ):
            assert r.status_code == 403, r.text
            assert neutron_error(r)["type"] == "PolicyNotAuthorized"


def test_a_bound_port_keeps_its_mac(net_server: Server) -> None:
    """The NIC lets only the bound MAC out: changing it under a bound port is refused
    (409, nothing changed); once unbound, an admin may change it (the conductor does)."""
    with httpx.Client(base_url=net_server.url + "/network/v2.0", auth=net_server.auth) as c:
        with agent_client(net_server) as agent:
            r = agent.post(
                "/metalnic/agents/heartbeat",
                json={"host": "nic-mac", "configurations": {"mode": "local", "smartnic": True}},
            )
            assert r.status_code == 200, r.text
        # flat: this module's server has 3 VLANs, which other tests hold
        body = {"name": "mac-net", "provider:network_type": "flat",
                "provider:physical_network": "physmac"}  # fmt: skip
        r = c.post("/networks", json={"network": body})
        assert r.status_code == 201, r.text
        net = r.json()["network"]
        profile = {"local_link_information": [{"hostname": "nic-mac", "port_id": "p0"}]}
        port = c.post(
            "/ports",
            json={
                "port": {
                    "network_id": net["id"],
                    "mac_address": "52:54:00:77:00:01",
                    "binding:vnic_type": "smart-nic",
                    "binding:host_id": "nic-mac",
                    "binding:profile": profile,
                }
            },
        ).json()["port"]
        assert port["binding:vif_type"] == "ovs"
        r = c.put(f"/ports/{port['id']}", json={"port": {"mac_address": "52:54:00:77:00:02"}})
        assert r.status_code == 409, r.text
        assert "is bound: unbind it" in neutron_error(r)["message"]
        assert c.get(f"/ports/{port['id']}").json()["port"]["mac_address"] == "52:54:00:77:00:01"
        r = c.put(
            f"/ports/{port['id']}",
            json={"port": {"binding:host_id": "", "mac_address": "52:54:00:77:00:02"}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["port"]["mac_address"] == "52:54:00:77:00:02"


def test_fields_select_what_lists_and_shows_answer(net_server: Server) -> None:
    """Neutron's ``?fields=a&fields=b`` on a list (read once for all items) and a show."""
    with net_server.client(version=None) as c:
        base = "/network/v2.0"
        # Flat on a physnet of its own: the module's three VLANs are used up by other tests.
        flat = {"provider:network_type": "flat", "provider:physical_network": "physnet-fields"}
        r = c.post(f"{base}/networks", json={"network": {"name": "fields", **flat}})
        assert r.status_code == 201, r.text
        net = r.json()["network"]
        for i in range(3):
            r = c.post(f"{base}/ports", json={"port": {"network_id": net["id"], "name": f"f{i}"}})
            assert r.status_code == 201, r.text
        query = [("network_id", net["id"]), ("fields", "id"), ("fields", "name")]
        listed = c.get(f"{base}/ports", params=query).json()["ports"]
        assert [set(p) for p in listed] == [{"id", "name"}] * 3
        assert sorted(p["name"] for p in listed) == ["f0", "f1", "f2"]
        whole = c.get(f"{base}/ports", params={"network_id": net["id"]}).json()["ports"]
        assert all("binding:vif_type" in p for p in whole)
        shown = c.get(f"{base}/ports/{listed[0]['id']}", params={"fields": "status"}).json()
        assert shown == {"port": {"status": "DOWN"}}
        groups = c.get(f"{base}/security-groups", params={"fields": "name"}).json()
        assert {tuple(g) for g in groups["security_groups"]} == {("name",)}
