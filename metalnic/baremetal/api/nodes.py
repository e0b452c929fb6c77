"""Routes for /v1/nodes: list, show, create, PATCH, delete, maintenance, states."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from metalnic.baremetal import nodes
from metalnic.baremetal.api import portgroups as portgroup_routes
from metalnic.baremetal.api import ports as port_routes
from metalnic.baremetal.api import views
from metalnic.baremetal.api.deps import (
    ApiVersion,
    Caller,
    Context,
    JsonBody,
    OptionalJsonBody,
    base_url,
    next_link,
    page_from_query,
    parse_bool_param,
)
from metalnic.baremetal.coerce import as_text
from metalnic.baremetal.fields import NODE_FIELDS, NODE_LIST_FIELDS
from metalnic.baremetal.portgroups import PortGroupFilters
from metalnic.baremetal.ports import PortFilters
from metalnic.errors import InvalidInput
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/nodes")


def _list(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, detail: bool
) -> JSONResponse:
    q = request.query_params
    detail = detail or bool(parse_bool_param("detail", q.get("detail")))
    if detail and q.get("fields"):
        raise InvalidInput("Can not specify ?detail=True and fields in the same request.")
    default = views.all_fields(NODE_FIELDS, version) if detail else NODE_LIST_FIELDS
    fields = views.select_fields(NODE_FIELDS, q.get("fields"), version, default)
    page = page_from_query(request, ctx.settings.max_page_size, nodes.NODE_SORT_KEYS)
    filters = nodes.NodeFilters(
        provision_state=q.get("provision_state"),
        owner=q.get("owner"),
        maintenance=parse_bool_param("maintenance", q.get("maintenance")),
        driver=q.get("driver"),
        associated=parse_bool_param("associated", q.get("associated")),
    )
    base = base_url(request)
    with ctx.transaction() as s:
        found = nodes.list_nodes(s, who, filters, page)
        body: dict[str, Any] = {"nodes": [views.node(n, base, fields) for n in found]}
    body.update(next_link(request, "nodes", found, page.limit))
    return JSONResponse(body)


@router.get("")
def list_nodes(request: Request, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    return _list(request, ctx, who, version, detail=False)


@router.get("/detail")
def list_nodes_detail(
    request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    return _list(request, ctx, who, version, detail=True)


@router.post("", status_code=201)
def create_node(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object describing a node.")
    base = base_url(request)
    with ctx.transaction() as s:
        node = nodes.create(s, who, ctx.registry, body, version)
        out = views.node(node, base, views.all_fields(NODE_FIELDS, version))
    return JSONResponse(out, status_code=201, headers={"Location": f"{base}/v1/nodes/{node.uuid}"})


@router.get("/{ident}")
def show_node(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    fields = views.select_fields(
        NODE_FIELDS,
        request.query_params.get("fields"),
        version,
        views.all_fields(NODE_FIELDS, version),
    )
    with ctx.transaction() as s:
        return JSONResponse(views.node(nodes.get(s, who, ident), base_url(request), fields))


@router.patch("/{ident}")
def patch_node(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    with ctx.transaction() as s:
        node = nodes.patch(s, who, ctx.registry, ident, body, version)
        return JSONResponse(
            views.node(node, base_url(request), views.all_fields(NODE_FIELDS, version))
        )


@router.delete("/{ident}", status_code=204)
def delete_node(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    with ctx.transaction() as s:
        nodes.delete(s, who, ident)
    return Response(status_code=204)


@router.put("/{ident}/maintenance", status_code=202)
def set_maintenance(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: OptionalJsonBody
) -> Response:
    reason = body.get("reason") if isinstance(body, dict) else None
    if body is not None and (not isinstance(body, dict) or set(body) - {"reason"}):
        raise InvalidInput('The body may only hold {"reason": "..."}.')
    with ctx.transaction() as s:
        nodes.set_maintenance(s, who, ident, True, as_text("reason", reason))
    return Response(status_code=202)


@router.delete("/{ident}/maintenance", status_code=202)
def unset_maintenance(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    with ctx.transaction() as s:
        nodes.set_maintenance(s, who, ident, False, None)
    return Response(status_code=202)


@router.get("/{ident}/states")
def node_states(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    with ctx.transaction() as s:
        return JSONResponse(views.node_states(nodes.get(s, who, ident), version))


@router.get("/{ident}/ports")
def node_ports(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    return port_routes.list_response(
        request, ctx, who, version, PortFilters(node=ident), f"nodes/{ident}/ports"
    )


@router.get("/{ident}/portgroups")
def node_portgroups(
    ident: str, request: Request, ctx: Context, who: Caller, version: portgroup_routes.GroupVersion
) -> JSONResponse:
    return portgroup_routes.list_response(
        request, ctx, who, version, PortGroupFilters(node=ident), f"nodes/{ident}/portgroups"
    )
