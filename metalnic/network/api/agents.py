"""Agents: Neutron's /v2.0/agents, and metalnic's agent contract.

The agent list and each agent (hosts, NIC hosts, configuration) are shown to
admins only, as in Neutron (``access.require_agents_reader``).

The agent contract (role ``agent`` or ``admin``): heartbeat, desired state and
report, whose bodies are the models of ``metalnic/contract/agent.py`` (the one
module the agent uses too); every contract request and answer carries its
version header, and a request of another version is refused (400).
Only the user whose agent registered for a NIC host (or an admin) may read
its desired state or report for it; likewise for a DHCP agent's desired state
and the user that registered it.  Both desired states are read through one
long poll (``_long_poll``); who may read is each feed's own rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from metalnic.auth import Principal
from metalnic.contract import agent as ac
from metalnic.contract import dhcp as dc
from metalnic.errors import InvalidInput
from metalnic.httpjson import JSONResponse
from metalnic.network import inputs, views
from metalnic.network.api import replies as rp
from metalnic.network.api import schemas as sc
from metalnic.network.api.deps import (
    PREFIX,
    Caller,
    Context,
    NetworkContext,
    PathId,
    body_of,
    select_fields_of_all,
)
from metalnic.network.api.replies import answers

router = APIRouter(prefix=PREFIX + "/v2.0")

AgentUpdate = Annotated[inputs.AgentUpdate, Depends(body_of(inputs.AgentUpdate, "agent"))]
Heartbeat = Annotated[ac.Heartbeat, Depends(body_of(ac.Heartbeat, ""))]
Report = Annotated[ac.Report, Depends(body_of(ac.Report, ""))]
VERSION = {ac.CONTRACT_HEADER: str(ac.CONTRACT_VERSION)}


def contract_version(
    version: Annotated[str | None, Header(alias=ac.CONTRACT_HEADER)] = None,
) -> None:
    """Refuse an agent that speaks another version of the contract (before anything else)."""
    mismatch = ac.version_mismatch(version, "server", "agent")
    if mismatch:
        raise InvalidInput(mismatch)


Contract = Depends(contract_version)


@router.get("/agents", response_model=rp.AgentsReply, responses=answers(400, 401, 403))
def list_agents(
    request: Request, ctx: Context, who: Caller, query: Annotated[sc.AgentQuery, Query()]
) -> JSONResponse:
    items = ctx.service.agents.list(who, query.filters())
    return JSONResponse({"agents": select_fields_of_all(request, items)})


@router.get(
    "/agents/{agent_id}", response_model=rp.AgentReply, responses=answers(400, 401, 403, 404)
)
def show_agent(agent_id: PathId, ctx: Context, who: Caller) -> JSONResponse:
    return JSONResponse({"agent": ctx.service.agents.show(who, agent_id)})


@router.put(
    "/agents/{agent_id}",
    response_model=rp.AgentReply,
    responses=answers(400, 401, 403, 404, 413),
)
def update_agent(agent_id: PathId, ctx: Context, who: Caller, body: AgentUpdate) -> JSONResponse:
    return JSONResponse({"agent": ctx.service.agents.update(who, agent_id, body.values())})


@router.delete("/agents/{agent_id}", status_code=204, responses=answers(400, 401, 403, 404))
def delete_agent(agent_id: PathId, ctx: Context, who: Caller) -> Response:
    ctx.service.agents.delete(who, agent_id)
    return Response(status_code=204)


# --- the agent contract -----------------------------------------------------------------


@router.post(
    "/metalnic/agents/heartbeat",
    response_model=ac.HeartbeatReply,
    responses=answers(400, 401, 403, 409, 413),
    dependencies=[Contract],
)
def heartbeat(ctx: Context, who: Caller, body: Heartbeat) -> JSONResponse:
    agent, revived = ctx.service.agents.heartbeat(who, body)
    return JSONResponse({"agent": views.agent(agent, True), "resync": revived}, headers=VERSION)


@router.get(
    "/metalnic/hosts/{nic_host}/desired",
    response_model=ac.DesiredState,
    responses=answers(400, 401, 403),
    dependencies=[Contract],
)
async def desired(
    nic_host: PathId, ctx: Context, who: Caller, query: Annotated[sc.DesiredQuery, Query()]
) -> JSONResponse:
    return await _long_poll(ctx.service.feed, ctx, who, nic_host, query)


@router.post(
    "/metalnic/hosts/{nic_host}/report",
    status_code=204,
    responses=answers(400, 401, 403, 413),
    dependencies=[Contract],
)
def report(nic_host: PathId, ctx: Context, who: Caller, body: Report) -> Response:
    ctx.service.feed.report(who, nic_host, body)
    return Response(status_code=204, headers=VERSION)


@router.get(
    "/metalnic/dhcp-agents/{host}/desired",
    response_model=dc.DhcpDesiredState,
    responses=answers(400, 401, 403),
    dependencies=[Contract],
)
async def dhcp_desired(
    host: PathId, ctx: Context, who: Caller, query: Annotated[sc.DesiredQuery, Query()]
) -> JSONResponse:
    """A DHCP agent's desired state: the networks it serves (``metalnic/contract/dhcp.py``)."""
    return await _long_poll(ctx.service.dhcp, ctx, who, host, query)


class DesiredFeed(Protocol):
    """A feed of desired states per host (``agentfeed.AgentFeed``, ``dhcpfeed.DhcpFeed``);
    each checks itself who may read it."""

    def check_speaks_for(self, who: Principal, host: str) -> None: ...

    async def wait_past(self, host: str, since: int, timeout: float) -> bool: ...

    def desired(self, who: Principal, host: str) -> Mapping[str, object]: ...


async def _long_poll(
    feed: DesiredFeed, ctx: NetworkContext, who: Principal, host: str, query: sc.DesiredQuery
) -> JSONResponse:
    """An agent's read of ``host``'s desired state: at once, or with ``since`` once its
    revision passes it (at most ``wait`` seconds, capped by the server).  The caller's
    right is checked before any wait and again with the read."""
    await run_in_threadpool(feed.check_speaks_for, who, host)  # before any long wait
    if query.since is not None:
        wait = min(float(query.wait), ctx.service.settings.agent_poll_max_wait)
        await feed.wait_past(host, query.since, wait)
    state = await run_in_threadpool(feed.desired, who, host)
    return JSONResponse(state, headers=VERSION)
