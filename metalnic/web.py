"""HTTP plumbing shared by both APIs: bounded JSON bodies, strict integers, callers, base URLs.

Every request body of both APIs is read here, once, and refused with a 400
unless everything in it can be stored and shown again: no NUL characters or
lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but no UTF-8 text, so the
database or the JSON encoder would fail on it later), no integer outside
signed 64 bits (nor the 4,300-digit monsters Python's ``int`` refuses), no
NaN or infinity, nothing nested deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import Request

from metalnic.auth import Authenticator, Principal
from metalnic.errors import InvalidInput, PayloadTooLarge
from metalnic.login import hashing_pool

MAX_DEPTH = 32
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# ASCII digits only (str.isdigit() also says yes to '²' and '٣'); 19 digits hold any int64.
_INT_RE = re.compile(r"[-+]?[0-9]{1,19}")


def strict_int(text: str, what: str, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """The integer ``text`` spells in ASCII digits, within [minimum, maximum], or a 400."""
    if not _INT_RE.fullmatch(text):
        raise InvalidInput(f"Invalid {what}: expected an integer, got {_preview(text)}.")
    value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"Invalid {what}: {value} is outside [{minimum}, {maximum}].")
    return value


def _preview(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} chars)"


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
    if declared is not None and _INT_RE.fullmatch(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed and checked (see the module docstring), or None when blank."""
    if not raw.strip():
        return None
    try:
        body = json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"Malformed JSON in request body: {exc}.") from None
    except RecursionError:
        raise InvalidInput(f"JSON in request body is nested deeper than {MAX_DEPTH}.") from None
    check_json(body)
    return body


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"Malformed JSON in request body: {name} is not a JSON number.")


def _parse_int(text: str) -> int:
    # Checked before int(): over 4,300 digits int() itself raises ValueError.
    if len(text.lstrip("-")) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
        raise InvalidInput(_INT_RANGE_MESSAGE)
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"Number {_preview(text)} in the request body is out of range.")
    return value


_INT_RANGE_MESSAGE = (
    f"Integers in the request body must lie within signed 64 bits [{INT64_MIN}, {INT64_MAX}]."
)


def check_json(value: Any) -> None:
    """Refuse what databases or the JSON encoder cannot hold (see the module docstring)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"JSON in request body is nested deeper than {MAX_DEPTH}.")
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise InvalidInput(_INT_RANGE_MESSAGE)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput("Numbers in the request body must be finite.")


def check_text(text: str, where: str = "Strings in the request body") -> None:
    """Refuse NUL characters and lone UTF-16 surrogates (not text: nothing can store them)."""
    if "\x00" in text:
        raise InvalidInput(f"{where} must not contain NUL characters.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{where} must be Unicode text: a lone UTF-16 surrogate (such as \\ud800) "
                "is not a character."
            ) from None


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
