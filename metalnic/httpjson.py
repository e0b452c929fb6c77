"""The JSON response class of every API: orjson, and no secret in any answer.

orjson writes datetimes as RFC 3339 (``2026-11-25T16:54:41.321795+00:00``),
the same text as ``isoformat()``, so views hand over datetime objects as is.

No answer of either API, errors included, carries credentials inside a URL:
the serialised bytes are scanned for ``@`` and ``%`` (two memchr calls) and
only an answer holding one is walked by ``metalnic.redact`` — so no view,
error path or future route can leak one.  Secret-named keys are masked by
the views, where free-form objects are rendered (see ``metalnic.redact``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

from metalnic import redact


class JSONResponse(_StarletteJSONResponse):
    #: Whether the safety-net walk masks secret-named keys (see SecretKeysJSONResponse).
    mask_keys: ClassVar[bool] = True

    def render(self, content: Any) -> bytes:
        raw = orjson.dumps(content)
        if redact.might_hold_credentials(raw):
            raw = orjson.dumps(redact.redact(content, mask_keys=self.mask_keys))
        return raw


class SecretKeysJSONResponse(JSONResponse):
    """An answer whose secret-named keys are meant for its caller; strings are still redacted.

    Only two: the ramdisk's lookup (its one-time ``agent_token``) and a
    driver's properties (names such as ``ipmi_password`` with descriptions).
    """

    mask_keys = False
