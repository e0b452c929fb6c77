"""Version discovery at / and /v1, in Ironic's shape (no authentication needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from metalnic.baremetal.api import microversion, openapi
from metalnic.baremetal.api.deps import base_url
from metalnic.httpjson import JSONResponse
from metalnic.jsontypes import JSONObject

router = APIRouter()

_RESOURCES = ("chassis", "nodes", "ports", "portgroups", "drivers", "conductors")


def _version(base: str) -> JSONObject:
    return {
        "id": "v1",
        "links": [{"href": f"{base}/v1/", "rel": "self"}],
        "status": "CURRENT",
        "min_version": microversion.fmt(microversion.MIN_VERSION),
        "version": microversion.fmt(microversion.MAX_VERSION),
    }


@router.get("/")
def root(request: Request) -> JSONResponse:
    base = base_url(request)
    return JSONResponse(
        {
            "name": "metalnic bare-metal API",
            "description": "Ironic-compatible bare-metal API of metalnic, with smart NIC ports.",
            "default_version": _version(base),
            "versions": [_version(base)],
        }
    )


@router.get("/v1")
@router.get("/v1/")
def v1(request: Request) -> JSONResponse:
    base = base_url(request)
    body: JSONObject = {
        "id": "v1",
        "links": [{"href": f"{base}/v1/", "rel": "self"}],
        "media_types": [
            {"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}
        ],
        "version": _version(base),
    }
    for name in _RESOURCES:
        body[name] = [
            {"href": f"{base}/v1/{name}/", "rel": "self"},
            {"href": f"{base}/{name}/", "rel": "bookmark"},
        ]
    return JSONResponse(body)


@router.get("/v1/openapi.json", include_in_schema=False)
def openapi_document(request: Request) -> JSONResponse:
    """This API's OpenAPI document (built once: the routes do not change)."""
    state = request.app.state
    if getattr(state, "v1_openapi", None) is None:
        state.v1_openapi = openapi.document(request.app)
    return JSONResponse(state.v1_openapi)
