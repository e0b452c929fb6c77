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


# What the conductor's power sync may change on its own while a test runs.
_CONDUCTOR_OWNED = ("power_state", "target_power_state", "updated_at")


def _snapshot(c: httpx.Client, ctx: Ctx) -> tuple[Any, ...]:
    node = c.get(f"/v1/nodes/{ctx['node']}").json()
    for key in _CONDUCTOR_OWNED:
        node.pop(key, None)
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


# --- values that used to become a 500 (and, once committed, broke every later list) ------

_JSON = {"Content-Type": "application/json"}
_BIG = "9" * 5000  # over Python's 4,300-digit int() limit


def _raw(method: str, path: str, body: str) -> Callable[[httpx.Client, Ctx], httpx.Response]:
    """A body sent as written (httpx would escape or refuse what these cases need); @node
    in it stands for the node's uuid."""

    def call(c: httpx.Client, ctx: Ctx) -> httpx.Response:
        content = body.replace("@node", ctx["node"]).encode()
        return c.request(method, path.format(**ctx), content=content, headers=_JSON)

    return call


def _query(path: str, **params: str) -> Callable[[httpx.Client, Ctx], httpx.Response]:
    return lambda c, x: c.get(path.format(**x), params=params)


def _version(value: bytes) -> Callable[[httpx.Client, Ctx], httpx.Response]:
    return lambda c, x: c.get("/v1/nodes", headers={"X-OpenStack-Ironic-API-Version": value})


def _node(extra: str) -> str:
    return '{"driver": "fake-hardware", ' + extra + "}"


def _port(extra: str) -> str:
    return '{"node_uuid": "@node", "address": "52:54:00:aa:bb:01", ' + extra + "}"


NASTY: dict[str, tuple[Callable[[httpx.Client, Ctx], httpx.Response], int, str]] = {
    # lone UTF-16 surrogates: valid JSON escapes, no text
    "surrogate in node description": (
        _raw("POST", "/v1/nodes", _node('"description": "\\ud800"')),
        400,
        "surrogate",
    ),
    "surrogate in node name": (_raw("POST", "/v1/nodes", _node('"name": "a\\udfff"')), 400, "surr"),
    "surrogate as extra key": (
        _raw("POST", "/v1/nodes", _node('"extra": {"\\udc00": 1}')),
        400,
        "surrogate",
    ),
    "surrogate in port extra": (
        _raw("POST", "/v1/ports", _port('"extra": {"k": "\\ud83d"}')),
        400,
        "surrogate",
    ),
    "surrogate in patch value": (
        _raw(
            "PATCH", "/v1/nodes/{node}", '[{"op": "add", "path": "/extra/k", "value": "\\ud800"}]'
        ),
        400,
        "surrogate",
    ),
    "surrogate in patch path": (
        _raw("PATCH", "/v1/ports/{port}", '[{"op": "add", "path": "/extra/\\ud800", "value": 1}]'),
        400,
        "surrogate",
    ),
    "surrogate in maintenance reason": (
        _raw("PUT", "/v1/nodes/{node}/maintenance", '{"reason": "\\udbff"}'),
        400,
        "surrogate",
    ),
    # integers: over 4,300 digits, beyond signed 64 bits, non-finite floats
    "4300+ digit integer in node extra": (
        _raw("POST", "/v1/nodes", _node('"extra": {"a": ' + _BIG + "}")),
        400,
        "64 bits",
    ),
    "2**64 in node properties": (
        _raw("POST", "/v1/nodes", _node('"properties": {"cpus": 18446744073709551616}')),
        400,
        "64 bits",
    ),
    "-2**63-1 in port extra": (
        _raw(
            "POST",
            "/v1/ports",
            _port('"extra": {"n": -9223372036854775809}'),
        ),
        400,
        "64 bits",
    ),
    "huge integer in patch": (
        _raw(
            "PATCH",
            "/v1/ports/{port}",
            '[{"op": "add", "path": "/extra/n", "value": -' + _BIG + "}]",
        ),
        400,
        "64 bits",
    ),
    "float overflow in extra": (
        _raw("POST", "/v1/nodes", _node('"extra": {"f": 1e999}')),
        400,
        "range",
    ),
    "huge power timeout": (
        _raw(
            "PUT",
            "/v1/nodes/{node}/states/power",
            '{"target": "power on", "timeout": ' + _BIG + "}",
        ),
        400,
        "64 bits",
    ),
    "huge patch list index": (
        _raw(
            "PATCH",
            "/v1/nodes/{node}",
            '[{"op": "add", "path": "/extra/l", "value": []}, '
            '{"op": "add", "path": "/extra/l/' + _BIG + '", "value": 1}]',
        ),
        400,
        "path",
    ),
    # an object (or list) where a string belongs
    "object as node name": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "name": {"a": 1}}),
        400,
        "name",
    ),
    "object as driver": (
        lambda c, x: c.post("/v1/nodes", json={"driver": {"x": 1}}),
        400,
        "driver",
    ),
    "list as description": (
        lambda c, x: c.post("/v1/nodes", json={"driver": "fake-hardware", "description": [1]}),
        400,
        "description",
    ),
    "object as port address": (
        lambda c, x: c.post("/v1/ports", json={"node_uuid": x["node"], "address": {"a": 1}}),
        400,
        "address",
    ),
    "object as port node_uuid": (
        lambda c, x: c.post("/v1/ports", json={"node_uuid": {}, "address": "52:54:00:00:00:09"}),
        400,
        "node_uuid",
    ),
    "object as portgroup name": (
        lambda c, x: c.post("/v1/portgroups", json={"node_uuid": x["node"], "name": {"n": 1}}),
        400,
        "name",
    ),
    "string as local_link_connection": (
        _post_port({"local_link_connection": "x"}),
        400,
        "local_link_connection",
    ),
    "object as provision target": (
        lambda c, x: c.put(f"/v1/nodes/{x['node']}/states/provision", json={"target": {}}),
        400,
        "target",
    ),
    "object as boot device": (
        lambda c, x: c.put(
            f"/v1/nodes/{x['node']}/management/boot_device", json={"boot_device": {"a": 1}}
        ),
        400,
        "boot_device",
    ),
    "object as vif id": (
        lambda c, x: c.post(f"/v1/nodes/{x['node']}/vifs", json={"id": {"a": 1}}),
        400,
        "id",
    ),
    "object as maintenance reason": (
        lambda c, x: c.put(f"/v1/nodes/{x['node']}/maintenance", json={"reason": {"r": 1}}),
        400,
        "reason",
    ),
    "object as heartbeat url": (
        lambda c, x: c.post(f"/v1/heartbeat/{x['node']}", json={"callback_url": {}}),
        400,
        "callback_url",
    ),
    "object as clean step": (
        lambda c, x: c.put(
            f"/v1/nodes/{x['node']}/states/provision", json={"target": "clean", "clean_steps": [1]}
        ),
        400,
        "clean_steps",
    ),
    "patch op not an object": (_patch("node", ["replace"]), 400, "patch"),
    "patch path an object": (_patch("port", [{"op": "remove", "path": {"p": 1}}]), 400, "path"),
    # query parameters: unicode digits, double signs, huge and out-of-range numbers, NUL
    "limit ²": (_query("/v1/nodes", limit="²"), 400, "limit"),
    "limit ٣ (arabic-indic)": (_query("/v1/ports", limit="٣"), 400, "limit"),
    "limit --5": (_query("/v1/nodes", limit="--5"), 400, "limit"),
    "limit -5": (_query("/v1/ports/detail", limit="-5"), 400, "limit"),
    "limit 4300+ digits": (_query("/v1/nodes/detail", limit=_BIG), 400, "limit"),
    "limit 2**64": (_query("/v1/portgroups", limit="18446744073709551616"), 400, "limit"),
    "history limit ²": (_query("/v1/nodes/{node}/history", limit="²"), 400, "limit"),
    "history marker 2**64": (
        _query("/v1/nodes/{node}/history", marker="18446744073709551616"),
        400,
        "marker",
    ),
    "history marker --1": (_query("/v1/nodes/{node}/history", marker="--1"), 400, "marker"),
    "maintenance filter ²": (_query("/v1/nodes", maintenance="²"), 400, "maintenance"),
    "detail maybe": (_query("/v1/ports", detail="maybe"), 400, "detail"),
    "sort_dir sideways": (_query("/v1/nodes", sort_dir="sideways"), 400, "sort_dir"),
    "NUL in owner filter": (_query("/v1/nodes", owner="a\x00b"), 400, "NUL"),
    "NUL in node path": (lambda c, x: c.get("/v1/nodes/a%00b"), 400, "NUL"),
    "NUL in port filter": (_query("/v1/ports", address="52:54:00:00:00:01\x00"), 400, "NUL"),
    "unicode digits in port path": (lambda c, x: c.get("/v1/ports/²"), 400, "UUID"),
    # the microversion header
    "version 1.²": (_version(b"1.\xb2"), 400, "X-OpenStack-Ironic-API-Version"),
    "version 4300+ digits": (_version(b"1." + _BIG.encode()), 400, "at most 64"),
    "version 60 digits": (_version(b"1." + b"9" * 60), 406, "not supported"),
    "version 2**64": (_version(b"18446744073709551616.1"), 406, "not supported"),
    "version minor 2**64": (_version(b"1.18446744073709551616"), 406, "not supported"),
}


# The shared server's power sync logs the power it reads from any node's BMC (a new
# node's first read, another module's node): those rows are not the request's doing.
_NOT_POWER_SYNC = "NOT (event_type = 'power' AND event LIKE 'power state read from the BMC%')"


def _counts(server: Server) -> tuple[int, ...]:
    tables = ("nodes", "ports", "portgroups")
    history = server.sqlite_count("node_history", _NOT_POWER_SYNC)
    return (*(server.sqlite_count(t) for t in tables), history)


@pytest.mark.parametrize("case", sorted(NASTY))
def test_value_that_was_a_500_is_refused_and_stores_nothing(
    server: Server, ctx: Ctx, case: str
) -> None:
    call, status, needle = NASTY[case]
    counts = _counts(server)
    with server.client() as c:
        before = _snapshot(c, ctx)
        r = call(c, ctx)
        assert r.status_code == status, r.text
        assert needle.lower() in fault(r).lower()
        assert _snapshot(c, ctx) == before
        for listing in ("/v1/nodes/detail", "/v1/ports/detail", "/v1/portgroups/detail"):
            assert c.get(listing).status_code == 200, listing
    assert _counts(server) == counts


def test_a_stored_value_the_encoder_refuses_does_not_break_reads(server: Server) -> None:
    """Rows written before these rules (or by hand) are shown repaired, not a 500 for all."""
    with server.client() as c:
        node = make_node(c, name="planted-bad-json")
        port = make_port(c, node["uuid"])
        server.sqlite_exec(
            "UPDATE nodes SET extra = ? WHERE uuid = ?",
            '{"s": "\\ud800", "n": ' + "7" * 30 + "}",
            node["uuid"],
        )
        server.sqlite_exec(
            "UPDATE ports SET extra = ? WHERE uuid = ?", '{"\\udfff": 1}', port["uuid"]
        )
        try:
            for path in ("/v1/nodes/detail", "/v1/ports/detail", f"/v1/nodes/{node['uuid']}"):
                r = c.get(path)
                assert r.status_code == 200, (path, r.text)
            shown = c.get(f"/v1/nodes/{node['uuid']}").json()["extra"]
            assert shown == {"s": "?", "n": "<integer of 100 bits>"}
        finally:
            assert c.delete(f"/v1/ports/{port['uuid']}").status_code == 204
            assert c.delete(f"/v1/nodes/{node['uuid']}").status_code == 204
