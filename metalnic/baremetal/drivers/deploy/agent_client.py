"""Talking to the ramdisk agent (an Ironic-Python-Agent-compatible subset).

The agent listens on the callback URL it heartbeats with.  Commands are
``POST {url}/v1/commands/?wait=true`` with ``{"name": "<extension>.<command>",
"params": {...}}`` and answer ``{"command_status": "SUCCEEDED"|"FAILED",
"command_error": ..., "command_result": {...}}``.
"""

from __future__ import annotations

from typing import Any

import httpx

from metalnic.baremetal.drivers.base import DriverError


def run_command(
    agent_url: str, name: str, params: dict[str, Any], timeout: float = 600.0
) -> dict[str, Any]:
    url = agent_url.rstrip("/") + "/v1/commands/"
    try:
        r = httpx.post(
            url, params={"wait": "true"}, json={"name": name, "params": params}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise DriverError(f"ramdisk agent at {agent_url} unreachable: {exc}") from exc
    if r.status_code >= 400:
        raise DriverError(f"ramdisk agent refused {name}: HTTP {r.status_code} {r.text[:200]}")
    try:
        body: dict[str, Any] = r.json()
    except ValueError as exc:
        raise DriverError(f"ramdisk agent answered {name} with invalid JSON") from exc
    if body.get("command_status") != "SUCCEEDED":
        raise DriverError(f"ramdisk agent failed {name}: {body.get('command_error')}")
    result = body.get("command_result") or {}
    if not isinstance(result, dict):
        raise DriverError(f"ramdisk agent answered {name} with an invalid result")
    return result
