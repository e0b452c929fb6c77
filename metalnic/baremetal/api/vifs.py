"""Routes for /v1/nodes/{id}/vifs (Ironic's VIF API)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from metalnic.baremetal import vifs
from metalnic.baremetal.api.deps import ApiVersion, Caller, Context, JsonBody
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/nodes")


@router.get("/{ident}/vifs")
def list_vifs(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    with ctx.transaction() as s:
        return JSONResponse({"vifs": vifs.list_vifs(s, who, ident)})


@router.post("/{ident}/vifs", status_code=204)
def attach_vif(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    vif = vifs.parse(body)
    ctx.conductor.attach_vif(who, ident, vif)
    return Response(status_code=204)


@router.delete("/{ident}/vifs/{vif}", status_code=204)
def detach_vif(ident: str, vif: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    ctx.conductor.detach_vif(who, ident, vif)
    return Response(status_code=204)
