"""Agent grants: which NIC hosts an agent user may serve (admins only).

metalnic's extension under ``/network/v2.0/metalnic/agent-grants``:

* ``GET /metalnic/agent-grants`` — every grant made over the API:
  ``{"agent_grants": [{"user": "rack1", "nic_hosts": ["nic1", "nic2"]}]}``;
* ``GET /metalnic/agent-grants/{user}`` — one user's (404 when it has none);
* ``PUT /metalnic/agent-grants/{user}`` with ``{"agent_grant": {"nic_hosts": [...]}}``
  — replaces that user's API grant (an empty list revokes all of it);
* ``DELETE /metalnic/agent-grants/{user}`` — revokes it.

A user's grant is the union of these and the ``nic_hosts`` of its entry in
the users file.  A revoked NIC host is released at once by that user's agents
(unless the users file still grants it) and its ports are bound again.  With
``http_basic`` the user must be an agent user of the users file.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from metalnic.auth import Principal
from metalnic.errors import AgentGrantNotFound, Forbidden, InvalidInput
from metalnic.httpjson import JSONResponse
from metalnic.network import inputs
from metalnic.network.api import replies as rp
from metalnic.network.api.deps import PREFIX, Caller, Context, NetworkContext, PathId, body_of
from metalnic.network.api.replies import answers

router = APIRouter(prefix=PREFIX + "/v2.0/metalnic/agent-grants")


def _admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("Agent grants are reserved to admins.")


def _user(ctx: NetworkContext, user: str) -> str:
    if not user or len(user) > 255 or ":" in user:
        raise InvalidInput(f"Invalid user name {user!r}.")
    if ctx.authenticator.strategy == "http_basic":
        known = ctx.authenticator.user(user)
        if known is None or "agent" not in known.roles:
            raise InvalidInput(f"User {user} is not an agent user of the users file.")
    return user


def _view(user: str, hosts: list[str]) -> dict[str, str | list[str]]:
    return {"user": user, "nic_hosts": hosts}


GrantBody = Annotated[inputs.AgentGrant, Depends(body_of(inputs.AgentGrant, "agent_grant"))]


@router.get("", response_model=rp.AgentGrantsReply, responses=answers(401, 403))
def list_grants(ctx: Context, who: Caller) -> JSONResponse:
    _admin(who)
    found = ctx.service.agents.grants()
    return JSONResponse({"agent_grants": [_view(u, h) for u, h in found.items()]})


@router.get("/{user}", response_model=rp.AgentGrantReply, responses=answers(400, 401, 403, 404))
def show_grant(user: PathId, ctx: Context, who: Caller) -> JSONResponse:
    _admin(who)
    hosts = ctx.service.agents.grants(user).get(user)
    if not hosts:
        raise AgentGrantNotFound(user)
    return JSONResponse({"agent_grant": _view(user, hosts)})


@router.put("/{user}", response_model=rp.AgentGrantReply, responses=answers(400, 401, 403, 413))
def set_grant(user: PathId, ctx: Context, who: Caller, body: GrantBody) -> JSONResponse:
    _admin(who)
    hosts = sorted(set(body.nic_hosts))
    _change(ctx, _user(ctx, user), hosts)
    return JSONResponse({"agent_grant": _view(user, hosts)})


@router.delete("/{user}", status_code=204, responses=answers(400, 401, 403, 404))
def delete_grant(user: PathId, ctx: Context, who: Caller) -> Response:
    _admin(who)
    if not ctx.service.agents.grants(user):
        raise AgentGrantNotFound(user)
    _change(ctx, user, [])
    return Response(status_code=204)


def _change(ctx: NetworkContext, user: str, hosts: list[str]) -> None:
    known = ctx.authenticator.user(user)
    kept = known.nic_hosts if known is not None else frozenset()
    ctx.service.agents.set_grant(user, hosts, kept)
