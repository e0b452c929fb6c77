"""Routes for /v1/nodes: list, show, create, PATCH, delete, maintenance, states."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from metalnic import jsontypes
from metalnic.baremetal import nodes
from metalnic.baremetal.api import bodies, params, views
from metalnic.baremetal.api import portgroups as portgroup_routes
from metalnic.baremetal.api import ports as port_routes
from metalnic.baremetal.api.deps import (
    ApiVersion,
    Caller,
    Collection,
    Context,
    JsonBody,
    ListParams,
    OptionalJsonBody,
    base_url,
    check_url,
    list_response,
)
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.baremetal.fields import NODE_FIELDS, NODE_LIST_FIELDS
from metalnic.baremetal.inventory import Inventory
from metalnic.baremetal.portgroups import PortGroupFilters
from metalnic.baremetal.ports import PortFilters
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/nodes", dependencies=[Depends(check_url)])


@dataclass(frozen=True)
class NodeQuery:
    sort_key: str | None
    filters: nodes.NodeFilters


async def node_query(
    sort_key: params.NodeSort = None,
    provision_state: params.Text = None,
    owner: params.Text = None,
    maintenance: params.Flag = None,
    driver: params.Text = None,
    associated: params.Flag = None,
    chassis_uuid: params.Text = None,
) -> NodeQuery:
    return NodeQuery(
        sort_key,
        nodes.NodeFilters(provision_state, owner, maintenance, driver, associated, chassis_uuid),
    )


Filters = Annotated[NodeQuery, Depends(node_query)]


NODES = Collection(
    key="nodes",
    fields=NODE_FIELDS,
    list_fields=NODE_LIST_FIELDS,
    sort_keys=nodes.NODE_SORT_KEYS,
    query=Inventory.list_nodes,
    view=views.node,
)


def list_nodes_of(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    q: ListParams,
    nq: NodeQuery,
    detail: bool,
    resource: str = "nodes",
) -> JSONResponse:
    # The next link of /detail names /v1/nodes, as it always has.
    return list_response(
        request, ctx, who, version, NODES, (q, nq.sort_key), nq.filters, resource, detail
    )


@router.get("", responses=errors(404))
def list_nodes(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, q: ListParams, nq: Filters
) -> JSONResponse:
    return list_nodes_of(request, ctx, who, version, q, nq, detail=False)


@router.get("/detail", responses=errors(404))
def list_nodes_detail(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, q: ListParams, nq: Filters
) -> JSONResponse:
    return list_nodes_of(request, ctx, who, version, q, nq, detail=True)


@router.post("", status_code=201, responses=errors(409), openapi_extra=body_doc(bodies.NodeCreate))
def create_node(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    body = bodies.resource(bodies.NodeCreate, NODE_FIELDS, body, version, "node")
    base = base_url(request)
    shown = views.all_fields(NODE_FIELDS, version)
    out = ctx.inventory.create_node(who, body, version, lambda n: views.node(n, base, shown))
    return JSONResponse(
        out, status_code=201, headers={"Location": f"{base}/v1/nodes/{out['uuid']}"}
    )


@router.get("/{ident}", responses=errors(404))
def show_node(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    fields: params.Fields = None,
) -> JSONResponse:
    shown = views.select_fields(
        NODE_FIELDS, fields, version, views.all_fields(NODE_FIELDS, version)
    )
    base = base_url(request)
    return JSONResponse(ctx.inventory.get_node(who, ident, lambda n: views.node(n, base, shown)))


@router.patch("/{ident}", responses=errors(404, 409), openapi_extra=body_doc(bodies.Patch))
def patch_node(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    ops = bodies.patch(body)
    base = base_url(request)
    shown = views.all_fields(NODE_FIELDS, version)
    return JSONResponse(
        ctx.inventory.patch_node(who, ident, ops, version, lambda n: views.node(n, base, shown))
    )


@router.delete("/{ident}", status_code=204, responses=errors(404, 409))
def delete_node(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    ctx.inventory.delete_node(who, ident)
    return Response(status_code=204)


@router.put(
    "/{ident}/maintenance",
    status_code=202,
    responses=errors(404),
    openapi_extra=body_doc(bodies.Maintenance, required=False),
)
def set_maintenance(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: OptionalJsonBody
) -> Response:
    reason = None
    if body is not None:
        checked = bodies.check(bodies.Maintenance, body, "maintenance request")
        reason = jsontypes.text(checked, "reason")  # a string or null: Maintenance says so
    ctx.inventory.set_maintenance(who, ident, True, reason)
    return Response(status_code=202)


@router.delete("/{ident}/maintenance", status_code=202, responses=errors(404))
def unset_maintenance(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    ctx.inventory.set_maintenance(who, ident, False, None)
    return Response(status_code=202)


@router.get("/{ident}/states", responses=errors(404))
def node_states(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    return JSONResponse(ctx.inventory.get_node(who, ident, lambda n: views.node_states(n, version)))


@router.get("/{ident}/ports", responses=errors(404))
def node_ports(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    q: ListParams,
    sort_key: port_routes.SortKey = None,
) -> JSONResponse:
    return port_routes.list_response(
        request, ctx, who, version, (q, sort_key), PortFilters(node=ident), f"nodes/{ident}/ports"
    )


@router.get("/{ident}/portgroups", responses=errors(404))
def node_portgroups(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: portgroup_routes.GroupVersion,
    q: ListParams,
    sort_key: portgroup_routes.SortKey = None,
) -> JSONResponse:
    return portgroup_routes.list_response(
        request,
        ctx,
        who,
        version,
        (q, sort_key),
        PortGroupFilters(node=ident),
        f"nodes/{ident}/portgroups",
    )
