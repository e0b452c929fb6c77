"""Value types shared by both sides of the agent contract and the network API's edge.

What one text, revision or free-form JSON field may hold (see
``metalnic/network/inputs.py`` for the rules).  A leaf module (pydantic and
the standard library only), so the agent, which talks to the server only over
HTTP, can use the same types as the server without importing server code.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict, WithJsonSchema

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
NO_NUL = "^[^\\u0000]*$"


def check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def text_schema(max_length: int, min_length: int = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": NO_NUL}
    if min_length:
        schema["minLength"] = min_length
    return schema


# Strings: at most 255 characters (Neutron's limit for names and descriptions).
Name = Annotated[
    str,
    Strict(),
    Field(max_length=255),
    AfterValidator(check_text),
    WithJsonSchema(text_schema(255)),
]
# Identifiers and host names: 1..255 characters.
Id = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=255),
    AfterValidator(check_text),
    WithJsonSchema(text_schema(255, 1)),
]
# Short codes (network type, physical network, IP prefix, MAC address): 64 characters.
Short = Annotated[
    str,
    Strict(),
    Field(max_length=64),
    AfterValidator(check_text),
    WithJsonSchema(text_schema(64)),
]
# Reasons and certificates.
LongText = Annotated[
    str,
    Strict(),
    Field(max_length=16384),
    AfterValidator(check_text),
    WithJsonSchema(text_schema(16384)),
]


Revision = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]

StrictBool = Annotated[bool, Strict()]


def check_json(value: Any) -> Any:
    """Refuse what cannot be stored and rendered back: see the module docstring."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise ValueError("integers must fit in 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            raise ValueError("must be JSON")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
