"""Routes for /v1/ports: list, show, create, PATCH, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from metalnic.auth import Principal
from metalnic.baremetal import ports
from metalnic.baremetal.api import bodies, params, views
from metalnic.baremetal.api.deps import (
    ApiVersion,
    AppContext,
    Caller,
    Collection,
    Context,
    JsonBody,
    ListParams,
    ListQuery,
    base_url,
    check_url,
)
from metalnic.baremetal.api.deps import list_response as deps_list
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.baremetal.fields import PORT_FIELDS, PORT_LIST_FIELDS, Version
from metalnic.baremetal.inventory import Inventory
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/ports", dependencies=[Depends(check_url)])
SortKey = params.PortSort


PORTS = Collection(
    key="ports",
    fields=PORT_FIELDS,
    list_fields=PORT_LIST_FIELDS,
    sort_keys=ports.PORT_SORT_KEYS,
    query=Inventory.list_ports,
    view=views.port,
)


def list_response(
    request: Request,
    ctx: AppContext,
    who: Principal,
    version: Version,
    query: tuple[ListQuery, str | None],
    filters: ports.PortFilters,
    resource: str,
    detail: bool = False,
) -> JSONResponse:
    return deps_list(request, ctx, who, version, PORTS, query, filters, resource, detail)


async def port_filters(
    node: params.Text = None,
    node_uuid: params.Text = None,
    address: params.Text = None,
    portgroup: params.Text = None,
) -> ports.PortFilters:
    return ports.PortFilters(node=node or node_uuid, address=address, portgroup=portgroup)


Filters = Annotated[ports.PortFilters, Depends(port_filters)]


@router.get("", responses=errors(404))
def list_ports(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    q: ListParams,
    filters: Filters,
    sort_key: SortKey = None,
) -> JSONResponse:
    return list_response(request, ctx, who, version, (q, sort_key), filters, "ports")


@router.get("/detail", responses=errors(404))
def list_ports_detail(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    q: ListParams,
    filters: Filters,
    sort_key: SortKey = None,
) -> JSONResponse:
    return list_response(request, ctx, who, version, (q, sort_key), filters, "ports/detail", True)


@router.post(
    "", status_code=201, responses=errors(404, 409), openapi_extra=body_doc(bodies.PortCreate)
)
def create_port(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    body = bodies.resource(bodies.PortCreate, PORT_FIELDS, body, version, "port")
    base = base_url(request)
    shown = views.all_fields(PORT_FIELDS, version)
    out = ctx.inventory.create_port(who, body, version, lambda p: views.port(p, base, shown))
    return JSONResponse(
        out, status_code=201, headers={"Location": f"{base}/v1/ports/{out['uuid']}"}
    )


@router.get("/{uuid}", responses=errors(404))
def show_port(
    uuid: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    fields: params.Fields = None,
) -> JSONResponse:
    shown = views.select_fields(
        PORT_FIELDS, fields, version, views.all_fields(PORT_FIELDS, version)
    )
    base = base_url(request)
    return JSONResponse(ctx.inventory.get_port(who, uuid, lambda p: views.port(p, base, shown)))


@router.patch("/{uuid}", responses=errors(404, 409), openapi_extra=body_doc(bodies.Patch))
def patch_port(
    uuid: str, request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    ops = bodies.patch(body)
    base = base_url(request)
    shown = views.all_fields(PORT_FIELDS, version)
    return JSONResponse(
        ctx.inventory.patch_port(who, uuid, ops, version, lambda p: views.port(p, base, shown))
    )


@router.delete("/{uuid}", status_code=204, responses=errors(404, 409))
def delete_port(uuid: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    ctx.inventory.delete_port(who, uuid)
    return Response(status_code=204)
