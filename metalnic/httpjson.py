"""The JSON response class of every API: orjson, and no secret in any answer.

orjson writes datetimes as RFC 3339 (``2026-11-25T16:54:41.321795+00:00``),
the same text as ``isoformat()``, so views hand over datetime objects as is.

No answer of either API, errors included, carries credentials inside a URL:
the serialised bytes are scanned for ``@`` and ``%`` (two memchr calls) and
only an answer holding one is walked by ``metalnic.redact`` — so no view,
error path or future route can leak one.  Secret-named keys are masked by
the views, where free-form objects are rendered (see ``metalnic.redact``).

A response must never fail to encode: the APIs refuse what orjson cannot
write (lone surrogates, integers beyond 64 bits) at the edge (metalnic.web),
but a row written before that rule, or by hand, could still hold such a value.
Then the value is shown repaired ('?' for a surrogate, a note for the
integer) and a warning logged, instead of every later list answering 500.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

from metalnic import redact

log = logging.getLogger(__name__)

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


class JSONResponse(_StarletteJSONResponse):
    #: Whether the safety-net walk masks secret-named keys (see SecretKeysJSONResponse).
    mask_keys: ClassVar[bool] = True

    def render(self, content: Any) -> bytes:
        raw = _encode(content)
        if redact.might_hold_credentials(raw):
            raw = _encode(redact.redact(content, mask_keys=self.mask_keys))
        return raw


class SecretKeysJSONResponse(JSONResponse):
    """An answer whose secret-named keys are meant for its caller; strings are still redacted.

    Only two: the ramdisk's lookup (its one-time ``agent_token``) and a
    driver's properties (names such as ``ipmi_password`` with descriptions).
    """

    mask_keys = False


def _encode(content: Any) -> bytes:
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
