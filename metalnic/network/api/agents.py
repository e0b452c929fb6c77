"""Agents: Neutron's /v2.0/agents, and metalnic's agent contract.

The agent list and each agent (hosts, NIC hosts, configuration) are shown to
admins only, as in Neutron (``access.require_agents_reader``).

The contract (role ``agent`` or ``admin``):

* ``POST /network/v2.0/metalnic/agents/heartbeat`` — register or stay alive:
  ``{"host", "configurations": {"mode": "local|remote", "nic_hosts": [...],
  "smartnic": true, "bridge_mappings": {...}}}``;
* ``GET /network/v2.0/metalnic/hosts/{nic_host}/desired?since=N&wait=S`` — the
  desired state of a NIC host; with ``since`` it long-polls up to ``wait``
  seconds until the revision passes N (changes arrive with no polling delay);
  without, it answers at once (full resync);
Only the user whose agent registered for a NIC host (or an admin) may read
its desired state or report for it.

* ``POST /network/v2.0/metalnic/hosts/{nic_host}/report`` —
  ``{"ports": {"<id>": {"status": "ACTIVE|DOWN|ERROR", "reason": ...}},
  "applied_revision": N}``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from metalnic.errors import AgentNotFound, Forbidden, InvalidInput
from metalnic.httpjson import JSONResponse
from metalnic.network.access import require_agents_reader
from metalnic.network.api import views
from metalnic.network.api.deps import PREFIX, Body, Caller, Context, select_fields
from metalnic.network.models import Agent

router = APIRouter(prefix=PREFIX + "/v2.0")


@router.get("/agents")
def list_agents(request: Request, ctx: Context, who: Caller) -> JSONResponse:
    require_agents_reader(who)
    with ctx.service.db.transaction() as s:
        agents = s.query(Agent).order_by(Agent.host).all()
        items = [views.agent(a, ctx.service.alive(a)) for a in agents]
    for key in ("host", "agent_type", "binary"):
        if key in request.query_params:
            items = [a for a in items if a[key] == request.query_params[key]]
    return JSONResponse({"agents": [select_fields(request, a) for a in items]})


@router.get("/agents/{agent_id}")
def show_agent(agent_id: str, ctx: Context, who: Caller) -> JSONResponse:
    require_agents_reader(who)
    with ctx.service.db.transaction() as s:
        agent = s.get(Agent, agent_id)
        if agent is None:
            raise AgentNotFound(agent_id)
        return JSONResponse({"agent": views.agent(agent, ctx.service.alive(agent))})


@router.put("/agents/{agent_id}")
def update_agent(agent_id: str, ctx: Context, who: Caller, body: Body) -> JSONResponse:
    if not who.is_admin:
        raise Forbidden("Changing agents is reserved to admins.")
    change = body.get("agent") if isinstance(body, dict) else None
    if not isinstance(change, dict) or set(change) - {"admin_state_up", "description"}:
        raise InvalidInput('Body contains invalid data: expected {"agent": {"admin_state_up"}}.')
    with ctx.service.db.transaction() as s:
        agent = s.get(Agent, agent_id)
        if agent is None:
            raise AgentNotFound(agent_id)
        if "admin_state_up" in change:
            agent.admin_state_up = bool(change["admin_state_up"])
        out = views.agent(agent, ctx.service.alive(agent))
    return JSONResponse({"agent": out})


@router.delete("/agents/{agent_id}", status_code=204)
def delete_agent(agent_id: str, ctx: Context, who: Caller) -> Response:
    ctx.service.delete_agent(who, agent_id)
    return Response(status_code=204)


# --- the agent contract -----------------------------------------------------------------


@router.post("/metalnic/agents/heartbeat")
def heartbeat(ctx: Context, who: Caller, body: Body) -> JSONResponse:
    if not isinstance(body, dict):
        raise InvalidInput("Body contains invalid data.")
    agent, revived = ctx.service.heartbeat(who, body)
    return JSONResponse({"agent": views.agent(agent, True), "resync": revived})


@router.get("/metalnic/hosts/{nic_host}/desired")
async def desired(nic_host: str, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    await run_in_threadpool(_check_speaks_for, ctx, who, nic_host)  # before any long wait
    q = request.query_params
    since = _int(q.get("since"), "since")
    wait = min(float(_int(q.get("wait"), "wait") or 0), 60.0)
    deadline = time.monotonic() + wait
    while since is not None:
        revision, _applied = await run_in_threadpool(ctx.service.revision, nic_host)
        remaining = deadline - time.monotonic()
        if revision > since or remaining <= 0:
            break
        # Woken by the commit that bumps the revision; the timeout is a safety net
        # for changes made by another server process.
        await ctx.service.notifier.wait_async(min(remaining, 1.0))
    state: dict[str, Any] = await run_in_threadpool(ctx.service.desired, who, nic_host)
    return JSONResponse(state)


@router.post("/metalnic/hosts/{nic_host}/report", status_code=204)
def report(nic_host: str, ctx: Context, who: Caller, body: Body) -> Response:
    if not isinstance(body, dict):
        raise InvalidInput("Body contains invalid data.")
    ctx.service.report(who, nic_host, body)
    return Response(status_code=204)


def _check_speaks_for(ctx: Context, who: Caller, nic_host: str) -> None:
    with ctx.service.db.transaction() as s:
        ctx.service.speaks_for(who, s, nic_host)


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInput(f"{name} must be a whole number.")
    return int(value)
