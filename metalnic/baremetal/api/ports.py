"""Routes for /v1/ports: list, show, create, PATCH, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from metalnic.auth import Principal
from metalnic.baremetal import ports
from metalnic.baremetal.api import views
from metalnic.baremetal.api.deps import (
    ApiVersion,
    AppContext,
    Caller,
    Collection,
    Context,
    JsonBody,
    base_url,
)
from metalnic.baremetal.api.deps import list_response as deps_list
from metalnic.baremetal.fields import PORT_FIELDS, PORT_LIST_FIELDS, Version
from metalnic.errors import InvalidInput
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/ports")


PORTS = Collection(
    key="ports",
    fields=PORT_FIELDS,
    list_fields=PORT_LIST_FIELDS,
    sort_keys=ports.PORT_SORT_KEYS,
    query=ports.list_ports,
    view=views.port,
)


def list_response(
    request: Request,
    ctx: AppContext,
    who: Principal,
    version: Version,
    filters: ports.PortFilters,
    resource: str,
    detail: bool = False,
) -> JSONResponse:
    return deps_list(request, ctx, who, version, PORTS, filters, resource, detail)


def _filters(request: Request) -> ports.PortFilters:
    q = request.query_params
    return ports.PortFilters(
        node=q.get("node") or q.get("node_uuid"),
        address=q.get("address"),
        portgroup=q.get("portgroup"),
    )


@router.get("")
def list_ports(request: Request, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    return list_response(request, ctx, who, version, _filters(request), "ports")


@router.get("/detail")
def list_ports_detail(
    request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    return list_response(request, ctx, who, version, _filters(request), "ports/detail", True)


@router.post("", status_code=201)
def create_port(
    request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object describing a port.")
    base = base_url(request)
    with ctx.transaction() as s:
        port = ports.create(s, who, body, version)
        out = views.port(port, base, views.all_fields(PORT_FIELDS, version))
    return JSONResponse(out, status_code=201, headers={"Location": f"{base}/v1/ports/{port.uuid}"})


@router.get("/{uuid}")
def show_port(
    uuid: str, request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    fields = views.select_fields(
        PORT_FIELDS,
        request.query_params.get("fields"),
        version,
        views.all_fields(PORT_FIELDS, version),
    )
    with ctx.transaction() as s:
        return JSONResponse(views.port(ports.get(s, who, uuid), base_url(request), fields))


@router.patch("/{uuid}")
def patch_port(
    uuid: str, request: Request, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> JSONResponse:
    with ctx.transaction() as s:
        port = ports.patch(s, who, uuid, body, version)
        return JSONResponse(
            views.port(port, base_url(request), views.all_fields(PORT_FIELDS, version))
        )


@router.delete("/{uuid}", status_code=204)
def delete_port(uuid: str, ctx: Context, who: Caller, version: ApiVersion) -> Response:
    with ctx.transaction() as s:
        ports.delete(s, who, uuid)
    return Response(status_code=204)
