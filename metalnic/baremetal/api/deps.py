"""Request plumbing shared by the routes: context, caller, version, body, paging.

Everything a request brings is checked here or in ``params``/``bodies`` before a
route calls a service (``AppContext.inventory`` or ``AppContext.conductor``, which
open the transactions; a route never holds a session): the microversion header,
the query parameters (typed), every path and query string (no NUL: PostgreSQL
cannot store or compare one), and the body (metalnic.web).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request

from metalnic import web
from metalnic.auth import Authenticator, Principal
from metalnic.baremetal.api import microversion, params, views
from metalnic.baremetal.conductor.service import Conductor
from metalnic.baremetal.drivers.registry import Registry
from metalnic.baremetal.fields import Field, Version
from metalnic.baremetal.inventory import Inventory
from metalnic.baremetal.listing import Page, make_page
from metalnic.errors import InvalidInput, NotFound
from metalnic.httpjson import JSONResponse
from metalnic.settings import Settings


@dataclass
class AppContext:
    """What the routes need from the running server; built once in server.py."""

    settings: Settings
    authenticator: Authenticator
    registry: Registry
    hostname: str
    conductor: Conductor
    inventory: Inventory


# The cheap dependencies are coroutines: FastAPI runs a plain function in a
# worker thread, and the thread hops cost more than these do.


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_principal(request: Request) -> Principal:
    return await web.authenticate(request, (await get_context(request)).authenticator)


async def get_version(request: Request) -> Version:
    """The requested microversion.  Read from the headers directly, not as a FastAPI
    ``Header`` parameter: that would run a pydantic validation on every request of
    /v1; the OpenAPI document describes the header all the same (openapi.py)."""
    header = request.headers.get(microversion.HEADER)
    if header is not None and len(header) > microversion.HEADER_MAX_LENGTH:
        raise InvalidInput(
            f"Invalid value for {microversion.HEADER} header: it may have at most "
            f"{microversion.HEADER_MAX_LENGTH} characters."
        )
    version = microversion.parse(header)
    request.state.api_version = version
    return version


def version_since(since: Version, what: str) -> Callable[..., Awaitable[Version]]:
    """A dependency for the routes of a resource Ironic added at ``since``: the
    request's version, or Ironic's 404 below it ("<what> need API version …")."""

    async def dependency(version: Annotated[Version, Depends(get_version)]) -> Version:
        if version < since:
            raise NotFound(f"{what} need API version {since[0]}.{since[1]} or newer.")
        return version

    return dependency


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


async def check_url(request: Request) -> None:
    """Every /v1 router's first dependency: path and query strings must be storable text."""
    for value in request.path_params.values():
        if isinstance(value, str):
            web.check_text(value, "The URL path")
    for key, value in request.query_params.multi_items():
        web.check_text(key, "Query parameters")
        web.check_text(value, "Query parameters")


@dataclass(frozen=True)
class ListQuery:
    """The query parameters every list route takes (sort_key is per resource)."""

    limit: int | None = None
    marker: str | None = None
    sort_dir: str | None = None
    fields: str | None = None
    detail: bool | None = None


async def get_list_query(
    limit: params.Limit = None,
    marker: params.Marker = None,
    sort_dir: params.SortDir = None,
    fields: params.Fields = None,
    detail: params.Detail = None,
) -> ListQuery:
    return ListQuery(limit, marker, sort_dir, fields, detail)


def page_from_query(
    q: ListQuery, sort_key: str | None, max_limit: int, sort_keys: tuple[str, ...]
) -> Page:
    return make_page(q.limit, q.marker, sort_key, q.sort_dir, max_limit, sort_keys)


Context = Annotated[AppContext, Depends(get_context)]
Caller = Annotated[Principal, Depends(get_principal)]
ApiVersion = Annotated[Version, Depends(get_version)]
JsonBody = Annotated[Any, Depends(get_json_body)]
ListParams = Annotated[ListQuery, Depends(get_list_query)]
OptionalJsonBody = Annotated[Any, Depends(get_optional_json_body)]


@dataclass(frozen=True)
class Collection:
    """How one kind of resource is listed: its fields, its sort keys, its query and view."""

    key: str  # the JSON key of the list: "ports", "portgroups"
    fields: dict[str, Field]
    list_fields: tuple[str, ...]  # shown without ``detail``
    sort_keys: tuple[str, ...]
    # The inventory's list call, e.g. ``Inventory.list_ports``: it renders the page it
    # read (rows) with the function handed to it, inside its transaction.
    query: Callable[
        [Inventory, Principal, Any, Page, Callable[[Sequence[Any]], views.View]], views.View
    ]
    view: Callable[[Any, str, list[str]], views.View]


def choose_fields(
    table: dict[str, Field],
    list_fields: tuple[str, ...],
    q: ListQuery,
    version: Version,
    detail: bool,
) -> list[str]:
    """The fields a list shows: ``detail`` (or a /detail route), ``fields``, or the short set."""
    detail = detail or bool(q.detail)
    if detail and q.fields:
        raise InvalidInput("Can not specify ?detail=True and fields in the same request.")
    default = views.all_fields(table, version) if detail else list_fields
    return views.select_fields(table, q.fields, version, default)


def list_response(
    request: Request,
    ctx: AppContext,
    who: Principal,
    version: Version,
    what: Collection,
    query: tuple[ListQuery, str | None],
    filters: Any,
    resource: str,
    detail: bool = False,
) -> JSONResponse:
    """A list route's answer: ``detail``/``fields`` chosen, one page, Ironic's next link."""
    q, sort_key = query
    fields = choose_fields(what.fields, what.list_fields, q, version, detail)
    page = page_from_query(q, sort_key, ctx.settings.max_page_size, what.sort_keys)
    base = base_url(request)

    def render(found: Sequence[Any]) -> views.View:
        body: views.View = {what.key: [what.view(item, base, fields) for item in found]}
        body.update(next_link(request, resource, found, page.limit))
        return body

    return JSONResponse(what.query(ctx.inventory, who, filters, page, render))
