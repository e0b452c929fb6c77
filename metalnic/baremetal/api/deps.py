"""Request plumbing shared by the routes: context, caller, version, body, paging."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from metalnic.auth import Authenticator, Principal
from metalnic.baremetal.api import microversion
from metalnic.baremetal.coerce import as_bool
from metalnic.baremetal.conductor.service import Conductor
from metalnic.baremetal.drivers.registry import Registry
from metalnic.baremetal.fields import Version
from metalnic.baremetal.listing import Page, make_page
from metalnic.db.session import Database
from metalnic.errors import InvalidInput, PayloadTooLarge
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
    authenticator = (await get_context(request)).authenticator
    header = request.headers.get("authorization")
    who = authenticator.cached(header)
    if who is None:
        # bcrypt takes a quarter of a second: never on the event loop.
        who = await run_in_threadpool(authenticator.authenticate, header)
    return who


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
    limit = (await get_context(request)).settings.max_request_body_size
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"Malformed JSON in request body: {exc}.") from None
    except RecursionError:
        raise InvalidInput(f"JSON in request body is nested deeper than {MAX_DEPTH}.") from None
    check_json(body)
    return body


MAX_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"Malformed JSON in request body: {name} is not a JSON number.")


def check_json(value: Any) -> None:
    """Refuse what databases or the JSON encoder cannot hold: deep nesting, NUL characters."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"JSON in request body is nested deeper than {MAX_DEPTH}.")
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidInput("Strings in the request body must not contain NUL characters.")
        elif isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


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
