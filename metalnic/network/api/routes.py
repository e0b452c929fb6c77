"""Routes of the network API: discovery, networks, subnets, ports, security groups, agents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from metalnic.httpjson import JSONResponse
from metalnic.network import inputs
from metalnic.network.api import agents, grants, openapi, tags
from metalnic.network.api import replies as rp
from metalnic.network.api import schemas as sc
from metalnic.network.api.deps import (
    PREFIX,
    Caller,
    Context,
    IfRevision,
    PathId,
    base,
    body_of,
    select_fields,
    select_fields_of_all,
)
from metalnic.network.api.replies import answers

router = APIRouter(prefix=PREFIX)

NetworkCreate = Annotated[inputs.NetworkCreate, Depends(body_of(inputs.NetworkCreate, "network"))]
NetworkUpdate = Annotated[inputs.NetworkUpdate, Depends(body_of(inputs.NetworkUpdate, "network"))]
SubnetCreate = Annotated[inputs.SubnetCreate, Depends(body_of(inputs.SubnetCreate, "subnet"))]
SubnetUpdate = Annotated[inputs.SubnetUpdate, Depends(body_of(inputs.SubnetUpdate, "subnet"))]
PortCreate = Annotated[inputs.PortCreate, Depends(body_of(inputs.PortCreate, "port"))]
PortUpdate = Annotated[inputs.PortUpdate, Depends(body_of(inputs.PortUpdate, "port"))]
SecurityGroupUpdate = Annotated[
    inputs.SecurityGroupUpdate, Depends(body_of(inputs.SecurityGroupUpdate, "security_group"))
]
GroupCreate = Annotated[
    inputs.SecurityGroupCreate, Depends(body_of(inputs.SecurityGroupCreate, "security_group"))
]
RuleCreate = Annotated[
    inputs.SecurityGroupRuleCreate,
    Depends(body_of(inputs.SecurityGroupRuleCreate, "security_group_rule")),
]
NetworkFilters = Annotated[sc.NetworkQuery, Query()]
PortFilters = Annotated[sc.PortQuery, Query()]
SubnetFilters = Annotated[sc.SubnetQuery, Query()]
GroupFilters = Annotated[sc.SecurityGroupQuery, Query()]
RuleFilters = Annotated[sc.SecurityGroupRuleQuery, Query()]
# Status codes per kind of route (every error in Neutron's body).
READ = answers(400, 401, 403)
SHOW = answers(400, 401, 403, 404)
CREATE = answers(400, 401, 403, 404, 409, 413)  # a port: its network, groups, MAC
UPDATE = answers(400, 401, 403, 404, 409, 412, 413)  # 412: If-Match revision_number
DELETE = answers(400, 401, 403, 404, 409, 412)

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
    ("standard-attr-tag", "Tag support for resources with standard attribute"),
    ("tag", "Tag support"),
    ("tag-ext", "Tag support for resources: subnet, subnetpool, port, router"),
    ("tag-ports-during-bulk-creation", "Tag Ports During Bulk Creation"),
    ("tag-creation", "Tag creation extension"),
    ("ip-substring-filtering", "IP address substring filtering"),
    ("allowed-address-pairs", "Allowed Address Pairs"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options"),
    # Subnets, their IPv6 modes and fixed IPs are Neutron's core API (no alias of their
    # own); the description of every resource, subnets included, is this extension's.
    ("standard-attr-description", "standard-attr-description"),
)


@router.get("/", response_model=rp.Versions)
@router.get("", response_model=rp.Versions)
def versions(request: Request) -> JSONResponse:
    href = base(request) + "/v2.0/"
    return JSONResponse(
        {
            "versions": [
                {"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}
            ]
        }
    )


@router.get("/v2.0", response_model=rp.Resources)
@router.get("/v2.0/", response_model=rp.Resources)
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
                    ("subnet", "subnets"),
                    ("port", "ports"),
                    ("security_group", "security-groups"),
                    ("security_group_rule", "security-group-rules"),
                    ("agent", "agents"),
                )
            ]
        }
    )


@router.get("/v2.0/openapi.json", response_model=dict[str, Any])
def openapi_document(request: Request) -> JSONResponse:
    """This API's OpenAPI document (see network/api/openapi.py)."""
    return JSONResponse(
        openapi.document(request.app, (router, agents.router, grants.router, tags.router))
    )


@router.get("/v2.0/extensions", response_model=rp.Extensions, responses=answers(401))
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


@router.post(
    "/v2.0/networks",
    status_code=201,
    response_model=rp.NetworkReply,
    responses=answers(400, 401, 403, 409, 413),  # 409: VLAN taken or none left
)
def create_network(ctx: Context, who: Caller, body: NetworkCreate) -> JSONResponse:
    net = ctx.service.networks.create(who, body)
    return JSONResponse({"network": net}, status_code=201)


@router.get("/v2.0/networks", response_model=rp.NetworksReply, responses=READ)
def list_networks(
    request: Request, ctx: Context, who: Caller, query: NetworkFilters
) -> JSONResponse:
    nets = ctx.service.networks.list(who, query.filters())
    return JSONResponse({"networks": select_fields_of_all(request, nets)})


@router.get("/v2.0/networks/{net_id}", response_model=rp.NetworkReply, responses=SHOW)
def show_network(net_id: PathId, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    net = ctx.service.networks.show(who, net_id)
    return JSONResponse({"network": select_fields(request, net)})


@router.put("/v2.0/networks/{net_id}", response_model=rp.NetworkReply, responses=UPDATE)
def update_network(
    net_id: PathId, ctx: Context, who: Caller, body: NetworkUpdate, revision: IfRevision
) -> JSONResponse:
    net = ctx.service.networks.update(who, net_id, body, revision)
    return JSONResponse({"network": net})


@router.delete("/v2.0/networks/{net_id}", status_code=204, responses=DELETE)
def delete_network(net_id: PathId, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.networks.delete(who, net_id, revision)
    return Response(status_code=204)


# --- subnets ----------------------------------------------------------------------------


@router.post("/v2.0/subnets", status_code=201, response_model=rp.SubnetReply, responses=CREATE)
def create_subnet(ctx: Context, who: Caller, body: SubnetCreate) -> JSONResponse:
    subnet = ctx.service.subnets.create(who, body)
    return JSONResponse({"subnet": subnet}, status_code=201)


@router.get("/v2.0/subnets", response_model=rp.SubnetsReply, responses=READ)
def list_subnets(request: Request, ctx: Context, who: Caller, query: SubnetFilters) -> JSONResponse:
    subnets = ctx.service.subnets.list(who, query.filters())
    return JSONResponse({"subnets": select_fields_of_all(request, subnets)})


@router.get("/v2.0/subnets/{subnet_id}", response_model=rp.SubnetReply, responses=SHOW)
def show_subnet(subnet_id: PathId, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    subnet = ctx.service.subnets.show(who, subnet_id)
    return JSONResponse({"subnet": select_fields(request, subnet)})


@router.put("/v2.0/subnets/{subnet_id}", response_model=rp.SubnetReply, responses=UPDATE)
def update_subnet(
    subnet_id: PathId, ctx: Context, who: Caller, body: SubnetUpdate, revision: IfRevision
) -> JSONResponse:
    subnet = ctx.service.subnets.update(who, subnet_id, body, revision)
    return JSONResponse({"subnet": subnet})


@router.delete("/v2.0/subnets/{subnet_id}", status_code=204, responses=DELETE)
def delete_subnet(subnet_id: PathId, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.subnets.delete(who, subnet_id, revision)
    return Response(status_code=204)


# --- ports ------------------------------------------------------------------------------


@router.post("/v2.0/ports", status_code=201, response_model=rp.PortReply, responses=CREATE)
def create_port(ctx: Context, who: Caller, body: PortCreate) -> JSONResponse:
    port = ctx.service.ports.create(who, body)
    return JSONResponse({"port": port}, status_code=201)


@router.get("/v2.0/ports", response_model=rp.PortsReply, responses=READ)
def list_ports(request: Request, ctx: Context, who: Caller, query: PortFilters) -> JSONResponse:
    ports = ctx.service.ports.list(who, query.filters(), query.fixed_ip_filters())
    return JSONResponse({"ports": select_fields_of_all(request, ports)})


@router.get("/v2.0/ports/{port_id}", response_model=rp.PortReply, responses=SHOW)
def show_port(port_id: PathId, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    port = ctx.service.ports.show(who, port_id)
    return JSONResponse({"port": select_fields(request, port)})


@router.put("/v2.0/ports/{port_id}", response_model=rp.PortReply, responses=UPDATE)
def update_port(
    port_id: PathId, ctx: Context, who: Caller, body: PortUpdate, revision: IfRevision
) -> JSONResponse:
    port = ctx.service.ports.update(who, port_id, body, revision)
    return JSONResponse({"port": port})


@router.delete("/v2.0/ports/{port_id}", status_code=204, responses=DELETE)
def delete_port(port_id: PathId, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.ports.delete(who, port_id, revision)
    return Response(status_code=204)


# --- security groups ------------------------------------------------------------------------


@router.post(
    "/v2.0/security-groups",
    status_code=201,
    response_model=rp.SecurityGroupReply,
    responses=answers(400, 401, 403, 413),
)
def create_security_group(ctx: Context, who: Caller, body: GroupCreate) -> JSONResponse:
    group = ctx.service.secgroups.create(who, body)
    return JSONResponse({"security_group": group}, status_code=201)


@router.get("/v2.0/security-groups", response_model=rp.SecurityGroupsReply, responses=READ)
def list_security_groups(
    request: Request, ctx: Context, who: Caller, query: GroupFilters
) -> JSONResponse:
    groups = ctx.service.secgroups.list(who, query.filters())
    return JSONResponse({"security_groups": select_fields_of_all(request, groups)})


@router.get("/v2.0/security-groups/{gid}", response_model=rp.SecurityGroupReply, responses=SHOW)
def show_security_group(gid: PathId, request: Request, ctx: Context, who: Caller) -> JSONResponse:
    group = ctx.service.secgroups.show(who, gid)
    return JSONResponse({"security_group": select_fields(request, group)})


@router.put("/v2.0/security-groups/{gid}", response_model=rp.SecurityGroupReply, responses=UPDATE)
def update_security_group(
    gid: PathId, ctx: Context, who: Caller, body: SecurityGroupUpdate, revision: IfRevision
) -> JSONResponse:
    group = ctx.service.secgroups.update(who, gid, body, revision)
    return JSONResponse({"security_group": group})


@router.delete("/v2.0/security-groups/{gid}", status_code=204, responses=DELETE)
def delete_security_group(gid: PathId, ctx: Context, who: Caller, revision: IfRevision) -> Response:
    ctx.service.secgroups.delete(who, gid, revision)
    return Response(status_code=204)


@router.post(
    "/v2.0/security-group-rules",
    status_code=201,
    response_model=rp.SecurityGroupRuleReply,
    responses=answers(400, 401, 403, 404, 413),
)
def create_rule(ctx: Context, who: Caller, body: RuleCreate) -> JSONResponse:
    rule = ctx.service.secgroups.create_rule(who, body)
    return JSONResponse({"security_group_rule": rule}, status_code=201)


@router.get("/v2.0/security-group-rules", response_model=rp.SecurityGroupRulesReply, responses=READ)
def list_rules(request: Request, ctx: Context, who: Caller, query: RuleFilters) -> JSONResponse:
    rules = ctx.service.secgroups.list_rules(who, query.security_group_id)
    return JSONResponse({"security_group_rules": select_fields_of_all(request, rules)})


@router.get(
    "/v2.0/security-group-rules/{rule_id}",
    response_model=rp.SecurityGroupRuleReply,
    responses=SHOW,
)
def show_rule(rule_id: PathId, ctx: Context, who: Caller) -> JSONResponse:
    return JSONResponse({"security_group_rule": ctx.service.secgroups.show_rule(who, rule_id)})


@router.delete("/v2.0/security-group-rules/{rule_id}", status_code=204, responses=SHOW)
def delete_rule(rule_id: PathId, ctx: Context, who: Caller) -> Response:
    ctx.service.secgroups.delete_rule(who, rule_id)
    return Response(status_code=204)
