"""The /v1/nodes API through a real HTTP server."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.helpers import fault, make_node, make_port
from tests.support import Server


def test_create_show_list_patch_delete(server: Server) -> None:
    with server.client() as c:
        node = make_node(
            c, name="crud-1", driver_info={"redfish_password": "hunter2", "redfish_address": "x"}
        )
        assert node["provision_state"] == "enroll"
        assert node["power_state"] is None
        assert node["driver_info"] == {"redfish_password": "******", "redfish_address": "x"}
        assert node["network_interface"] == "flat"
        assert node["links"][0]["href"].endswith(f"/v1/nodes/{node['uuid']}")
        assert c.get("/v1/nodes/crud-1").json()["uuid"] == node["uuid"]
        listed = c.get("/v1/nodes").json()["nodes"]
        assert node["uuid"] in [n["uuid"] for n in listed]
        assert set(listed[0]) == {
            "uuid",
            "name",
            "instance_uuid",
            "power_state",
            "provision_state",
            "maintenance",
            "links",
        }
        r = c.patch(
            f"/v1/nodes/{node['uuid']}",
            json=[
                {"op": "replace", "path": "/name", "value": "crud-2"},
                {"op": "add", "path": "/extra/rack", "value": "r12"},
                {"op": "add", "path": "/driver_info/redfish_username", "value": "root"},
                {"op": "replace", "path": "/network_interface", "value": "smartnic"},
            ],
        )
        assert r.status_code == 200, r.text
        patched = r.json()
        assert patched["name"] == "crud-2"
        assert patched["extra"] == {"rack": "r12"}
        assert patched["network_interface"] == "smartnic"
        # The masked password survived the patch: it was not replaced by the mask.
        assert patched["driver_info"]["redfish_password"] == "******"
        assert patched["updated_at"] is not None
        assert c.delete("/v1/nodes/crud-2").status_code == 204
        assert c.get(f"/v1/nodes/{node['uuid']}").status_code == 404


def test_secret_is_stored_not_echoed(server: Server) -> None:
    with server.client() as c:
        node = make_node(c, driver_info={"ipmi_password": "s3cr3t-value"})
        body = c.get(f"/v1/nodes/{node['uuid']}").text
        assert "s3cr3t-value" not in body
    rows = server.sqlite_count("nodes")
    assert rows >= 1
    assert "s3cr3t-value" not in server.log()


def test_old_microversions_hide_new_fields_and_start_available(server: Server) -> None:
    with server.client("1.10") as c:
        node = make_node(c)
        assert node["provision_state"] == "available"
        assert "owner" not in node and "network_interface" not in node
    with server.client("1.49") as c:
        shown = c.get(f"/v1/nodes/{node['uuid']}").json()
        assert "network_interface" in shown and "owner" not in shown
        r = c.post("/v1/nodes", json={"driver": "fake-hardware", "owner": "p"})
        assert r.status_code == 406
        assert "1.50" in fault(r)


def test_pagination_follows_next_links(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    with server.client() as c:
        made = [make_node(c, owner=f"pager-{tag}")["uuid"] for _ in range(5)]
        seen: list[str] = []
        body = c.get("/v1/nodes", params={"owner": f"pager-{tag}", "limit": 2}).json()
        pages = 1
        while True:
            seen += [n["uuid"] for n in body["nodes"]]
            if "next" not in body:
                break
            assert f"owner=pager-{tag}" in body["next"]
            body = c.get(body["next"]).json()
            pages += 1
    assert seen == made
    assert pages == 3


def test_sort_desc_and_fields(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    with server.client() as c:
        for i in range(3):
            make_node(c, name=f"sort-{tag}-{i}", owner=f"sort-{tag}")
        r = c.get(
            "/v1/nodes",
            params={
                "owner": f"sort-{tag}",
                "sort_key": "name",
                "sort_dir": "desc",
                "fields": "name,owner",
            },
        )
        nodes = r.json()["nodes"]
    assert [n["name"] for n in nodes] == [f"sort-{tag}-2", f"sort-{tag}-1", f"sort-{tag}-0"]
    assert all(set(n) == {"name", "owner"} for n in nodes)


def test_filters_and_detail(server: Server) -> None:
    with server.client() as c:
        node = make_node(c, owner="filter-me")
        detail = c.get("/v1/nodes/detail", params={"owner": "filter-me"}).json()["nodes"]
        assert [n["uuid"] for n in detail] == [node["uuid"]]
        assert "driver_info" in detail[0]
        same = c.get("/v1/nodes", params={"owner": "filter-me", "detail": "True"}).json()
        assert same["nodes"] == detail
        enrolled = c.get("/v1/nodes", params={"provision_state": "enroll"}).json()["nodes"]
        assert node["uuid"] in [n["uuid"] for n in enrolled]
        none = c.get("/v1/nodes", params={"provision_state": "active"}).json()["nodes"]
        assert node["uuid"] not in [n["uuid"] for n in none]


def test_maintenance_and_states(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)
        r = c.put(f"/v1/nodes/{node['uuid']}/maintenance", json={"reason": "disk swap"})
        assert r.status_code == 202
        shown = c.get(f"/v1/nodes/{node['uuid']}").json()
        assert shown["maintenance"] is True
        assert shown["maintenance_reason"] == "disk swap"
        assert c.delete(f"/v1/nodes/{node['uuid']}/maintenance").status_code == 202
        assert c.get(f"/v1/nodes/{node['uuid']}").json()["maintenance"] is False
        states = c.get(f"/v1/nodes/{node['uuid']}/states").json()
        assert states["provision_state"] == "enroll"


def test_delete_node_deletes_its_ports(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)
        port = make_port(c, node["uuid"])
        assert c.delete(f"/v1/nodes/{node['uuid']}").status_code == 204
        assert c.get(f"/v1/ports/{port['uuid']}").status_code == 404


@pytest.mark.parametrize("state", ["active", "deploying"])
def test_delete_refused_in_busy_states(server: Server, state: str) -> None:
    with server.client() as c:
        node = make_node(c)
        server.sqlite_exec("UPDATE nodes SET provision_state=? WHERE uuid=?", state, node["uuid"])
        r = c.delete(f"/v1/nodes/{node['uuid']}")
        assert r.status_code == 409
        assert state in fault(r)
        assert c.get(f"/v1/nodes/{node['uuid']}").status_code == 200


def test_interface_not_supported_is_400(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/nodes", json={"driver": "fake-hardware", "network_interface": "neutron"})
        assert r.status_code == 400
        assert "neutron" in fault(r)
        r = c.post("/v1/nodes", json={"driver": "no-such-driver"})
        assert r.status_code == 400
        assert "fake-hardware" in fault(r)
