"""/v1/portgroups: Ironic's port groups, plus the rules that make a bond of smart NIC
ports safe to plug; through a real server, the real `openstack baremetal` CLI and
openstacksdk."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openstack
import pytest

from tests.conftest import PASSWORDS
from tests.integration.helpers import fault, make_node, make_port, random_mac
from tests.support import Server, openstack_cli


def smart(host: str, port_id: str) -> dict[str, Any]:
    return {"is_smartnic": True, "local_link_connection": {"hostname": host, "port_id": port_id}}


def make_group(c: httpx.Client, node: str, **fields: Any) -> dict[str, Any]:
    r = c.post("/v1/portgroups", json={"node_uuid": node, **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


def counts(server: Server) -> tuple[int, int]:
    return server.sqlite_count("portgroups"), server.sqlite_count("ports")


def test_portgroup_crud_and_membership(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        mac = random_mac()
        group = make_group(c, node, name=f"bond-{node[:8]}", address=mac.upper(), extra={"a": 1})
        assert group["address"] == mac and group["mode"] == "active-backup"
        assert group["standalone_ports_supported"] is True and group["properties"] == {}
        assert group["node_uuid"] == node and group["internal_info"] == {}
        assert c.get(f"/v1/portgroups/{group['name']}").json()["uuid"] == group["uuid"]
        port = make_port(c, node, portgroup_uuid=group["uuid"])
        other = make_port(c, node)
        assert port["portgroup_uuid"] == group["uuid"] and other["portgroup_uuid"] is None
        members = c.get(f"/v1/portgroups/{group['uuid']}/ports").json()["ports"]
        assert [p["uuid"] for p in members] == [port["uuid"]]
        detail = c.get(f"/v1/portgroups/{group['uuid']}/ports/detail").json()["ports"]
        assert detail[0]["portgroup_uuid"] == group["uuid"]
        listed = c.get("/v1/ports", params={"portgroup": group["uuid"], "detail": True}).json()
        assert [p["uuid"] for p in listed["ports"]] == [port["uuid"]]
        by_node = c.get(f"/v1/nodes/{node}/portgroups").json()["portgroups"]
        assert [g["uuid"] for g in by_node] == [group["uuid"]]
        assert set(by_node[0]) == {"uuid", "address", "name", "links"}
        shown_node = c.get(f"/v1/nodes/{node}").json()
        assert shown_node["portgroups"][0]["href"].endswith(f"/v1/nodes/{node}/portgroups")
        r = c.patch(
            f"/v1/portgroups/{group['uuid']}",
            json=[
                {"op": "replace", "path": "/mode", "value": "802.3ad"},
                {"op": "add", "path": "/properties/miimon", "value": "100"},
                {"op": "replace", "path": "/name", "value": f"b-{node[:8]}"},
            ],
        )
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == "802.3ad" and r.json()["properties"] == {"miimon": "100"}
        # A non-empty group cannot go, nor move to another node.
        r = c.delete(f"/v1/portgroups/{group['uuid']}")
        assert r.status_code == 409 and port["uuid"] in fault(r)
        r = c.patch(
            f"/v1/portgroups/{group['uuid']}",
            json=[{"op": "replace", "path": "/node_uuid", "value": make_node(c)["uuid"]}],
        )
        assert r.status_code == 409 and "still has ports" in fault(r)
        r = c.patch(f"/v1/ports/{port['uuid']}", json=[{"op": "remove", "path": "/portgroup_uuid"}])
        assert r.status_code == 200 and r.json()["portgroup_uuid"] is None
        assert c.delete(f"/v1/portgroups/{group['uuid']}").status_code == 204
        assert c.get(f"/v1/portgroups/{group['uuid']}").status_code == 404
        # Deleting a node takes its groups and ports along.
        g2 = make_group(c, node)
        make_port(c, node, portgroup_uuid=g2["uuid"])
        assert c.delete(f"/v1/nodes/{node}").status_code == 204
        assert c.get(f"/v1/portgroups/{g2['uuid']}").status_code == 404


def test_old_microversion_has_no_portgroups(server: Server) -> None:
    with server.client("1.22") as c:
        r = c.get("/v1/portgroups")
        assert r.status_code == 404 and "1.23" in fault(r)
    with server.client("1.25") as c:
        node = make_node(c)["uuid"]
        group = make_group(c, node)
        assert "mode" not in group and "properties" not in group
        r = c.post("/v1/portgroups", json={"node_uuid": node, "mode": "802.3ad"})
        assert r.status_code == 406


def test_smartnic_bond_rules(server: Server) -> None:
    """A bond of smart NIC ports: one NIC host, distinct NIC ports, an OVS-able mode,
    never mixed with plain ports; every refusal leaves nothing behind."""
    with server.client() as c:
        node = make_node(c)["uuid"]
        group = make_group(c, node, mode="balance-xor")
        first = make_port(c, node, portgroup_uuid=group["uuid"], **smart("nic-g", "pf0"))
        before = counts(server)
        cases = [
            (smart("nic-other", "pf1"), "share one NIC host"),
            (smart("nic-g", "pf0"), "same NIC port"),
            ({}, "cannot mix"),
        ]
        for fields, message in cases:
            r = c.post(
                "/v1/ports",
                json={
                    "node_uuid": node,
                    "address": random_mac(),
                    "portgroup_uuid": group["uuid"],
                    **fields,
                },
            )
            assert r.status_code == 400 and message in fault(r), r.text
        other_node = make_node(c)["uuid"]
        before = counts(server)
        r = c.post(
            "/v1/ports",
            json={
                "node_uuid": other_node,
                "address": random_mac(),
                "portgroup_uuid": group["uuid"],
                **smart("nic-g", "pf1"),
            },
        )
        assert r.status_code == 400 and "different nodes" in fault(r)
        assert counts(server) == before
        # Changing a member so that it breaks the rules is refused too.
        second = make_port(c, node, portgroup_uuid=group["uuid"], **smart("nic-g", "pf1"))
        r = c.patch(
            f"/v1/ports/{second['uuid']}",
            json=[{"op": "replace", "path": "/local_link_connection/hostname", "value": "nic-z"}],
        )
        assert r.status_code == 400 and "share one NIC host" in fault(r)
        r = c.patch(
            f"/v1/portgroups/{group['uuid']}",
            json=[{"op": "replace", "path": "/mode", "value": "balance-rr"}],
        )
        assert r.status_code == 400 and "Open" not in fault(r) and "mode must be" in fault(r)
        rr = make_group(c, node, mode="balance-rr")
        r = c.patch(
            f"/v1/ports/{first['uuid']}",
            json=[{"op": "replace", "path": "/portgroup_uuid", "value": rr["uuid"]}],
        )
        assert r.status_code == 400 and "mode must be" in fault(r)
        shown = [c.get(f"/v1/ports/{p['uuid']}").json() for p in (first, second)]
        assert [p["portgroup_uuid"] for p in shown] == [group["uuid"]] * 2
        assert shown[1]["local_link_connection"]["hostname"] == "nic-g"
        assert c.get(f"/v1/portgroups/{group['uuid']}").json()["mode"] == "balance-xor"


@pytest.mark.parametrize("state", ["available", "active"])
def test_smartnic_bond_is_wiring(server: Server, state: str) -> None:
    """Outside enroll/manageable/maintenance a smart NIC bond cannot change."""
    with server.client() as c:
        node = make_node(c)["uuid"]
        group = make_group(c, node)
        member = make_port(c, node, portgroup_uuid=group["uuid"], **smart("nic-w", "pf0"))
        loose = make_port(c, node, **smart("nic-w", "pf1"))
        server.sqlite_exec("UPDATE nodes SET provision_state=? WHERE uuid=?", state, node)
        attempts = [
            c.patch(
                f"/v1/portgroups/{group['uuid']}",
                json=[{"op": "replace", "path": "/mode", "value": "802.3ad"}],
            ),
            c.patch(
                f"/v1/portgroups/{group['uuid']}",
                json=[{"op": "replace", "path": "/address", "value": random_mac()}],
            ),
            c.patch(
                f"/v1/ports/{member['uuid']}", json=[{"op": "remove", "path": "/portgroup_uuid"}]
            ),
            c.patch(
                f"/v1/ports/{loose['uuid']}",
                json=[{"op": "add", "path": "/portgroup_uuid", "value": group["uuid"]}],
            ),
        ]
        for r in attempts:
            assert r.status_code == 409 and state in fault(r), r.text
        # Cosmetic fields stay editable.
        r = c.patch(
            f"/v1/portgroups/{group['uuid']}",
            json=[{"op": "add", "path": "/extra/rack", "value": "r1"}],
        )
        assert r.status_code == 200, r.text
        assert c.put(f"/v1/nodes/{node}/maintenance").status_code == 202
        r = c.patch(
            f"/v1/ports/{loose['uuid']}",
            json=[{"op": "add", "path": "/portgroup_uuid", "value": group["uuid"]}],
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"node_uuid": ...}, 400, "node_uuid"),  # ... = left out
        ({"node_uuid": "nope"}, 400, "UUID"),
        ({"node_uuid": "00000000-0000-0000-0000-000000000001"}, 404, "could not be found"),
        ({"address": "not-a-mac"}, 400, "MAC"),
        ({"name": "no spaces please"}, 400, "logical name"),
        ({"name": "7b4c1a52-5c4f-4b59-9f57-2f1f07f3a0f1"}, 400, "UUID"),
        ({"internal_info": {"x": 1}}, 400, "read-only"),
        ({"bogus": 1}, 400, "Unknown attribute"),
        ({"standalone_ports_supported": "maybe"}, 400, "boolean"),
        ({"properties": []}, 400, "properties"),
    ],
)
def test_bad_portgroup_input(
    server: Server, body: dict[str, Any], status: int, message: str
) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        before = counts(server)
        payload = {k: v for k, v in {"node_uuid": node, **body}.items() if v is not ...}
        r = c.post("/v1/portgroups", json=payload)
        assert r.status_code == status, r.text
        assert message.lower() in fault(r).lower()
        assert counts(server) == before


def test_duplicate_address_and_name(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
        mac = random_mac()
        first = make_group(c, node, address=mac, name=f"dup-{node[:8]}")
        before = counts(server)
        r = c.post("/v1/portgroups", json={"node_uuid": node, "address": mac})
        assert r.status_code == 409 and mac in fault(r)
        r = c.post("/v1/portgroups", json={"node_uuid": node, "name": first["name"]})
        assert r.status_code == 409 and first["name"] in fault(r)
        r = c.post("/v1/portgroups", json={"node_uuid": node, "uuid": first["uuid"]})
        assert r.status_code == 409
        assert counts(server) == before
        # A bond may share its MAC with a member port, as on a real host.
        make_port(c, node, address=mac, portgroup_uuid=first["uuid"])


def test_portgroup_rbac(basic_server: Server) -> None:
    alice = ("alice", PASSWORDS["alice"])
    with basic_server.client() as admin:
        theirs = make_node(admin, owner="project-b")["uuid"]
        their_group = make_group(admin, theirs)
    with basic_server.client(auth=alice) as c:
        mine = make_node(c)["uuid"]
        group = make_group(c, mine)
        listed = [g["uuid"] for g in c.get("/v1/portgroups").json()["portgroups"]]
        assert group["uuid"] in listed and their_group["uuid"] not in listed
        assert c.get(f"/v1/portgroups/{their_group['uuid']}").status_code == 404
        assert c.delete(f"/v1/portgroups/{their_group['uuid']}").status_code == 404
        assert c.post("/v1/portgroups", json={"node_uuid": theirs}).status_code == 404
        r = c.post(
            "/v1/ports",
            json={
                "node_uuid": mine,
                "address": random_mac(),
                "portgroup_uuid": their_group["uuid"],
            },
        )
        assert r.status_code == 404
    with basic_server.client(auth=("olga", PASSWORDS["olga"])) as olga:
        assert olga.get(f"/v1/portgroups/{group['uuid']}").status_code == 200
        writes = [
            olga.post("/v1/portgroups", json={"node_uuid": mine}),
            olga.patch(
                f"/v1/portgroups/{group['uuid']}",
                json=[{"op": "add", "path": "/extra/x", "value": 1}],
            ),
            olga.delete(f"/v1/portgroups/{group['uuid']}"),
        ]
        assert [r.status_code for r in writes] == [403, 403, 403]


def test_openstack_cli_and_sdk_manage_portgroups(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)["uuid"]
    mac = random_mac()
    r = openstack_cli(
        server.url,
        "baremetal",
        "port",
        "group",
        "create",
        "--node",
        node,
        "--address",
        mac,
        "--name",
        f"cli-{node[:8]}",
        "--mode",
        "802.3ad",
        "--property",
        "miimon=100",
        "-f",
        "json",
    )
    assert r.returncode == 0, r.stderr
    group = json.loads(r.stdout)
    assert group["mode"] == "802.3ad" and group["properties"] == {"miimon": 100}
    r = openstack_cli(
        server.url,
        "baremetal",
        "port",
        "create",
        random_mac(),
        "--node",
        node,
        "--port-group",
        group["uuid"],
        "--is-smartnic",
        "--local-link-connection",
        "hostname=nic-cli",
        "--local-link-connection",
        "port_id=pf0",
        "-f",
        "json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["portgroup_uuid"] == group["uuid"]
    r = openstack_cli(
        server.url,
        "baremetal",
        "port",
        "create",
        random_mac(),
        "--node",
        node,
        "--port-group",
        group["uuid"],
        "--is-smartnic",
        "--local-link-connection",
        "hostname=nic-elsewhere",
        "--local-link-connection",
        "port_id=pf1",
    )
    assert r.returncode != 0 and "share one NIC host" in r.stderr
    r = openstack_cli(
        server.url, "baremetal", "port", "group", "list", "--node", node, "-f", "json"
    )
    assert r.returncode == 0, r.stderr
    assert [g["uuid"] for g in json.loads(r.stdout)] == [group["uuid"]], r.stdout
    conn = openstack.connect(
        auth_type="none", baremetal_endpoint_override=server.url, baremetal_api_version="1.53"
    )
    made = conn.baremetal.create_port_group(
        node_id=node, address=random_mac(), mode="active-backup"
    )
    found = {g.id for g in conn.baremetal.port_groups(node=node)}
    assert found == {group["uuid"], made.id}
    conn.baremetal.delete_port_group(made.id)
    r = openstack_cli(server.url, "baremetal", "port", "group", "delete", group["uuid"])
    assert r.returncode != 0  # it still has a member
    with server.client() as c:
        assert c.get(f"/v1/portgroups/{made.id}").status_code == 404
        assert c.get(f"/v1/portgroups/{group['uuid']}").status_code == 200
