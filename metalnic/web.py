"""HTTP plumbing shared by both APIs: bounded JSON bodies, callers, base URLs."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from metalnic.auth import Authenticator, Principal
from metalnic.errors import InvalidInput, PayloadTooLarge
from metalnic.login import hashing_pool

MAX_DEPTH = 32


async def authenticate(request: Request, authenticator: Authenticator) -> Principal:
    header = request.headers.get("authorization")
    source = request.client.host if request.client else None
    who = authenticator.cached(header, source)  # also refuses at once during a back-off
    if who is None:
        # bcrypt takes a quarter of a second: never on the event loop, and never in
        # the routes' threadpool (a flood of wrong passwords would starve them).
        who = await hashing_pool().run(authenticator.authenticate, header, source)
    return who


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body, or None for an empty one; bounded in size while reading."""
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
