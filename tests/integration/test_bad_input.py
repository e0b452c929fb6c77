"""Bad input: a 4xx in Ironic's error format, never a 500, and the database unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.helpers import SMART_LLC, fault, make_node, make_port, random_mac
from tests.support import Server, make_ca, make_cert, pem, remote_llc

Ctx = dict[str, Any]


def _post_port(extra: dict[str, Any]) -> Callable[[httpx.Client, Ctx], httpx.Response]:
    def call(c: httpx.Client, ctx: Ctx) -> httpx.Response:
        body = {"node_uuid": ctx["node"], "address": random_mac(), **extra}
        return c.post("/v1/ports", json=body)

    return call


def _patch(kind: str, ops: Any) -> Callable[[httpx.Client, Ctx], httpx.Response]:
    def call(c: httpx.Client, ctx: Ctx) -> httpx.Response:
        return c.patch(f"/v1/{kind}s/{ctx[kind]}", json=ops)

    return call


def _wrong_ca_llc() -> dict[str, str]:
    llc = remote_llc()
    llc["ovsdb_cert"] = pem(make_cert(make_ca("other-ca"), "nic-remote-1"))
    return llc


CASES: dict[str, tuple[Callable[[httpx.Client, Ctx], httpx.Response], int, str]] = {
    "malformed json node": (
        lambda c, x: c.post(
            "/v1/nodes", content=b'{"driver": ', headers={"Content-Type": "application/json"}
        ),
        400,
        "Malformed JSON",
    ),
    "malformed json patch": (
        lambda c, x: c.patch(f"/v1/ports/{x['port']}", content=b"[{]"),
        400,
        "Malformed JSON",
    ),
    "empty body": (lambda c, x: c.post("/v1/nodes", content=b""), 400, "empty"),
    "body not an object": (lambda c, x: c.post("/v1/nodes", json=[1, 2]), 400, "JSON object"),
    "unknown node field": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "colour": "red"}),
        400,
        "colour",
    ),
    "missing driver": (lambda c, x: c.post("/v1/nodes", json={"name": "x"}), 400, "driver"),
    "bad node name": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "name": "a b"}),
        400,
        "logical name",
    ),
    "bad node uuid": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "uuid": "123"}),
        400,
        "UUID",
    ),
    "duplicate node name": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "name": x["name"]}),
        409,
        "already exists",
    ),
    "unknown port field": (_post_port({"speed": 100}), 400, "speed"),
    "bad mac": (
        lambda c, x: c.post(
            "/v1/ports", json={"node_uuid": x["node"], "address": "52:54:00:zz:00:01"}
        ),
        400,
        "MAC",
    ),
    "duplicate mac": (
        lambda c, x: c.post(
            "/v1/ports", json={"node_uuid": x["node"], "address": x["mac"].upper()}
        ),
        409,
        "already exists",
    ),
    "bad node_uuid": (_post_port({"node_uuid": "not-a-uuid"}), 400, "UUID"),
    "unknown node_uuid": (
        _post_port({"node_uuid": "0b6f4e6c-58e4-4e44-a0bd-2a6c1b0ad7f1"}),
        404,
        "could not be found",
    ),
    "smartnic without port_id": (
        _post_port({"is_smartnic": True, "local_link_connection": {"hostname": "nic-1"}}),
        400,
        "port_id",
    ),
    "smartnic bad hostname": (
        _post_port(
            {"is_smartnic": True, "local_link_connection": {"hostname": "-bad-", "port_id": "p"}}
        ),
        400,
        "hostname",
    ),
    "bad boolean": (_post_port({"is_smartnic": "maybe"}), 400, "boolean"),
    "bad pem": (
        _post_port(
            {
                "is_smartnic": True,
                "local_link_connection": {
                    **remote_llc(),
                    "ovsdb_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                },
            }
        ),
        400,
        "ovsdb_cert",
    ),
    "bad ssh key": (
        _post_port(
            {
                "is_smartnic": True,
                "local_link_connection": {**remote_llc(), "ssh_public_key": "ssh-rsa not-base64!"},
            }
        ),
        400,
        "ssh_public_key",
    ),
    "cert from another ca": (
        _post_port({"is_smartnic": True, "local_link_connection": _wrong_ca_llc()}),
        400,
        "not issued by",
    ),
    "remote keys on plain port": (
        _post_port(
            {
                "local_link_connection": {
                    "switch_id": "aa:bb:cc:dd:ee:ff",
                    "port_id": "1",
                    "ovsdb_cert": remote_llc()["ovsdb_cert"],
                }
            }
        ),
        400,
        "smart NIC",
    ),
    "bad port uuid in path": (lambda c, x: c.get("/v1/ports/not-a-uuid"), 400, "UUID"),
    "bad limit": (lambda c, x: c.get("/v1/nodes", params={"limit": "ten"}), 400, "integer"),
    "bad sort key": (
        lambda c, x: c.get("/v1/nodes", params={"sort_key": "driver_info"}),
        400,
        "sort_key",
    ),
    "bad fields": (lambda c, x: c.get("/v1/nodes", params={"fields": "uuid,nope"}), 400, "nope"),
    "patch read-only node field": (
        _patch("node", [{"op": "replace", "path": "/provision_state", "value": "active"}]),
        400,
        "provision_state",
    ),
    "patch read-only uuid": (
        _patch("port", [{"op": "replace", "path": "/uuid", "value": "x"}]),
        400,
        "uuid",
    ),
    "patch new root attribute": (
        _patch("node", [{"op": "add", "path": "/colour", "value": "red"}]),
        400,
        "/colour",
    ),
    "patch bad op": (_patch("node", [{"op": "move", "path": "/name"}]), 400, "op"),
    "patch not a list": (_patch("node", {"name": "x"}), 400, "list"),
    "patch missing path": (
        _patch("node", [{"op": "remove", "path": "/extra/nothing"}]),
        400,
        "does not exist",
    ),
    "patch bad mac": (
        _patch("port", [{"op": "replace", "path": "/address", "value": "nope"}]),
        400,
        "MAC",
    ),
    "patch duplicate mac": (
        lambda c, x: c.patch(
            f"/v1/ports/{x['port2']}",
            json=[{"op": "replace", "path": "/address", "value": x["mac"]}],
        ),
        409,
        "already exists",
    ),
    "patch with second op failing": (
        _patch(
            "port",
            [
                {"op": "replace", "path": "/extra", "value": {"a": 1}},
                {"op": "replace", "path": "/pxe_enabled", "value": "perhaps"},
            ],
        ),
        400,
        "boolean",
    ),
    "deeply nested json": (
        lambda c, x: c.post(
            "/v1/nodes",
            content=b'{"driver": "fake-hardware", "extra": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}",
        ),
        400,
        "nested deeper",
    ),
    "pathologically nested json": (
        lambda c, x: c.post("/v1/nodes", content=b"[" * 50_000 + b"]" * 50_000),
        400,
        "nested deeper",
    ),
    "nan is not json": (
        lambda c, x: c.post(
            "/v1/nodes", content=b'{"driver": "fake-hardware", "extra": {"a": NaN}}'
        ),
        400,
        "NaN",
    ),
    "nul character": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "description": "a\x00b"}),
        400,
        "NUL",
    ),
    "oversized body": (
        lambda c, x: c.post(
            "/v1/nodes", json={"driver": "fake-hardware", "extra": {"blob": "x" * 200_000}}
        ),
        413,
        "limit",
    ),
    "oversized chunked body": (
        lambda c, x: c.post("/v1/nodes", content=iter([b'{"extra": "', b"y" * 200_000, b'"}'])),
        413,
        "limit",
    ),
}


@pytest.fixture(scope="module")
def ctx(server: Server) -> Ctx:
    with server.client() as c:
        node = make_node(c, name="bad-input-node")
        port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
        port2 = make_port(c, node["uuid"])
    return {
        "node": node["uuid"],
        "name": node["name"],
        "port": port["uuid"],
        "port2": port2["uuid"],
        "mac": port["address"],
    }


def _snapshot(c: httpx.Client, ctx: Ctx) -> tuple[Any, ...]:
    node = c.get(f"/v1/nodes/{ctx['node']}").json()
    ports = [c.get(f"/v1/ports/{ctx[k]}").json() for k in ("port", "port2")]
    return node, ports


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(server: Server, ctx: Ctx, case: str) -> None:
    call, status, needle = CASES[case]
    counts = (server.sqlite_count("nodes"), server.sqlite_count("ports"))
    with server.client() as c:
        before = _snapshot(c, ctx)
        r = call(c, ctx)
        assert r.status_code == status, r.text
        assert needle.lower() in fault(r).lower()
        assert _snapshot(c, ctx) == before
    assert (server.sqlite_count("nodes"), server.sqlite_count("ports")) == counts
