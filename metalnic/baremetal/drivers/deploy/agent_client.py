"""Talking to the ramdisk agent (an Ironic-Python-Agent-compatible subset).

The agent listens on the callback URL it heartbeats with.  Commands are
``POST {url}/v1/commands/?wait=true`` with ``{"name": "<extension>.<command>",
"params": {...}}`` and answer ``{"command_status": "SUCCEEDED"|"FAILED",
"command_error": ..., "command_result": {...}}``.  Every command carries the node's
agent token (``X-Agent-Token``): the agent at a callback URL runs only its own
node's commands, whatever address another ramdisk heartbeats.
"""

from __future__ import annotations

from typing import Any

import httpx

from metalnic.baremetal.drivers.base import DriverError, NodeContext

TOKEN_HEADER = "X-Agent-Token"  # what the ramdisk agent checks (metalnic.ramdisk.agent)


def token_of(ctx: NodeContext) -> str:
    """The node's agent token (its ramdisk's, handed out at lookup), for its commands."""
    token = ctx.driver_internal_info.get("agent_token")
    if not isinstance(token, str) or not token:
        raise DriverError("the node has no agent token: its ramdisk never looked it up")
    return token


def run_command(
    agent_url: str, name: str, params: dict[str, Any], token: str, timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``name`` on the agent at ``agent_url``, proving with the node's agent
    ``token`` that the command is for that node's ramdisk (it refuses any other)."""
    url = agent_url.rstrip("/") + "/v1/commands/"
    try:
        r = httpx.post(
            url,
            params={"wait": "true"},
            json={"name": name, "params": params},
            headers={TOKEN_HEADER: token},
            timeout=timeout,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
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
