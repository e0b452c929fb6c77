"""Port groups: bonds of a node's ports, including bonds of smart NIC ports.

Upstream Ironic never lets a port group be a smart NIC link; here a group
whose members are smart NIC ports is one: the NIC bonds its members' ports
(``local_link_connection.port_id``) and one network port serves the bond.
That needs rules Ironic does not have, checked whenever membership, wiring
or the bond mode changes:

* members of one group are all smart NIC ports or none are;
* smart NIC members share one NIC host (one agent plugs the bond) and name
  distinct NIC ports;
* a smart NIC group's mode must be one Open vSwitch can bond with.

Changing a smart NIC group (members, address, mode) follows the port rules:
only while the node is in enroll, inspecting, manageable or maintenance, and
only by admins (smart NIC wiring is admin-only, ``policy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, joinedload

from metalnic import ids, jsonpatch
from metalnic.auth import Principal
from metalnic.baremetal import nodes, policy
from metalnic.baremetal.fields import PORTGROUP_FIELDS, Version
from metalnic.baremetal.listing import Page, paginate
from metalnic.baremetal.models import Node, Port, PortGroup
from metalnic.errors import Conflict, InvalidInput, NodeNotFound, PortGroupNotFound
from metalnic.jsontypes import JSONObject

PORTGROUP_SORT_KEYS = ("id", "uuid", "name", "address", "created_at")
DEFAULT_MODE = "active-backup"  # Ironic's default_portgroup_mode
# Linux bonding modes an Open vSwitch bond on the NIC can stand in for.
SMARTNIC_BOND_MODES = frozenset(
    {"active-backup", "802.3ad", "balance-xor", "balance-tlb", "balance-alb"}
)
# Fields whose change re-wires a smart NIC bond.
_BOND_FIELDS = ("address", "mode", "properties")


@dataclass(frozen=True)
class PortGroupFilters:
    node: str | None = None
    address: str | None = None


def find(session: Session, ident: str, for_update: bool = False) -> PortGroup:
    """By UUID or name, with its node loaded (RBAC and state rules need it)."""
    column = PortGroup.uuid if ids.is_uuid_like(ident) else PortGroup.name
    value = ident.lower() if column is PortGroup.uuid else ident
    # A group always has a node: an inner join (PostgreSQL refuses FOR UPDATE on the
    # nullable side of the outer join a plain joinedload makes).
    stmt = (
        select(PortGroup).where(column == value).options(joinedload(PortGroup.node, innerjoin=True))
    )
    if for_update:
        stmt = stmt.with_for_update()
    group = session.scalars(stmt).first()
    if group is None:
        raise PortGroupNotFound(ident)
    return group


def _check(who: Principal, group: PortGroup, write: bool = False) -> None:
    """RBAC follows the group's node; a hidden node hides its groups too."""
    try:
        policy.check_node(who, group.node.owner, group.node.uuid, write=write)
    except NodeNotFound:
        raise PortGroupNotFound(group.uuid) from None
    if write:
        policy.require_unlocked(group.node)


def get(session: Session, who: Principal, ident: str) -> PortGroup:
    group = find(session, ident)
    _check(who, group)
    return group


def list_portgroups(
    session: Session, who: Principal, filters: PortGroupFilters, page: Page
) -> Sequence[Row[Any]]:
    policy.require_reader(who)
    stmt = select(*PortGroup.__table__.c, Node.uuid.label("node_uuid")).join(PortGroup.node)
    scope = policy.owner_scope(who)
    if scope is not None:
        stmt = stmt.where(Node.owner == scope)
    if filters.node is not None:
        node = nodes.find(session, filters.node)
        policy.check_node(who, node.owner, filters.node)
        stmt = stmt.where(PortGroup.node_id == node.id)
    if filters.address is not None:
        stmt = stmt.where(PortGroup.address == ids.normalize_mac(filters.address))
    marker = get(session, who, page.marker) if page.marker else None
    return session.execute(paginate(stmt, PortGroup, page, marker)).all()


# --- the bond rules -------------------------------------------------------------------


def is_smartnic(group: PortGroup) -> bool:
    return any(p.is_smartnic for p in group.ports)


def check_member(group: PortGroup, port: Port) -> None:
    """Raise ``InvalidInput`` unless ``port`` (as it will be) may be a member of ``group``."""
    if group.node_id != port.node.id:
        raise InvalidInput(
            f"Port {port.uuid} and port group {group.uuid} belong to different nodes."
        )
    others = [p for p in group.ports if p.id != port.id]
    if any(p.is_smartnic != port.is_smartnic for p in others):
        raise InvalidInput(f"Port group {group.uuid} cannot mix smart NIC ports and other ports.")
    if not port.is_smartnic:
        return
    _check_smartnic_mode(group, group.mode)
    host = port.local_link_connection["hostname"]
    for other in others:
        if other.local_link_connection["hostname"] != host:
            raise InvalidInput(
                f"The smart NIC ports of port group {group.uuid} must share one NIC host: "
                f"port {port.uuid} is on {host}, port {other.uuid} on "
                f"{other.local_link_connection['hostname']}."
            )
        if other.local_link_connection["port_id"] == port.local_link_connection["port_id"]:
            raise InvalidInput(
                f"Ports {port.uuid} and {other.uuid} of port group {group.uuid} name the same "
                f"NIC port {port.local_link_connection['port_id']} on {host}."
            )


def _check_smartnic_mode(group: PortGroup, mode: str | None) -> None:
    if mode not in SMARTNIC_BOND_MODES:
        raise InvalidInput(
            f"Port group {group.uuid} bonds smart NIC ports, so its mode must be one of "
            f"{', '.join(sorted(SMARTNIC_BOND_MODES))}; it is {mode!r}."
        )


# --- create, change, delete -----------------------------------------------------------


def _address(session: Session, value: str | None, group_id: int | None) -> str | None:
    if value is None:
        return None
    address = ids.normalize_mac(value)
    clash = session.scalar(select(PortGroup.id).where(PortGroup.address == address))
    if clash is not None and clash != group_id:
        raise Conflict(f"A port group with MAC address {address} already exists.")
    return address


def _name(session: Session, value: str | None, group_id: int | None) -> str | None:
    if value is None:
        return None
    name = ids.validate_name(value)
    clash = session.scalar(select(PortGroup.id).where(PortGroup.name == name))
    if clash is not None and clash != group_id:
        raise Conflict(f"A port group named {name} already exists.")
    return name


def create(session: Session, who: Principal, payload: JSONObject, version: Version) -> PortGroup:
    policy.require_writer(who)
    nodes.check_payload_fields(PORTGROUP_FIELDS, set(payload), version, "port group", True)
    if "node_uuid" not in payload:
        raise InvalidInput("Mandatory field missing: node_uuid.")
    values = {k: PORTGROUP_FIELDS[k].coerce(k, v) for k, v in payload.items()}  # type: ignore[misc]
    node = policy.writable_node(session, who, values.pop("node_uuid"))
    uuid = ids.parse_uuid(values.pop("uuid"), "uuid") if "uuid" in values else ids.new_uuid()
    if session.scalar(select(PortGroup.id).where(PortGroup.uuid == uuid)) is not None:
        raise Conflict(f"A port group with UUID {uuid} already exists.")
    values["address"] = _address(session, values.get("address"), None)
    values["name"] = _name(session, values.get("name"), None)
    values["mode"] = values.get("mode") or DEFAULT_MODE
    group = PortGroup(uuid=uuid, node=node, **values)
    session.add(group)
    session.flush()
    return group


def editable_document(group: PortGroup, version: Version) -> JSONObject:
    doc: JSONObject = {"node_uuid": group.node.uuid}
    for name, f in PORTGROUP_FIELDS.items():
        if f.writable and f.since <= version and name not in doc and name != "uuid":
            doc[name] = getattr(group, name)
    return doc


def patch(session: Session, who: Principal, ident: str, ops: Any, version: Version) -> PortGroup:
    ops = jsonpatch.validate(ops)
    nodes.check_patch_paths(PORTGROUP_FIELDS, ops, version, "port group")
    group = find(session, ident, for_update=True)
    _check(who, group, write=True)
    before = editable_document(group, version)
    changes = nodes.changed_values(before, jsonpatch.apply(before, ops))
    if not changes:
        return group
    values = {k: PORTGROUP_FIELDS[k].coerce(k, v) for k, v in changes.items()}  # type: ignore[misc]
    if "node_uuid" in values:
        new_node = policy.writable_node(session, who, values.pop("node_uuid"))
        if group.ports:
            raise Conflict(
                f"Port group {group.uuid} still has ports; move or delete them before "
                "moving the group to another node."
            )
        group.node = new_node
    if "address" in values:
        values["address"] = _address(session, values["address"], group.id)
    if "name" in values:
        values["name"] = _name(session, values["name"], group.id)
    if "mode" in values:
        values["mode"] = values["mode"] or DEFAULT_MODE
    if is_smartnic(group):
        if any(k in values for k in _BOND_FIELDS):
            policy.require_smartnic_wiring_writer(who, f"the bond of port group {group.uuid}")
            nodes.require_wiring_state(group.node, f"The bond of smart NIC port group {group.uuid}")
        _check_smartnic_mode(group, values.get("mode", group.mode))
    for key, value in values.items():
        setattr(group, key, value)
    session.flush()
    return group


def delete(session: Session, who: Principal, ident: str) -> None:
    group = find(session, ident, for_update=True)
    _check(who, group, write=True)
    if group.ports:
        raise Conflict(
            f"Port group {group.uuid} still has ports "
            f"({', '.join(p.uuid for p in group.ports)}); remove them from it first."
        )
    session.delete(group)
