"""What the network API answers, as models: the response schemas of its OpenAPI document.

The services render with ``network/views.py`` (typed dicts, fast); these models only
describe those dicts and Neutron's error body for the published document, and
the fuzz test checks every answer against them.  ``answers(...)`` is the
``responses=`` of a route: the error statuses it can return, each with
Neutron's error body.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

# Free-form JSON (a binding profile, an agent's configurations) and the items of a
# list answered with ``?fields=``: any JSON object.
JSONObject = dict[str, JsonValue]


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class NeutronErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    message: str
    detail: str


class NeutronError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    NeutronError: NeutronErrorDetail


_MEANING = {
    400: "Bad request: the body, a path or a query parameter is invalid",
    401: "No or wrong credentials",
    403: "The caller's role does not allow it",
    404: "Not found (or not visible to the caller)",
    409: "Conflict with the current state, or a concurrent write won the row",
    412: "If-Match revision_number does not match the resource's revision",
    413: "Request body larger than max_request_body_size",
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": NeutronError, "description": _MEANING[code]} for code in codes}


class Link(Reply):
    href: str
    rel: str


class Version(Reply):
    id: str
    status: str
    links: list[Link]


class Versions(Reply):
    versions: list[Version]


class Resource(Reply):
    name: str
    collection: str
    links: list[Link]


class Resources(Reply):
    resources: list[Resource]


class Extension(Reply):
    alias: str
    name: str
    description: str
    links: list[JsonValue]
    updated: str


class Extensions(Reply):
    extensions: list[Extension]


class Network(Reply):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    admin_state_up: bool
    status: str
    shared: bool
    subnets: list[str]
    mtu: int
    network_type: str = Field(alias="provider:network_type")
    physical_network: str | None = Field(alias="provider:physical_network")
    segmentation_id: int | None = Field(alias="provider:segmentation_id")
    port_security_enabled: bool
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None


class NetworkReply(Reply):
    network: Network


class NetworksReply(Reply):
    networks: list[JSONObject] = Field(description="networks, with only ?fields= if given")


class AddressPair(Reply):
    ip_address: str
    mac_address: str


class ExtraDhcpOpt(Reply):
    opt_name: str
    opt_value: str
    ip_version: Literal[4, 6]


class TagsReply(Reply):
    tags: list[str]


class AllocationPool(Reply):
    start: str
    end: str


class HostRoute(Reply):
    destination: str
    nexthop: str


class Subnet(Reply):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    network_id: str
    ip_version: Literal[4, 6]
    cidr: str
    gateway_ip: str | None
    allocation_pools: list[AllocationPool]
    dns_nameservers: list[str]
    host_routes: list[HostRoute]
    enable_dhcp: bool
    ipv6_ra_mode: Literal["slaac", "dhcpv6-stateful", "dhcpv6-stateless"] | None
    ipv6_address_mode: Literal["slaac", "dhcpv6-stateful", "dhcpv6-stateless"] | None
    revision_number: int
    created_at: str | None
    updated_at: str | None


class SubnetReply(Reply):
    subnet: Subnet


class SubnetsReply(Reply):
    subnets: list[JSONObject] = Field(description="subnets, with only ?fields= if given")


class FixedIp(Reply):
    subnet_id: str
    ip_address: str


class Port(Reply):
    id: str
    name: str
    description: str
    network_id: str
    project_id: str
    tenant_id: str
    mac_address: str
    admin_state_up: bool
    status: Literal["DOWN", "BUILD", "ACTIVE", "ERROR"]
    device_id: str
    device_owner: str
    fixed_ips: list[FixedIp]
    allowed_address_pairs: list[AddressPair]
    extra_dhcp_opts: list[ExtraDhcpOpt]
    security_groups: list[str]
    vnic_type: str = Field(alias="binding:vnic_type")
    profile: JSONObject = Field(alias="binding:profile")
    host_id: str = Field(alias="binding:host_id")
    vif_type: Literal["unbound", "ovs", "binding_failed"] = Field(alias="binding:vif_type")
    vif_details: JSONObject = Field(alias="binding:vif_details")
    port_security_enabled: bool
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None


class PortReply(Reply):
    port: Port


class PortsReply(Reply):
    ports: list[JSONObject] = Field(description="ports, with only ?fields= if given")


class SecurityGroupRule(Reply):
    id: str
    security_group_id: str
    project_id: str
    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"]
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None
    description: str
    revision_number: int


class SecurityGroupRuleReply(Reply):
    security_group_rule: SecurityGroupRule


class SecurityGroupRulesReply(Reply):
    security_group_rules: list[JSONObject]


class SecurityGroup(Reply):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    security_group_rules: list[SecurityGroupRule]
    tags: list[str]
    revision_number: int


class SecurityGroupReply(Reply):
    security_group: SecurityGroup


class SecurityGroupsReply(Reply):
    security_groups: list[JSONObject]


class Agent(Reply):
    id: str
    agent_type: str
    binary: str
    host: str
    admin_state_up: bool
    alive: bool
    configurations: JSONObject
    created_at: str
    started_at: str
    heartbeat_timestamp: str


class AgentReply(Reply):
    agent: Agent


class AgentsReply(Reply):
    agents: list[JSONObject]


class AgentGrant(Reply):
    user: str
    nic_hosts: list[str]


class AgentGrantReply(Reply):
    agent_grant: AgentGrant


class AgentGrantsReply(Reply):
    agent_grants: list[AgentGrant]
