"""Request plumbing of the network API: context, caller, and the edge's validation.

``body(Model, "network")`` is the dependency a route takes its body from: the
bounded JSON reader of ``metalnic.web``, Neutron's envelope
(``{"network": {...}}``), then the request model; any failure is a 400 in
Neutron's format before the route runs, so nothing is written.  Query filters
and path parameters are typed in the routes' signatures (FastAPI validates them
against the same value types; its errors are answered in Neutron's format too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Path, Request
from pydantic import BaseModel

from metalnic import web
from metalnic.auth import Authenticator, Principal
from metalnic.contract.values import Id
from metalnic.errors import InvalidInput
from metalnic.network.inputs import parse
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
    limit = (await get_context(request)).settings.max_request_body_size
    try:
        body = await web.read_json(request, limit)
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InvalidInput(f"Malformed JSON in request body: {exc}.") from None
    if body is None:
        raise InvalidInput("Body contains invalid data: a JSON document was expected.")
    return body


def resource(body: Any, key: str) -> dict[str, Any]:
    """The object under ``key`` of a Neutron request body ({"network": {...}})."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict) or len(body) != 1:
        raise InvalidInput(f'Body contains invalid data: expected {{"{key}": {{...}}}}.')
    return dict(body[key])


M = TypeVar("M", bound=BaseModel)


def body_of(model: type[M], key: str) -> Callable[[Request], Awaitable[M]]:
    """A dependency: the request body's ``key`` object validated as ``model``.
    Without ``key`` the body itself is the model (the agent contract)."""

    async def read(request: Request) -> M:
        raw = await get_body(request)
        inner = resource(raw, key) if key else raw
        return parse(model, inner, (key,) if key else ())

    read.request_model = model  # type: ignore[attr-defined]  # for the OpenAPI document
    read.envelope = key  # type: ignore[attr-defined]
    return read


def select_fields(request: Request, item: Mapping[str, object]) -> Mapping[str, object]:
    """Neutron's ``?fields=a&fields=b``: only those fields of ``item`` (else all)."""
    return select_fields_of_all(request, [item])[0]


def select_fields_of_all(
    request: Request, items: Sequence[Mapping[str, object]]
) -> Sequence[Mapping[str, object]]:
    """``select_fields`` for every item of a list (the query read once, not per item)."""
    wanted = request.query_params.getlist("fields")
    if not wanted:
        return items
    return [{k: v for k, v in item.items() if k in wanted} for item in items]


def if_revision(
    header: Annotated[str | None, Header(alias="If-Match", max_length=256)] = None,
) -> int | None:
    """Neutron's ``If-Match: revision_number=N`` on an update or delete: the change
    applies only while the resource is at revision N (else 412)."""
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
PathId = Annotated[Id, Path()]
