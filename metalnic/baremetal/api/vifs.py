"""Routes for /v1/nodes/{id}/vifs (Ironic's VIF API)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from metalnic.baremetal import vifs
from metalnic.baremetal.api import bodies
from metalnic.baremetal.api.deps import ApiVersion, Caller, Context, JsonBody, check_url
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/nodes", dependencies=[Depends(check_url)])


@router.get("/{ident}/vifs", responses=errors(404))
def list_vifs(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    return JSONResponse({"vifs": ctx.inventory.list_vifs(who, ident)})


@router.post(
    "/{ident}/vifs",
    status_code=204,
    responses=errors(404, 409, 500),
    openapi_extra=body_doc(bodies.Vif),
)
def attach_vif(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    vif = vifs.parse(bodies.check(bodies.Vif, body, "VIF"))
    ctx.conductor.attach_vif(who, ident, vif)
    return Response(status_code=204)


@router.delete("/{ident}/vifs/{vif}", status_code=204, responses=errors(404, 409, 500))
def detach_vif(ident: str, vif: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    ctx.conductor.detach_vif(who, ident, vif)
    return Response(status_code=204)
