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

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

# The text, revision, boolean and JSON types live in the leaf module both sides of
# the agent contract import; re-exported here for the request models.
from metalnic.contract.values import (
    INT64_MAX,
    INT64_MIN,
    NO_NUL,
    Id,
    JsonObject,
    LongText,
    Name,
    Revision,
    Short,
    StrictBool,
    check_json,
    check_text,
    text_schema,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "NO_NUL",
    "Id",
    "JsonObject",
    "LongText",
    "Name",
    "Revision",
    "Short",
    "StrictBool",
    "check_json",
    "check_text",
    "text_schema",
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
