"""Ironic's error body and the exception handlers that produce it for /v1.

Ironic wraps its fault in a JSON *string*: the body is ``{"error_message": S}``
where S is the JSON text of ``{"faultcode": "Client", "faultstring": "...",
"debuginfo": null}``; the OpenStack clients unpack it to show the message.
"""

from __future__ import annotations

import json

from metalnic.auth import REALM
from metalnic.baremetal.api import microversion
from metalnic.httpjson import JSONResponse


def error_response(status: int, message: str) -> JSONResponse:
    fault = {
        "faultcode": "Client" if status < 500 else "Server",
        "faultstring": message,
        "debuginfo": None,
    }
    headers = microversion.range_headers()
    if status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return JSONResponse({"error_message": json.dumps(fault)}, status_code=status, headers=headers)
