"""JSON shapes of networks, subnets, ports, security groups and agents as Neutron renders them.

The services render here, inside the transaction that read the rows (so every
relationship a view shows is loaded), and hand the routes and the embedded
client these typed dicts; no row leaves the service.  Free-form values (a
port's ``binding:profile`` and ``binding:vif_details``, an agent's
``configurations``) are shown through ``metalnic.redact``: secret-named keys
read ``******`` at any depth.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypedDict

import orjson
from sqlalchemy import ColumnElement, Row, Text, cast, select

from metalnic import redact
from metalnic.contract.agent import FixedIpData
from metalnic.db.render import joined, json_list, utc_seconds
from metalnic.jsontypes import JSONObject
from metalnic.network import ipam
from metalnic.network.models import (
    AddressPairRecord,
    Agent,
    DhcpOptRecord,
    IPAllocation,
    Network,
    NetworkPort,
    PortTag,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    port_security_groups,
)

NetworkView = TypedDict(
    "NetworkView",
    {
        "id": str,
        "name": str,
        "description": str,
        "project_id": str,
        "tenant_id": str,
        "admin_state_up": bool,
        "status": str,
        "shared": bool,
        "subnets": list[str],
        "mtu": int,
        "router:external": bool,
        "provider:network_type": str,
        "provider:physical_network": str | None,
        "provider:segmentation_id": int | None,
        "port_security_enabled": bool,
        "availability_zones": list[str],
        "availability_zone_hints": list[str],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "tags": list[str],
        "revision_number": int,
        "created_at": str | None,
        "updated_at": str | None,
    },
)

PortView = TypedDict(
    "PortView",
    {
        "id": str,
        "name": str,
        "description": str,
        "network_id": str,
        "project_id": str,
        "tenant_id": str,
        "mac_address": str,
        "admin_state_up": bool,
        "status": str,
        "device_id": str,
        "device_owner": str,
        "fixed_ips": list[FixedIpData],
        "allowed_address_pairs": list[JSONObject],
        "extra_dhcp_opts": list[JSONObject],
        "security_groups": list[str],
        "binding:vnic_type": str,
        "binding:profile": JSONObject,
        "binding:host_id": str,
        "binding:vif_type": str,
        "binding:vif_details": JSONObject,
        "port_security_enabled": bool,
        "tags": list[str],
        "revision_number": int,
        "created_at": str | None,
        "updated_at": str | None,
    },
)


class SubnetView(TypedDict):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    network_id: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    allocation_pools: list[dict[str, str]]
    dns_nameservers: list[str]
    host_routes: list[dict[str, str]]
    enable_dhcp: bool
    ipv6_ra_mode: str | None
    ipv6_address_mode: str | None
    subnetpool_id: None
    segment_id: None
    service_types: list[str]
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None


class PortColumns(Protocol):
    """The columns every view of a port shows as they are stored."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def network_id(self) -> str: ...
    @property
    def project_id(self) -> str: ...
    @property
    def mac_address(self) -> str: ...
    @property
    def admin_state_up(self) -> bool: ...
    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def device_id(self) -> str: ...
    @property
    def device_owner(self) -> str: ...
    @property
    def vnic_type(self) -> str: ...
    @property
    def host_id(self) -> str: ...
    @property
    def vif_type(self) -> str: ...
    @property
    def port_security_enabled(self) -> bool: ...
    @property
    def revision_number(self) -> int: ...


class PortRecord(PortColumns, Protocol):
    """A ``NetworkPort``, as ``port`` reads it."""

    @property
    def allowed_address_pairs(self) -> list[AddressPairRecord]: ...
    @property
    def extra_dhcp_opts(self) -> list[DhcpOptRecord]: ...
    @property
    def tag_rows(self) -> Sequence[PortTag]: ...
    @property
    def profile(self) -> JSONObject: ...
    @property
    def vif_details(self) -> JSONObject: ...
    @property
    def created_at(self) -> dt.datetime | None: ...
    @property
    def updated_at(self) -> dt.datetime | None: ...
    @property
    def security_groups(self) -> Sequence[SecurityGroup]: ...
    @property
    def fixed_ips(self) -> Sequence[IPAllocation]: ...


class ListedPort(NamedTuple):
    """A row of ``LISTED_PORT``: JSON columns as their stored text, timestamps as shown.
    A tuple, not the database row: reading a row's attribute by name cost ~1 µs, and
    a list reads 25 of them per port."""

    id: str
    name: str
    description: str
    network_id: str
    project_id: str
    mac_address: str
    admin_state_up: bool
    status: str
    status_reason: str | None
    device_id: str
    device_owner: str
    vnic_type: str
    host_id: str
    profile: str | None
    vif_type: str
    vif_details: str
    port_security_enabled: bool
    revision_number: int
    created_at: str | None
    updated_at: str | None
    security_groups: str | None  # the group ids joined by ","
    allowed_address_pairs: str
    extra_dhcp_opts: str
    tags: str | None  # a JSON list (NULL or "[]" for none)
    fixed_ips: str | None  # "subnet_id address" pairs joined by ","


def _listed_column(name: str) -> ColumnElement[Any]:
    if name == "security_groups":
        link = port_security_groups.c
        ids = select(joined(link.security_group_id)).where(link.port_id == NetworkPort.id)
        return ids.scalar_subquery().label(name)
    if name == "tags":
        tags = select(json_list(PortTag.tag)).where(PortTag.resource_id == NetworkPort.id)
        return tags.scalar_subquery().label(name)
    if name == "fixed_ips":
        pair = IPAllocation.subnet_id + " " + IPAllocation.ip_address
        ips = select(joined(pair)).where(IPAllocation.port_id == NetworkPort.id)
        return ips.scalar_subquery().label(name)
    column = NetworkPort.__table__.c[name]
    if name in ("profile", "vif_details", "allowed_address_pairs", "extra_dhcp_opts"):
        return cast(column, Text).label(name)
    if name in ("created_at", "updated_at"):
        return utc_seconds(column).label(name)
    return column


# What a list reads per port, in ``ListedPort``'s order: the database renders the
# timestamps and hands over the JSON columns as stored text (``listed_ports``).
LISTED_PORT = [_listed_column(name) for name in ListedPort._fields]


class RuleView(TypedDict):
    id: str
    security_group_id: str
    project_id: str
    tenant_id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None
    remote_address_group_id: None
    normalized_cidr: str | None
    description: str
    revision_number: int
    tags: list[str]
    created_at: str | None
    updated_at: str | None


class SecurityGroupView(TypedDict):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    stateful: bool
    shared: bool
    security_group_rules: list[RuleView]
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None


class AgentView(TypedDict):
    id: str
    agent_type: str
    binary: str
    host: str
    topic: str
    admin_state_up: bool
    alive: bool
    availability_zone: None
    description: None
    resources_synced: None
    configurations: JSONObject
    created_at: str
    started_at: str
    heartbeat_timestamp: str


def stamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def network(n: Network, subnets: list[str] | None = None) -> NetworkView:
    """``subnets``: the ids of the network's subnets, oldest first."""
    return {
        "id": n.id,
        "name": n.name,
        "description": n.description,
        "project_id": n.project_id,
        "tenant_id": n.project_id,
        "admin_state_up": n.admin_state_up,
        "status": "ACTIVE",
        "shared": n.shared,
        "subnets": subnets or [],
        "mtu": n.mtu,
        "router:external": False,
        "provider:network_type": n.network_type,
        "provider:physical_network": n.physical_network,
        "provider:segmentation_id": n.segmentation_id,
        "port_security_enabled": n.port_security_enabled,
        "availability_zones": [],
        "availability_zone_hints": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "tags": sorted(t.tag for t in n.tag_rows),
        "revision_number": n.revision_number,
        "created_at": stamp(n.created_at),
        "updated_at": stamp(n.updated_at),
    }


def port(
    p: PortRecord, groups: list[str] | None = None, fixed_ips: list[FixedIpData] | None = None
) -> PortView:
    """``p`` is a port object (its groups and addresses read from its relationships
    unless given)."""
    return _port(
        p,
        groups if groups is not None else sorted(g.id for g in p.security_groups),
        fixed_ips if fixed_ips is not None else list(ipam.shown(p.fixed_ips)),
        redact.redact(p.profile) if p.profile else p.profile,
        _details(p.vif_details, p.status_reason),
        stamp(p.created_at),
        stamp(p.updated_at),
        _PortLists(
            # (None on a port not written yet: the column defaults apply at the INSERT)
            [{**a} for a in p.allowed_address_pairs or ()],
            [{**o} for o in p.extra_dhcp_opts or ()],
            sorted(t.tag for t in p.tag_rows),
        ),
    )


def listed_ports(rows: Sequence[Row[Any]]) -> list[PortView]:
    """The ports of a list: rows of ``LISTED_PORT``.  The same view as ``port``; the
    JSON columns arrive as text, are decoded here and walked for secrets only when a
    scan of all of their texts at once cannot rule them out (the walk was a third of
    a list's cost)."""
    ports = [ListedPort._make(r) for r in rows]
    texts = (t for p in ports for t in (p.profile or "", p.vif_details, p.status_reason or ""))
    clean = redact.json_is_clean("\n".join(texts))
    return [_listed(p, clean) for p in ports]


def _listed(p: ListedPort, clean: bool) -> PortView:
    groups = sorted(p.security_groups.split(",")) if p.security_groups else []
    ips = _listed_ips(p.fixed_ips) if p.fixed_ips else []
    profile: JSONObject = orjson.loads(p.profile) if p.profile else {}
    details: JSONObject = orjson.loads(p.vif_details)
    if not clean:
        profile = redact.redact(profile)
        details = _details(details, p.status_reason)
    elif p.status_reason:
        details = {**details, "reason": p.status_reason}
    lists = _PortLists(
        _json_list(p.allowed_address_pairs),
        _json_list(p.extra_dhcp_opts),
        sorted(orjson.loads(p.tags)) if p.tags and p.tags != "[]" else [],
    )
    return _port(p, groups, ips, profile, details, p.created_at, p.updated_at, lists)


def _json_list(text: str) -> list[JSONObject]:
    return [] if text == "[]" else list(orjson.loads(text))


class _PortLists(NamedTuple):
    """A port's lists of Neutron's extensions, as shown."""

    allowed_address_pairs: list[Any]
    extra_dhcp_opts: list[Any]
    tags: list[str]


def _listed_ips(joined_pairs: str) -> list[FixedIpData]:
    if "," not in joined_pairs:  # one address, the usual case: nothing to order
        subnet_id, _, ip = joined_pairs.partition(" ")
        return [{"subnet_id": subnet_id, "ip_address": ip}]
    pairs = (pair.split(" ", 1) for pair in joined_pairs.split(","))
    return list(ipam.shown(ipam.Address(sid, ip) for sid, ip in pairs))


def _details(vif_details: JSONObject, reason: str | None) -> JSONObject:
    shown: JSONObject = redact.redact({**vif_details, "reason": reason} if reason else vif_details)
    return shown


def _port(
    p: PortColumns,
    groups: list[str],
    fixed_ips: list[FixedIpData],
    profile: JSONObject,
    vif_details: JSONObject,
    created_at: str | None,
    updated_at: str | None,
    lists: _PortLists,
) -> PortView:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "network_id": p.network_id,
        "project_id": p.project_id,
        "tenant_id": p.project_id,
        "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up,
        "status": p.status,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": fixed_ips,
        "allowed_address_pairs": lists.allowed_address_pairs,
        "extra_dhcp_opts": lists.extra_dhcp_opts,
        "security_groups": groups,
        "binding:vnic_type": p.vnic_type,
        "binding:profile": profile,
        "binding:host_id": p.host_id,
        "binding:vif_type": p.vif_type,
        "binding:vif_details": vif_details,
        "port_security_enabled": p.port_security_enabled,
        "tags": lists.tags,
        "revision_number": p.revision_number,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def subnet(n: Subnet) -> SubnetView:
    return {
        "id": n.id,
        "name": n.name,
        "description": n.description,
        "project_id": n.project_id,
        "tenant_id": n.project_id,
        "network_id": n.network_id,
        "ip_version": n.ip_version,
        "cidr": n.cidr,
        "gateway_ip": n.gateway_ip,
        "allocation_pools": [dict(p) for p in n.allocation_pools],
        "dns_nameservers": list(n.dns_nameservers),
        "host_routes": [dict(r) for r in n.host_routes],
        "enable_dhcp": n.enable_dhcp,
        "ipv6_ra_mode": n.ipv6_ra_mode,
        "ipv6_address_mode": n.ipv6_address_mode,
        "subnetpool_id": None,
        "segment_id": None,
        "service_types": [],
        "tags": [],
        "revision_number": n.revision_number,
        "created_at": stamp(n.created_at),
        "updated_at": stamp(n.updated_at),
    }


def rule(r: SecurityGroupRule) -> RuleView:
    return {
        "id": r.id,
        "security_group_id": r.security_group_id,
        "project_id": r.project_id,
        "tenant_id": r.project_id,
        "direction": r.direction,
        "ethertype": r.ethertype,
        "protocol": r.protocol,
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix,
        "remote_group_id": r.remote_group_id,
        "remote_address_group_id": None,
        "normalized_cidr": r.remote_ip_prefix,
        "description": r.description,
        "revision_number": r.revision_number,
        "tags": [],
        "created_at": stamp(r.created_at),
        "updated_at": stamp(r.updated_at),
    }


def security_group(g: SecurityGroup) -> SecurityGroupView:
    return {
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "project_id": g.project_id,
        "tenant_id": g.project_id,
        "stateful": True,
        "shared": False,
        "security_group_rules": [rule(r) for r in g.rules],
        "tags": sorted(t.tag for t in g.tag_rows),
        "revision_number": g.revision_number,
        "created_at": stamp(g.created_at),
        "updated_at": stamp(g.updated_at),
    }


def agent(a: Agent, alive: bool) -> AgentView:
    def plain(value: dt.datetime) -> str:  # Neutron's agent timestamps have no T/Z
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "id": a.id,
        "agent_type": a.agent_type,
        "binary": a.binary,
        "host": a.host,
        "topic": "N/A",
        "admin_state_up": a.admin_state_up,
        "alive": alive,
        "availability_zone": None,
        "description": None,
        "resources_synced": None,
        "configurations": redact.redact(a.configurations),
        "created_at": plain(a.created_at),
        "started_at": plain(a.started_at),
        "heartbeat_timestamp": plain(a.heartbeat_timestamp),
    }
