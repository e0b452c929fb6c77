"""Neutron's error body: ``{"NeutronError": {"type", "message", "detail"}}``."""

from __future__ import annotations

from metalnic.auth import REALM
from metalnic.errors import MetalnicError
from metalnic.httpjson import JSONResponse

_BY_STATUS = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "PolicyNotAuthorized",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    409: "HTTPConflict",
    413: "HTTPRequestEntityTooLarge",
    500: "HTTPInternalServerError",
    503: "HTTPServiceUnavailable",
}


def error_response(status: int, message: str, kind: str | None = None) -> JSONResponse:
    body = {
        "NeutronError": {
            "type": kind or _BY_STATUS.get(status, "NeutronException"),
            "message": message,
            "detail": "",
        }
    }
    headers = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def from_error(exc: MetalnicError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.neutron_type)
