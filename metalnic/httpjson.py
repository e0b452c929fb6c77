"""The JSON response class of every API: orjson, several times faster than json.

orjson writes datetimes as RFC 3339 (``2026-11-25T16:54:41.321795+00:00``),
the same text as ``isoformat()``, so views hand over datetime objects as is.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
