"""Small helpers for the API tests."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx


def fault(r: httpx.Response) -> str:
    """The faultstring of an Ironic error body (asserting that it is one)."""
    body = r.json()
    assert set(body) == {"error_message"}, body
    inner = json.loads(body["error_message"])
    assert set(inner) == {"faultcode", "faultstring", "debuginfo"}
    return str(inner["faultstring"])


def random_mac() -> str:
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def make_node(c: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"driver": "fake-hardware", **fields}
    r = c.post("/v1/nodes", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def make_port(c: httpx.Client, node_uuid: str, **fields: Any) -> dict[str, Any]:
    body = {"node_uuid": node_uuid, "address": random_mac(), **fields}
    r = c.post("/v1/ports", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


SMART_LLC = {"hostname": "nic-7", "port_id": "pf0hpf"}
