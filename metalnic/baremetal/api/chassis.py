"""Routes for /v1/chassis (Ironic's chassis; rules in ``metalnic.baremetal.chassis``)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, Request, Response

from metalnic.baremetal import chassis
from metalnic.baremetal.api import bodies, params, views
from metalnic.baremetal.api import nodes as node_routes
from metalnic.baremetal.api.deps import (
    ApiVersion,
    Caller,
    Collection,
    Context,
    JsonBody,
    ListParams,
    base_url,
    check_url,
    list_response,
)
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.baremetal.fields import CHASSIS_FIELDS, CHASSIS_LIST_FIELDS
from metalnic.baremetal.inventory import Inventory
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/chassis", dependencies=[Depends(check_url)])

CHASSIS = Collection(
    key="chassis",
    fields=CHASSIS_FIELDS,
    list_fields=CHASSIS_LIST_FIELDS,
    sort_keys=chassis.CHASSIS_SORT_KEYS,
    query=Inventory.list_chassis,
    view=views.chassis,
)


def _list(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, q: ListParams,
    sort_key: str | None, detail: bool,
) -> JSONResponse:  # fmt: skip
    resource = "chassis/detail" if detail else "chassis"
    return list_response(request, ctx, who, version, CHASSIS, (q, sort_key), None, resource, detail)


@router.get("", responses=errors(403, 404))
def list_chassis(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    q: ListParams,
    sort_key: params.ChassisSort = None,
) -> JSONResponse:
    return _list(request, ctx, who, version, q, sort_key, detail=False)


@router.get("/detail", responses=errors(403, 404))
def list_chassis_detail(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    q: ListParams,
    sort_key: params.ChassisSort = None,
) -> JSONResponse:
    return _list(request, ctx, who, version, q, sort_key, detail=True)


@router.post(
    "", status_code=201, responses=errors(403, 409), openapi_extra=body_doc(bodies.ChassisCreate)
)
def create_chassis(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    body = bodies.resource(bodies.ChassisCreate, CHASSIS_FIELDS, body, version, "chassis")
    base = base_url(request)
    shown = views.all_fields(CHASSIS_FIELDS, version)
    out = ctx.inventory.create_chassis(who, body, version, lambda c: views.chassis(c, base, shown))
    return JSONResponse(
        out, status_code=201, headers={"Location": f"{base}/v1/chassis/{out['uuid']}"}
    )


@router.get("/{ident}", responses=errors(403, 404))
def show_chassis(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    fields: params.Fields = None,
) -> JSONResponse:
    shown = views.select_fields(
        CHASSIS_FIELDS, fields, version, views.all_fields(CHASSIS_FIELDS, version)
    )
    base = base_url(request)
    return JSONResponse(
        ctx.inventory.get_chassis(who, ident, lambda c: views.chassis(c, base, shown))
    )


@router.patch("/{ident}", responses=errors(403, 404), openapi_extra=body_doc(bodies.Patch))
def patch_chassis(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    ops = bodies.patch(body)
    base = base_url(request)
    shown = views.all_fields(CHASSIS_FIELDS, version)
    return JSONResponse(
        ctx.inventory.patch_chassis(
            who, ident, ops, version, lambda c: views.chassis(c, base, shown)
        )
    )


@router.delete("/{ident}", status_code=204, responses=errors(400, 403, 404))
def delete_chassis(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    ctx.inventory.delete_chassis(who, ident)
    return Response(status_code=204)


def _nodes(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion,
    q: ListParams, nq: node_routes.NodeQuery, detail: bool,
) -> JSONResponse:  # fmt: skip
    ctx.inventory.get_chassis(who, ident, lambda c: None)  # 403/404 before any node is read
    filters = dataclasses.replace(nq.filters, chassis_uuid=ident)
    query = node_routes.NodeQuery(nq.sort_key, filters)
    resource = f"chassis/{ident}/nodes" + ("/detail" if detail else "")
    return node_routes.list_nodes_of(request, ctx, who, version, q, query, detail, resource)


@router.get("/{ident}/nodes", responses=errors(403, 404))
def chassis_nodes(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion,
    q: ListParams, nq: node_routes.Filters,
) -> JSONResponse:  # fmt: skip
    return _nodes(ident, request, ctx, who, version, q, nq, detail=False)


@router.get("/{ident}/nodes/detail", responses=errors(403, 404))
def chassis_nodes_detail(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion,
    q: ListParams, nq: node_routes.Filters,
) -> JSONResponse:  # fmt: skip
    return _nodes(ident, request, ctx, who, version, q, nq, detail=True)
