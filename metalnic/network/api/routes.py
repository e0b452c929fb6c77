"""Routes of the network API: discovery, networks, ports, security groups, agents."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from metalnic.httpjson import JSONResponse
from metalnic.network import access
from metalnic.network.api import views
from metalnic.network.api.deps import (
    PREFIX,
    Body,
    Caller,
    Context,
    IfRevision,
    base,
    filters,
    resource,
    select_fields,
)

router = APIRouter(prefix=PREFIX)

EXTENSIONS = (
    ("agent", "agent"),
    ("binding", "Port Binding"),
    ("binding-extended", "Port Bindings Extended"),
    ("provider", "Provider Network"),
    ("security-group", "security-group"),
    ("port-security", "Port Security"),
    ("standard-attr-revisions", "Resource revision numbers"),
    ("standard-attr-timestamp", "Resource timestamps"),
    ("project-id", "project_id field enabled"),
    ("network_availability_zone", "Network Availability Zone"),
)


@router.get("/")
@router.get("")
def versions(request: Request) -> JSONResponse:
    href = base(request) + "/v2.0/"
    return JSONResponse(
        {
            "versions": [
                {"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}
            ]
        }
    )


@router.get("/v2.0")
@router.get("/v2.0/")
def resources(request: Request) -> JSONResponse:
    b = base(request)
    return JSONResponse(
        {
            "resources": [
                {
                    "name": name,
                    "collection": coll,
                    "links": [{"href": f"{b}/v2.0/{coll}", "rel": "self"}],
                }
                for name, coll in (
                    ("network", "networks"),
                    ("port", "ports"),
                    ("security_group", "security-groups"),
                    ("security_group_rule", "security-group-rules"),
                    ("agent", "agents"),
                )
            ]
        }
    )


@router.get("/v2.0/extensions")
def extensions(who: Caller) -> JSONResponse:
    return JSONResponse(
        {
            "extensions": [
                {
                    "alias": alias,
                    "name": name,
                    "description": name,
                    "links": [],
                    "updated": "2026-11-25T00:00:00-00:00",
                }
                for alias, name in EXTENSIONS
            ]
        }
    )


# --- networks ---------------------------------------------------------------------------


@router.post("/v2.0/networks", status_code=201)
def create_network(ctx: Context, who: Caller, body: Body) -> JSONResponse:
    net = ctx.service.create_network(who, resource(body, "network"))
    return JSONResponse({"network": views.network(net)}, status_code=201)


@router.get("/v2.0/networks")
def list_networks(request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        nets = ctx.service.list_networks(who, s, filters(request))
        return JSONResponse({"networks": [select_fields(request, views.network(n)) for n in nets]})


@router.get("/v2.0/networks/{net_id}")
def show_network(net_id: str, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        net = ctx.service.get_network(who, net_id, s)
        return JSONResponse({"network": select_fields(request, views.network(net))})


@router.put("/v2.0/networks/{net_id}")
def update_network(
    net_id: str, ctx: Context, who: Caller, body: Body, revision: IfRevision
) -> JSONResponse:
    net = ctx.service.update_network(who, net_id, resource(body, "network"), revision)
    return JSONResponse({"network": views.network(net)})


@router.delete("/v2.0/networks/{net_id}", status_code=204)
def delete_network(net_id: str, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.delete_network(who, net_id, revision)
    return Response(status_code=204)


# --- ports ------------------------------------------------------------------------------


@router.post("/v2.0/ports", status_code=201)
def create_port(ctx: Context, who: Caller, body: Body) -> JSONResponse:
    port = ctx.service.create_port(who, resource(body, "port"))
    return JSONResponse({"port": views.port(port)}, status_code=201)


@router.get("/v2.0/ports")
def list_ports(request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        ports = ctx.service.list_ports(who, s, filters(request))
        return JSONResponse({"ports": [select_fields(request, views.port(p)) for p in ports]})


@router.get("/v2.0/ports/{port_id}")
def show_port(port_id: str, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        port = ctx.service.get_port(who, port_id, s)
        return JSONResponse({"port": select_fields(request, views.port(port))})


@router.put("/v2.0/ports/{port_id}")
def update_port(
    port_id: str, ctx: Context, who: Caller, body: Body, revision: IfRevision
) -> JSONResponse:
    port = ctx.service.update_port(who, port_id, resource(body, "port"), revision)
    return JSONResponse({"port": views.port(port)})


@router.delete("/v2.0/ports/{port_id}", status_code=204)
def delete_port(port_id: str, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.delete_port(who, port_id, revision)
    return Response(status_code=204)


# --- security groups ------------------------------------------------------------------------


@router.post("/v2.0/security-groups", status_code=201)
def create_security_group(ctx: Context, who: Caller, body: Body) -> JSONResponse:
    group = ctx.service.secgroups.create(who, resource(body, "security_group"))
    return JSONResponse({"security_group": views.security_group(group)}, status_code=201)


@router.get("/v2.0/security-groups")
def list_security_groups(request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        groups = ctx.service.secgroups.list(who, s, filters(request))
        return JSONResponse(
            {"security_groups": [select_fields(request, views.security_group(g)) for g in groups]}
        )


@router.get("/v2.0/security-groups/{gid}")
def show_security_group(gid: str, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        group = ctx.service.secgroups.get(who, s, gid)
        return JSONResponse({"security_group": select_fields(request, views.security_group(group))})


@router.put("/v2.0/security-groups/{gid}")
def update_security_group(
    gid: str, ctx: Context, who: Caller, body: Body, revision: IfRevision
) -> JSONResponse:
    group = ctx.service.secgroups.update(who, gid, resource(body, "security_group"), revision)
    return JSONResponse({"security_group": views.security_group(group)})


@router.delete("/v2.0/security-groups/{gid}", status_code=204)
def delete_security_group(gid: str, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.secgroups.delete(who, gid, revision)
    return Response(status_code=204)


@router.post("/v2.0/security-group-rules", status_code=201)
def create_rule(ctx: Context, who: Caller, body: Body) -> JSONResponse:
    rule = ctx.service.secgroups.create_rule(who, resource(body, "security_group_rule"))
    return JSONResponse({"security_group_rule": views.rule(rule)}, status_code=201)


@router.get("/v2.0/security-group-rules")
def list_rules(request: Request, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        groups = ctx.service.secgroups.list(who, s, {})
        rules = [r for g in groups for r in g.rules]
        wanted = request.query_params.get("security_group_id")
        if wanted:
            rules = [r for r in rules if r.security_group_id == wanted]
        return JSONResponse(
            {"security_group_rules": [select_fields(request, views.rule(r)) for r in rules]}
        )


@router.get("/v2.0/security-group-rules/{rule_id}")
def show_rule(rule_id: str, ctx: Context, who: Caller) -> JSONResponse:
    with ctx.service.db.transaction() as s:
        rule = access.visible_rule(s, who, rule_id)
        return JSONResponse({"security_group_rule": views.rule(rule)})


@router.delete("/v2.0/security-group-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: str, ctx: Context, who: Caller) -> Response:
    ctx.service.secgroups.delete_rule(who, rule_id)
    return Response(status_code=204)
