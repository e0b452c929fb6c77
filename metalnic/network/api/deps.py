"""Request plumbing of the network API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from metalnic import web
from metalnic.auth import Authenticator, Principal
from metalnic.errors import InvalidInput
from metalnic.network.service import NetworkService
from metalnic.settings import Settings

PREFIX = "/network"


@dataclass
class NetworkContext:
    settings: Settings
    service: NetworkService
    authenticator: Authenticator


async def get_context(request: Request) -> NetworkContext:
    ctx: NetworkContext = request.app.state.network
    return ctx


async def get_principal(request: Request) -> Principal:
    return await web.authenticate(request, (await get_context(request)).authenticator)


async def get_body(request: Request) -> Any:
    body = await web.read_json(request, (await get_context(request)).settings.max_request_body_size)
    if body is None:
        raise InvalidInput("Body contains invalid data: a JSON document was expected.")
    return body


def resource(body: Any, key: str) -> dict[str, Any]:
    """The object under ``key`` of a Neutron request body ({"network": {...}})."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict) or len(body) != 1:
        raise InvalidInput(f'Body contains invalid data: expected {{"{key}": {{...}}}}.')
    return dict(body[key])


def filters(request: Request) -> dict[str, str]:
    return {
        k: v
        for k, v in request.query_params.items()
        if k not in ("fields", "limit", "marker", "sort_key", "sort_dir")
    }


def select_fields(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    wanted = request.query_params.getlist("fields")
    return {k: v for k, v in item.items() if k in wanted} if wanted else item


def if_revision(request: Request) -> int | None:
    """Neutron's ``If-Match: revision_number=N`` on an update or delete: the change
    applies only while the resource is at revision N (else 412)."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        digits = sep and value.isascii() and value.isdigit() and len(value) <= 18
        if key == "revision_number" and digits:
            return int(value)
    raise InvalidInput("If-Match must be revision_number=N with N a revision number.")


def base(request: Request) -> str:
    return web.base_url(request) + PREFIX


Context = Annotated[NetworkContext, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_principal)]
Body = Annotated[Any, Depends(get_body)]
IfRevision = Annotated[int | None, Depends(if_revision)]
