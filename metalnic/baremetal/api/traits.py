"""Routes for /v1/nodes/{id}/traits (Ironic's node traits, API 1.37; rules in
``metalnic.baremetal.traits``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from metalnic.baremetal.api import bodies
from metalnic.baremetal.api.deps import (
    Caller,
    Context,
    JsonBody,
    check_url,
    version_since,
)
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.baremetal.fields import Version
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/nodes", dependencies=[Depends(check_url)])
TRAITS_SINCE: Version = (1, 37)


TraitsVersion = Annotated[Version, Depends(version_since(TRAITS_SINCE, "Node traits"))]


@router.get("/{ident}/traits", responses=errors(404))
def list_traits(ident: str, ctx: Context, who: Caller, version: TraitsVersion) -> JSONResponse:
    return JSONResponse({"traits": ctx.inventory.list_traits(who, ident)})


@router.put(
    "/{ident}/traits",
    status_code=204,
    responses=errors(404, 409),
    openapi_extra=body_doc(bodies.Traits),
)
def set_traits(
    ident: str, ctx: Context, who: Caller, version: TraitsVersion, body: JsonBody
) -> Response:
    ctx.inventory.set_traits(who, ident, body)
    return Response(status_code=204)


@router.put("/{ident}/traits/{trait}", status_code=204, responses=errors(404, 409))
def add_trait(
    ident: str, trait: str, ctx: Context, who: Caller, version: TraitsVersion
) -> Response:
    ctx.inventory.add_trait(who, ident, trait)
    return Response(status_code=204)


@router.delete("/{ident}/traits", status_code=204, responses=errors(404, 409))
def remove_traits(ident: str, ctx: Context, who: Caller, version: TraitsVersion) -> Response:
    ctx.inventory.remove_trait(who, ident, None)
    return Response(status_code=204)


@router.delete("/{ident}/traits/{trait}", status_code=204, responses=errors(404, 409))
def remove_trait(
    ident: str, trait: str, ctx: Context, who: Caller, version: TraitsVersion
) -> Response:
    ctx.inventory.remove_trait(who, ident, trait)
    return Response(status_code=204)
