"""The /v1/ports API, smart NIC rules included, through a real HTTP server."""

from __future__ import annotations

import pytest

from tests.integration.helpers import SMART_LLC, fault, make_node, make_port, random_mac
from tests.support import Server, remote_llc


def test_smartnic_port_crud(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)
        port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
        assert port["is_smartnic"] is True
        assert port["local_link_connection"] == SMART_LLC
        assert port["node_uuid"] == node["uuid"]
        listed = c.get("/v1/ports", params={"node": node["uuid"], "detail": "true"}).json()
        assert [p["uuid"] for p in listed["ports"]] == [port["uuid"]]
        by_addr = c.get("/v1/ports", params={"address": port["address"].upper()}).json()
        assert [p["uuid"] for p in by_addr["ports"]] == [port["uuid"]]
        nested = c.get(f"/v1/nodes/{node['uuid']}/ports").json()["ports"]
        assert [p["uuid"] for p in nested] == [port["uuid"]]
        r = c.patch(
            f"/v1/ports/{port['uuid']}",
            json=[
                {"op": "replace", "path": "/local_link_connection/port_id", "value": "pf1hpf"},
                {"op": "add", "path": "/physical_network", "value": "physnet1"},
            ],
        )
        assert r.status_code == 200, r.text
        assert r.json()["local_link_connection"]["port_id"] == "pf1hpf"
        assert c.delete(f"/v1/ports/{port['uuid']}").status_code == 204
        assert c.get(f"/v1/ports/{port['uuid']}").status_code == 404


def test_remote_smartnic_port_keeps_pem(server: Server) -> None:
    llc = remote_llc()
    with server.client() as c:
        port = make_port(c, make_node(c)["uuid"], is_smartnic=True, local_link_connection=llc)
    assert port["local_link_connection"] == llc


def test_is_smartnic_hidden_below_153_and_406_when_sent(server: Server) -> None:
    with server.client() as c:
        port = make_port(c, make_node(c)["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
    with server.client("1.52") as old:
        shown = old.get(f"/v1/ports/{port['uuid']}").json()
        assert "is_smartnic" not in shown
        assert shown["local_link_connection"] == SMART_LLC
        r = old.post(
            "/v1/ports",
            json={
                "node_uuid": port["node_uuid"],
                "address": random_mac(),
                "is_smartnic": True,
                "local_link_connection": SMART_LLC,
            },
        )
        assert r.status_code == 406
        assert "1.53" in fault(r)
        r = old.patch(
            f"/v1/ports/{port['uuid']}",
            json=[{"op": "replace", "path": "/is_smartnic", "value": False}],
        )
        assert r.status_code == 406


@pytest.mark.parametrize("value", ["True", "true", "1"])
def test_string_booleans_accepted(server: Server, value: str) -> None:
    with server.client() as c:
        port = make_port(
            c,
            make_node(c)["uuid"],
            is_smartnic=value,
            local_link_connection=SMART_LLC,
            pxe_enabled="false",
        )
    assert port["is_smartnic"] is True
    assert port["pxe_enabled"] is False


def test_patch_validates_smartnic_rules(server: Server) -> None:
    with server.client() as c:
        node = make_node(c)
        port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
        r = c.patch(
            f"/v1/ports/{port['uuid']}",
            json=[{"op": "remove", "path": "/local_link_connection/hostname"}],
        )
        assert r.status_code == 400
        assert "hostname" in fault(r)
        plain = make_port(c, node["uuid"])
        r = c.patch(
            f"/v1/ports/{plain['uuid']}",
            json=[{"op": "replace", "path": "/is_smartnic", "value": True}],
        )
        assert r.status_code == 400
        assert "port_id" in fault(r)
        r = c.patch(
            f"/v1/ports/{plain['uuid']}",
            json=[
                {"op": "replace", "path": "/is_smartnic", "value": "True"},
                {"op": "add", "path": "/local_link_connection", "value": SMART_LLC},
            ],
        )
        assert r.status_code == 200, r.text
        assert r.json()["is_smartnic"] is True
        unchanged = c.get(f"/v1/ports/{port['uuid']}").json()
        assert unchanged["local_link_connection"] == SMART_LLC


@pytest.mark.parametrize("state", ["available", "active", "deploying"])
def test_wiring_frozen_outside_enroll_inspecting_manageable(server: Server, state: str) -> None:
    with server.client() as c:
        node = make_node(c)
        port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
        server.sqlite_exec("UPDATE nodes SET provision_state=? WHERE uuid=?", state, node["uuid"])
        attempts = [
            c.patch(
                f"/v1/ports/{port['uuid']}",
                json=[{"op": "replace", "path": "/local_link_connection/port_id", "value": "pf9"}],
            ),
            c.patch(
                f"/v1/ports/{port['uuid']}",
                json=[{"op": "replace", "path": "/is_smartnic", "value": False}],
            ),
            c.post(
                "/v1/ports",
                json={
                    "node_uuid": node["uuid"],
                    "address": random_mac(),
                    "is_smartnic": True,
                    "local_link_connection": SMART_LLC,
                },
            ),
            c.delete(f"/v1/ports/{port['uuid']}"),
            c.patch(
                f"/v1/nodes/{node['uuid']}",
                json=[{"op": "replace", "path": "/network_interface", "value": "noop"}],
            ),
        ]
        for r in attempts:
            assert r.status_code == 409, r.text
            assert f"'{state}'" in fault(r)
        # Fields unrelated to wiring still change.
        r = c.patch(
            f"/v1/ports/{port['uuid']}", json=[{"op": "add", "path": "/extra/label", "value": "x"}]
        )
        assert r.status_code == 200
        # In maintenance the wiring may change.
        assert c.put(f"/v1/nodes/{node['uuid']}/maintenance").status_code == 202
        r = c.patch(
            f"/v1/ports/{port['uuid']}",
            json=[{"op": "replace", "path": "/local_link_connection/port_id", "value": "pf9"}],
        )
        assert r.status_code == 200, r.text
    assert server.sqlite_count("ports") >= 1


@pytest.mark.parametrize("state", ["enroll", "inspecting", "manageable"])
def test_wiring_changes_allowed_states(server: Server, state: str) -> None:
    with server.client() as c:
        node = make_node(c)
        port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
        server.sqlite_exec("UPDATE nodes SET provision_state=? WHERE uuid=?", state, node["uuid"])
        r = c.patch(
            f"/v1/ports/{port['uuid']}",
            json=[
                {"op": "replace", "path": "/is_smartnic", "value": False},
                {"op": "replace", "path": "/local_link_connection", "value": {}},
            ],
        )
        assert r.status_code == 200, r.text
        assert r.json()["is_smartnic"] is False


def test_move_port_between_nodes(server: Server) -> None:
    with server.client() as c:
        a, b = make_node(c), make_node(c)
        port = make_port(c, a["uuid"])
        r = c.patch(
            f"/v1/ports/{port['uuid']}",
            json=[{"op": "replace", "path": "/node_uuid", "value": b["uuid"]}],
        )
        assert r.status_code == 200, r.text
        assert r.json()["node_uuid"] == b["uuid"]
