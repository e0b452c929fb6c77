"""Bare-metal ports: a node's NICs, including the smart NIC ones.

A port's connectivity (``is_smartnic``, ``local_link_connection``,
``pxe_enabled``, ``physical_network``, ``portgroup_uuid``, and which node a
smart NIC port belongs to) changes only while nothing can be plugged: the node
in enroll, inspecting or manageable, or in maintenance; ``is_smartnic``,
``local_link_connection`` and a smart NIC port's node and group are set by
admins only.  Those rules are data in ``fields.py``, enforced by ``policy``.
The connection and the port group's bond rules are checked on create and on
every PATCH.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, joinedload

from metalnic import ids, jsonpatch
from metalnic.auth import Principal
from metalnic.baremetal import nodes, policy, portgroups, smartnic
from metalnic.baremetal.fields import PORT_FIELDS, Version
from metalnic.baremetal.listing import Page, paginate
from metalnic.baremetal.models import Node, Port, PortGroup
from metalnic.errors import Conflict, InvalidInput, MACAlreadyExists, NodeNotFound, PortNotFound
from metalnic.jsontypes import JSONObject

PORT_SORT_KEYS = ("id", "uuid", "address", "created_at")


@dataclass(frozen=True)
class PortFilters:
    node: str | None = None
    address: str | None = None
    portgroup: str | None = None


def find(session: Session, uuid: str, for_update: bool = False) -> Port:
    if not ids.is_uuid_like(uuid):
        raise InvalidInput(f"Expected a port UUID but received {uuid!r}.")
    # Every caller needs the node too (RBAC, node_uuid, state rules): one query.
    stmt = (
        select(Port).where(Port.uuid == uuid.lower()).options(joinedload(Port.node, innerjoin=True))
    )
    if for_update:
        stmt = stmt.with_for_update()
    port = session.scalars(stmt).first()
    if port is None:
        raise PortNotFound(uuid)
    return port


def _check(who: Principal, port: Port, write: bool = False) -> None:
    """RBAC follows the port's node; a hidden node hides its ports too."""
    try:
        policy.check_node(who, port.node.owner, port.node.uuid, write=write)
    except NodeNotFound:
        raise PortNotFound(port.uuid) from None
    if write:
        policy.require_unlocked(port.node)


def get(session: Session, who: Principal, uuid: str) -> Port:
    port = find(session, uuid)
    _check(who, port)
    return port


def list_ports(
    session: Session, who: Principal, filters: PortFilters, page: Page
) -> Sequence[Row[Any]]:
    """Rows with every port column plus ``node_uuid`` and ``portgroup_uuid``.

    Plain rows, not ORM objects: building 1000 mapped instances costs ten
    times more than the query, and a listing changes nothing.
    """
    policy.require_reader(who)
    stmt = (
        select(
            *Port.__table__.c,
            Node.uuid.label("node_uuid"),
            PortGroup.uuid.label("portgroup_uuid"),
        )
        .join(Port.node)
        .outerjoin(Port.portgroup)
    )
    scope = policy.owner_scope(who)
    if scope is not None:
        stmt = stmt.where(Node.owner == scope)
    if filters.node is not None:
        node = nodes.find(session, filters.node)
        policy.check_node(who, node.owner, filters.node)
        stmt = stmt.where(Port.node_id == node.id)
    if filters.portgroup is not None:
        group = portgroups.get(session, who, filters.portgroup)
        stmt = stmt.where(Port.portgroup_id == group.id)
    if filters.address is not None:
        stmt = stmt.where(Port.address == ids.normalize_mac(filters.address))
    marker = get(session, who, page.marker) if page.marker else None
    return session.execute(paginate(stmt, Port, page, marker)).all()


def _check_mac_free(session: Session, address: str, port_id: int | None) -> None:
    clash = session.scalar(select(Port.id).where(Port.address == address))
    if clash is not None and clash != port_id:
        raise MACAlreadyExists(address)


def create(session: Session, who: Principal, payload: JSONObject, version: Version) -> Port:
    policy.require_writer(who)
    nodes.check_payload_fields(PORT_FIELDS, set(payload), version, "port", creating=True)
    for required in ("address", "node_uuid"):
        if required not in payload:
            raise InvalidInput(f"Mandatory field missing: {required}.")
    values = {k: PORT_FIELDS[k].coerce(k, v) for k, v in payload.items()}  # type: ignore[misc]
    node = policy.writable_node(session, who, values.pop("node_uuid"))
    policy.check_field_writers(who, PORT_FIELDS, policy.explicitly_set(values))
    uuid = ids.parse_uuid(values.pop("uuid"), "uuid") if "uuid" in values else ids.new_uuid()
    if session.scalar(select(Port.id).where(Port.uuid == uuid)) is not None:
        raise Conflict(f"A port with UUID {uuid} already exists.")
    group = _group(session, who, values.pop("portgroup_uuid", None))
    values["address"] = ids.normalize_mac(values["address"])
    _check_mac_free(session, values["address"], None)
    is_smartnic = values.get("is_smartnic", False)
    values["local_link_connection"] = smartnic.validate(
        values.get("local_link_connection"), is_smartnic
    )
    if is_smartnic:
        nodes.require_wiring_state(node, "A smart NIC port")
    port = Port(uuid=uuid, node=node, **values)
    if group is not None:
        portgroups.check_member(group, port)
        port.portgroup = group
    session.add(port)
    session.flush()
    return port


def _group(session: Session, who: Principal, ident: str | None) -> PortGroup | None:
    return None if ident is None else policy.usable_portgroup(session, who, ident)


def editable_document(port: Port, version: Version) -> JSONObject:
    doc: JSONObject = {"node_uuid": port.node.uuid, "portgroup_uuid": port.portgroup_uuid}
    for name, f in PORT_FIELDS.items():
        if f.writable and f.since <= version and name not in doc and name != "uuid":
            doc[name] = getattr(port, name)
    return doc


def patch(session: Session, who: Principal, uuid: str, ops: Any, version: Version) -> Port:
    ops = jsonpatch.validate(ops)
    nodes.check_patch_paths(PORT_FIELDS, ops, version, "port")
    port = find(session, uuid, for_update=True)
    _check(who, port, write=True)
    before = editable_document(port, version)
    changes = nodes.changed_values(before, jsonpatch.apply(before, ops))
    if not changes:
        return port
    values = {k: PORT_FIELDS[k].coerce(k, v) for k, v in changes.items()}  # type: ignore[misc]
    policy.check_field_writers(who, PORT_FIELDS, values)
    smart = port.is_smartnic or values.get("is_smartnic", False)
    if smart and values.keys() & {"node_uuid", "portgroup_uuid"}:
        policy.require_smartnic_wiring_writer(who, f"the node or port group of port {port.uuid}")
    policy.check_field_states(who, PORT_FIELDS, values, port.node, f"port {port.uuid}")
    if "node_uuid" in values:
        new_node = policy.writable_node(session, who, values.pop("node_uuid"))
        if smart:
            nodes.require_wiring_state(port.node, f"The node of smart NIC port {port.uuid}")
            nodes.require_wiring_state(new_node, f"The node of smart NIC port {port.uuid}")
        port.node = new_node
        policy.check_field_states(who, PORT_FIELDS, values, new_node, f"port {port.uuid}")
    if "address" in values:
        values["address"] = ids.normalize_mac(values["address"])
        _check_mac_free(session, values["address"], port.id)
    is_smartnic = values.get("is_smartnic", port.is_smartnic)
    values["local_link_connection"] = smartnic.validate(
        values.get("local_link_connection", port.local_link_connection), is_smartnic
    )
    if "portgroup_uuid" in values:
        port.portgroup = _group(session, who, values.pop("portgroup_uuid"))
    for key, value in values.items():
        setattr(port, key, value)
    if port.portgroup is not None:
        portgroups.check_member(port.portgroup, port)
    session.flush()
    return port


def delete(session: Session, who: Principal, uuid: str) -> None:
    port = find(session, uuid, for_update=True)
    _check(who, port, write=True)
    if port.is_smartnic:
        nodes.require_wiring_state(port.node, f"Smart NIC port {port.uuid}")
    session.delete(port)
