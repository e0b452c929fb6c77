"""Routes for /v1/portgroups (API 1.23+): list, show, create, PATCH, delete, members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from metalnic.auth import Principal
from metalnic.baremetal import portgroups
from metalnic.baremetal.api import bodies, params, views
from metalnic.baremetal.api import ports as port_routes
from metalnic.baremetal.api.deps import (
    AppContext,
    Caller,
    Collection,
    Context,
    JsonBody,
    ListParams,
    ListQuery,
    base_url,
    check_url,
    version_since,
)
from metalnic.baremetal.api.deps import list_response as deps_list
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.baremetal.fields import (
    PORTGROUP_FIELDS,
    PORTGROUP_LIST_FIELDS,
    PORTGROUPS_SINCE,
    Version,
)
from metalnic.baremetal.inventory import Inventory
from metalnic.baremetal.ports import PortFilters
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/portgroups", dependencies=[Depends(check_url)])
SortKey = params.PortGroupSort


# Port groups do not exist below 1.23: Ironic answers 404 there.
GroupVersion = Annotated[Version, Depends(version_since(PORTGROUPS_SINCE, "Port groups"))]


PORTGROUPS = Collection(
    key="portgroups",
    fields=PORTGROUP_FIELDS,
    list_fields=PORTGROUP_LIST_FIELDS,
    sort_keys=portgroups.PORTGROUP_SORT_KEYS,
    query=Inventory.list_portgroups,
    view=views.portgroup,
)


def list_response(
    request: Request,
    ctx: AppContext,
    who: Principal,
    version: Version,
    query: tuple[ListQuery, str | None],
    filters: portgroups.PortGroupFilters,
    resource: str,
    detail: bool = False,
) -> JSONResponse:
    return deps_list(request, ctx, who, version, PORTGROUPS, query, filters, resource, detail)


async def group_filters(
    node: params.Text = None, node_uuid: params.Text = None, address: params.Text = None
) -> portgroups.PortGroupFilters:
    return portgroups.PortGroupFilters(node=node or node_uuid, address=address)


Filters = Annotated[portgroups.PortGroupFilters, Depends(group_filters)]


@router.get("", responses=errors(404))
def list_portgroups(
    request: Request,
    ctx: Context,
    who: Caller,
    version: GroupVersion,
    q: ListParams,
    filters: Filters,
    sort_key: SortKey = None,
) -> JSONResponse:
    return list_response(request, ctx, who, version, (q, sort_key), filters, "portgroups")


@router.get("/detail", responses=errors(404))
def list_portgroups_detail(
    request: Request,
    ctx: Context,
    who: Caller,
    version: GroupVersion,
    q: ListParams,
    filters: Filters,
    sort_key: SortKey = None,
) -> JSONResponse:
    return list_response(
        request, ctx, who, version, (q, sort_key), filters, "portgroups/detail", True
    )


@router.post(
    "",
    status_code=201,
    responses=errors(404, 409),
    openapi_extra=body_doc(bodies.PortGroupCreate),
)
def create_portgroup(
    request: Request, ctx: Context, who: Caller, version: GroupVersion, body: JsonBody
) -> JSONResponse:
    body = bodies.resource(bodies.PortGroupCreate, PORTGROUP_FIELDS, body, version, "port group")
    base = base_url(request)
    shown = views.all_fields(PORTGROUP_FIELDS, version)
    out = ctx.inventory.create_portgroup(
        who, body, version, lambda g: views.portgroup(g, base, shown)
    )
    return JSONResponse(
        out, status_code=201, headers={"Location": f"{base}/v1/portgroups/{out['uuid']}"}
    )


@router.get("/{ident}", responses=errors(404))
def show_portgroup(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: GroupVersion,
    fields: params.Fields = None,
) -> JSONResponse:
    shown = views.select_fields(
        PORTGROUP_FIELDS, fields, version, views.all_fields(PORTGROUP_FIELDS, version)
    )
    base = base_url(request)
    return JSONResponse(
        ctx.inventory.get_portgroup(who, ident, lambda g: views.portgroup(g, base, shown))
    )


@router.patch("/{ident}", responses=errors(404, 409), openapi_extra=body_doc(bodies.Patch))
def patch_portgroup(
    ident: str, request: Request, ctx: Context, who: Caller, version: GroupVersion, body: JsonBody
) -> JSONResponse:
    ops = bodies.patch(body)
    base = base_url(request)
    shown = views.all_fields(PORTGROUP_FIELDS, version)
    return JSONResponse(
        ctx.inventory.patch_portgroup(
            who, ident, ops, version, lambda g: views.portgroup(g, base, shown)
        )
    )


@router.delete("/{ident}", status_code=204, responses=errors(404, 409))
def delete_portgroup(ident: str, ctx: Context, who: Caller, version: GroupVersion) -> Response:
    ctx.inventory.delete_portgroup(who, ident)
    return Response(status_code=204)


@router.get("/{ident}/ports", responses=errors(404))
def portgroup_ports(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: GroupVersion,
    q: ListParams,
    sort_key: port_routes.SortKey = None,
) -> JSONResponse:
    return port_routes.list_response(
        request,
        ctx,
        who,
        version,
        (q, sort_key),
        PortFilters(portgroup=ident),
        f"portgroups/{ident}/ports",
    )


@router.get("/{ident}/ports/detail", responses=errors(404))
def portgroup_ports_detail(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: GroupVersion,
    q: ListParams,
    sort_key: port_routes.SortKey = None,
) -> JSONResponse:
    return port_routes.list_response(
        request,
        ctx,
        who,
        version,
        (q, sort_key),
        PortFilters(portgroup=ident),
        f"portgroups/{ident}/ports/detail",
        True,
    )
