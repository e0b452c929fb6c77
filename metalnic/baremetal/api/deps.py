"""Request plumbing shared by the routes: context, caller, version, body, paging."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from metalnic import web
from metalnic.auth import Authenticator, Principal
from metalnic.baremetal.api import microversion, views
from metalnic.baremetal.coerce import as_bool
from metalnic.baremetal.conductor.service import Conductor
from metalnic.baremetal.drivers.registry import Registry
from metalnic.baremetal.fields import Field, Version
from metalnic.baremetal.listing import Page, make_page
from metalnic.db.session import Database
from metalnic.errors import InvalidInput
from metalnic.httpjson import JSONResponse
from metalnic.settings import Settings


@dataclass
class AppContext:
    """What the routes need from the running server; built once in server.py."""

    settings: Settings
    db: Database
    authenticator: Authenticator
    registry: Registry
    hostname: str
    conductor: Conductor

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.db.transaction() as session:
            yield session


# The cheap dependencies are coroutines: FastAPI runs a plain function in a
# worker thread, and the thread hops cost more than these do.


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_principal(request: Request) -> Principal:
    return await web.authenticate(request, (await get_context(request)).authenticator)


async def get_version(request: Request) -> Version:
    version = microversion.parse(request.headers.get(microversion.HEADER))
    request.state.api_version = version
    return version


async def get_json_body(request: Request) -> Any:
    body = await get_optional_json_body(request)
    if body is None:
        raise InvalidInput("The request body is empty; a JSON document was expected.")
    return body


async def get_optional_json_body(request: Request) -> Any:
    """The parsed body, or None for an empty one; bounded in size while reading."""
    return await web.read_json(request, (await get_context(request)).settings.max_request_body_size)


def base_url(request: Request) -> str:
    return web.base_url(request)


def next_link(request: Request, resource: str, items: Sequence[Any], limit: int) -> dict[str, str]:
    """Ironic's ``next`` link, present when a page came back full."""
    if not items or len(items) < limit:
        return {}
    params = {k: v for k, v in request.query_params.items() if k != "marker"}
    params["limit"] = str(limit)
    params["marker"] = items[-1].uuid
    return {"next": f"{base_url(request)}/v1/{resource}?{urlencode(params)}"}


def page_from_query(request: Request, max_limit: int, sort_keys: tuple[str, ...]) -> Page:
    q = request.query_params
    limit = q.get("limit")
    if limit is not None and not limit.lstrip("-").isdigit():
        raise InvalidInput(f"Expected an integer limit but received {limit!r}.")
    return make_page(
        int(limit) if limit is not None else None,
        q.get("marker"),
        q.get("sort_key"),
        q.get("sort_dir"),
        max_limit,
        sort_keys,
    )


def parse_bool_param(name: str, value: str | None) -> bool | None:
    return None if value is None else as_bool(name, value)


Context = Annotated[AppContext, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_principal)]
ApiVersion = Annotated[Version, Depends(get_version)]
JsonBody = Annotated[Any, Depends(get_json_body)]
OptionalJsonBody = Annotated[Any, Depends(get_optional_json_body)]


@dataclass(frozen=True)
class Collection:
    """How one kind of resource is listed: its fields, its sort keys, its query and view."""

    key: str  # the JSON key of the list: "ports", "portgroups"
    fields: dict[str, Field]
    list_fields: tuple[str, ...]  # shown without ``detail``
    sort_keys: tuple[str, ...]
    query: Callable[[Session, Principal, Any, Page], Sequence[Any]]
    view: Callable[[Any, str, list[str]], dict[str, Any]]


def list_response(
    request: Request,
    ctx: AppContext,
    who: Principal,
    version: Version,
    what: Collection,
    filters: Any,
    resource: str,
    detail: bool = False,
) -> JSONResponse:
    """A list route's answer: ``detail``/``fields`` chosen, one page, Ironic's next link."""
    q = request.query_params
    detail = detail or bool(parse_bool_param("detail", q.get("detail")))
    if detail and q.get("fields"):
        raise InvalidInput("Can not specify ?detail=True and fields in the same request.")
    default = views.all_fields(what.fields, version) if detail else what.list_fields
    fields = views.select_fields(what.fields, q.get("fields"), version, default)
    page = page_from_query(request, ctx.settings.max_page_size, what.sort_keys)
    base = base_url(request)
    with ctx.transaction() as s:
        found = what.query(s, who, filters, page)
        body: dict[str, Any] = {what.key: [what.view(item, base, fields) for item in found]}
    body.update(next_link(request, resource, found, page.limit))
    return JSONResponse(body)
