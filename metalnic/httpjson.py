"""The JSON response class of every API: orjson, several times faster than json.

orjson writes datetimes as RFC 3339 (``2026-11-25T16:54:41.321795+00:00``),
the same text as ``isoformat()``, so views hand over datetime objects as is.

A response must never fail to encode: the APIs refuse what orjson cannot
write (lone surrogates, integers beyond 64 bits) at the edge (metalnic.web),
but a row written before that rule, or by hand, could still hold such a value.
Then the value is shown repaired ('?' for a surrogate, a note for the
integer) and a warning logged, instead of every later list answering 500.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

log = logging.getLogger(__name__)

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError as exc:
            log.warning("Repairing a response that cannot be encoded as JSON: %s", exc)
            return orjson.dumps(repair(content))


def repair(value: Any) -> Any:
    """``value`` with what orjson refuses replaced by something it can write."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (
            value
            if _INT64_MIN <= value <= _UINT64_MAX
            else f"<integer of {value.bit_length()} bits>"
        )
    if isinstance(value, dict):
        return {repair(str(k)): repair(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [repair(v) for v in value]
    return value
