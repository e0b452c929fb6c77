"""The JSON response class of every API: orjson, and no secret in any answer.

orjson writes datetimes as RFC 3339 (``2026-11-25T16:54:41.321795+00:00``),
the same text as ``isoformat()``, so views hand over datetime objects as is.

Every answer of both APIs, errors included, is redacted here by
``metalnic.redact`` — one place, so no view, error path or future route can
forget it.  The serialised bytes are scanned first; only an answer that
might hold a secret (a secret-named key, an ``@``, a PEM block …) is walked.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

from metalnic import redact


class JSONResponse(_StarletteJSONResponse):
    #: Whether values under secret-named keys are masked (see SecretKeysJSONResponse).
    mask_keys: ClassVar[bool] = True

    def render(self, content: Any) -> bytes:
        raw = orjson.dumps(content)
        if redact.might_hold_secrets(raw):
            raw = orjson.dumps(redact.redact(content, mask_keys=self.mask_keys))
        return raw


class SecretKeysJSONResponse(JSONResponse):
    """An answer whose secret-named keys are meant for its caller; strings are still redacted.

    Only two: the ramdisk's lookup (its one-time ``agent_token``) and a
    driver's properties (names such as ``ipmi_password`` with descriptions).
    """

    mask_keys = False
