"""The value types of the network API's edge: what one field of a request may hold.

Every request body, path and query parameter of ``/network/v2.0`` is checked
once, at the edge, with these types (the request models in ``schemas.py`` are
built from them), so what reaches the service is already the right Python
type and range and nothing a later read cannot render gets stored:

* text: a real string (no number, object or list), of bounded length, without
  NUL characters or lone UTF-16 surrogates (neither can be stored everywhere
  nor rendered back as JSON);
* integers: JSON integers (Neutron's clients also send decimal strings, as
  ``openstack network create --provider-segment 100`` does: ASCII digits only,
  so ``²`` is refused) within the range the column holds;
* booleans: JSON booleans, or the strings ``true``/``false`` in any case
  (Neutron's ``convert_to_boolean``);
* free-form JSON (``binding:profile``, agent configurations): any JSON whose
  strings are text as above, whose integers fit in 64 bits and whose numbers
  are finite.

Each type carries the JSON schema the published OpenAPI document shows for it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema

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


def _int_like(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 19):
            raise ValueError("must be an integer")
        return int(value)
    if not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def int_schema(low: int, high: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": "^[0-9]{1,19}$"},
        ],
        "description": f"an integer from {low} to {high} (a decimal string is accepted)",
    }


IntLike = BeforeValidator(_int_like)
MTU = Annotated[int, IntLike, Field(ge=68, le=65535), WithJsonSchema(int_schema(68, 65535))]
VlanId = Annotated[int, IntLike, Field(ge=1, le=4094), WithJsonSchema(int_schema(1, 4094))]
PortNumber = Annotated[int, IntLike, Field(ge=0, le=65535), WithJsonSchema(int_schema(0, 65535))]
Revision = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]


PROTOCOL_NAMES = ("tcp", "udp", "icmp", "icmpv6")


def _protocol(value: Any) -> str:
    """A protocol name (any case) or number 0-255, as the text the service stores."""
    if isinstance(value, str) and value.lower() in PROTOCOL_NAMES:
        return value.lower()
    number = _int_like(value)
    if not 0 <= number <= 255:
        raise ValueError("an IP protocol number is 0-255")
    return str(number)


Protocol = Annotated[
    str,
    BeforeValidator(_protocol),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(PROTOCOL_NAMES)},
                {"type": "integer", "minimum": 0, "maximum": 255},
                {"type": "string", "pattern": "^[0-9]{1,3}$"},
            ],
            "description": "tcp, udp, icmp, icmpv6 (any case) or an IP protocol number 0-255",
        }
    ),
]


def _bool_like(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be a boolean (true or false)")


BoolLike = Annotated[
    bool,
    BeforeValidator(_bool_like),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"},
            ]
        }
    ),
]

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
