"""Node inventory: create, find, list, change and delete nodes.

The functions here hold the rules (validation, RBAC, state restrictions) and
run inside a transaction the caller opened: ``inventory.Inventory`` for the
API (one per request), the conductor for its own work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from metalnic import ids, jsonpatch
from metalnic.auth import Principal
from metalnic.baremetal import policy, states
from metalnic.baremetal.conductor import history as node_history
from metalnic.baremetal.drivers.registry import INTERFACE_KINDS, HardwareType, Registry
from metalnic.baremetal.fields import NODE_FIELDS, Field, Version
from metalnic.baremetal.listing import Page, paginate
from metalnic.baremetal.models import Chassis, Node
from metalnic.errors import (
    ChassisNotFound,
    Conflict,
    DuplicateName,
    Forbidden,
    InvalidInput,
    InvalidStateForChange,
    NodeNotFound,
    NotAcceptable,
)
from metalnic.jsontypes import JSONObject

_CONDUCTOR_GROUP_RE = re.compile(r"[A-Za-z0-9_.\-]{0,255}")
_INTERFACE_FIELDS = tuple(f"{kind}_interface" for kind in INTERFACE_KINDS)
NODE_SORT_KEYS = ("id", "uuid", "name", "created_at", "provision_state", "driver")


@dataclass(frozen=True)
class NodeFilters:
    provision_state: str | None = None
    owner: str | None = None
    maintenance: bool | None = None
    driver: str | None = None
    associated: bool | None = None
    chassis_uuid: str | None = None


def check_payload_fields(
    table: dict[str, Field], keys: set[str], version: Version, what: str, creating: bool
) -> None:
    """Reject unknown, read-only and too-new fields, naming them."""
    for key in sorted(keys):
        f = table.get(key)
        if f is None:
            raise InvalidInput(f"Unknown attribute for {what}: {key}.")
        if f.since > version:
            raise NotAcceptable(
                f"The {what} field {key} needs API version {f.since[0]}.{f.since[1]} or newer; "
                f"the request used {version[0]}.{version[1]}."
            )
        if not f.writable or (creating and not f.on_create):
            raise InvalidInput(
                f"'/{key}' is an internal or read-only attribute and can not be set."
            )


def find(session: Session, ident: str, for_update: bool = False) -> Node:
    column = Node.uuid if ids.is_uuid_like(ident) else Node.name
    stmt = select(Node).where(column == (ident.lower() if column is Node.uuid else ident))
    if for_update:
        stmt = stmt.with_for_update()
    node = session.scalars(stmt).first()
    if node is None:
        raise NodeNotFound(ident)
    return node


def get(session: Session, who: Principal, ident: str) -> Node:
    node = find(session, ident)
    policy.check_node(who, node.owner, ident)
    return node


def list_nodes(
    session: Session, who: Principal, filters: NodeFilters, page: Page
) -> Sequence[Row[Any]]:
    """Rows with every node column (not ORM objects: see ports.list_ports)."""
    policy.require_reader(who)
    stmt = select(*Node.__table__.c)
    scope = policy.owner_scope(who)
    if scope is not None:
        stmt = stmt.where(Node.owner == scope)
    if filters.provision_state is not None:
        stmt = stmt.where(Node.provision_state == filters.provision_state)
    if filters.owner is not None:
        stmt = stmt.where(Node.owner == filters.owner)
    if filters.maintenance is not None:
        stmt = stmt.where(Node.maintenance == filters.maintenance)
    if filters.driver is not None:
        stmt = stmt.where(Node.driver == filters.driver)
    if filters.chassis_uuid is not None:
        chassis_uuid = _chassis_uuid(session, filters.chassis_uuid)
        if chassis_uuid is None:
            raise ChassisNotFound(filters.chassis_uuid)
        stmt = stmt.where(Node.chassis_uuid == chassis_uuid)
    if filters.associated is not None:
        cond = Node.instance_uuid.is_not(None)
        stmt = stmt.where(cond if filters.associated else ~cond)
    marker = get(session, who, page.marker) if page.marker else None
    return session.execute(paginate(stmt, Node, page, marker)).all()


def _hardware_type(registry: Registry, name: str) -> HardwareType:
    hw = registry.get(name)
    if hw is None:
        known = ", ".join(t.name for t in registry.all())
        raise InvalidInput(f"Driver {name!r} is not a known hardware type; known types: {known}.")
    return hw


def _apply_interfaces(node: Node, hw: HardwareType, explicit: dict[str, object]) -> None:
    for kind in INTERFACE_KINDS:
        field = f"{kind}_interface"
        supported = hw.interfaces[kind]
        value = explicit.get(field, getattr(node, field))
        if field not in explicit and value not in supported:
            value = None
        if value is None:
            value = hw.default(kind)
        if value not in supported:
            raise InvalidInput(
                f"Interface {value!r} is not supported as {field} by hardware type {hw.name}; "
                f"supported: {', '.join(supported)}."
            )
        setattr(node, field, value)


def _chassis_uuid(session: Session, value: str) -> str | None:
    """The (normalised) UUID of the chassis ``value`` names, None when there is none."""
    uuid = value.lower() if ids.is_uuid_like(value) else None
    return session.scalar(select(Chassis.uuid).where(Chassis.uuid == uuid)) if uuid else None


def _set_fields(
    session: Session, who: Principal, registry: Registry, node: Node, values: JSONObject
) -> None:
    """Coerce, validate and store ``values`` (field -> raw JSON) on ``node``."""
    coerced = {k: NODE_FIELDS[k].coerce(k, v) for k, v in values.items()}  # type: ignore[misc]
    if "name" in coerced and coerced["name"] is not None:
        name = ids.validate_name(coerced["name"])
        clash = session.scalar(select(Node.id).where(Node.name == name, Node.id != node.id))
        if clash is not None:
            raise DuplicateName(name)
    if coerced.get("instance_uuid") is not None:
        coerced["instance_uuid"] = ids.parse_uuid(coerced["instance_uuid"], "instance_uuid")
    if "owner" in coerced:
        policy.check_owner_change(who, coerced["owner"])
    if coerced.get("chassis_uuid") is not None:
        chassis_uuid = _chassis_uuid(session, coerced["chassis_uuid"])
        if chassis_uuid is None:  # bad input in a POST or PATCH (400), as in Ironic
            raise InvalidInput(ChassisNotFound(coerced["chassis_uuid"]).message)
        coerced["chassis_uuid"] = chassis_uuid
    group = coerced.get("conductor_group")
    if group is not None:
        if not _CONDUCTOR_GROUP_RE.fullmatch(group):
            raise InvalidInput(f"Invalid conductor_group {group!r}.")
        coerced["conductor_group"] = group.lower()
    if len(coerced.get("resource_class") or "") > 80:
        raise InvalidInput("resource_class is longer than 80 characters.")
    explicit = {k: coerced.pop(k) for k in _INTERFACE_FIELDS if k in coerced}
    for key, value in coerced.items():
        setattr(node, key, value)
    _apply_interfaces(node, _hardware_type(registry, node.driver), explicit)


def create(
    session: Session, who: Principal, registry: Registry, payload: JSONObject, version: Version
) -> Node:
    policy.require_writer(who)
    check_payload_fields(NODE_FIELDS, set(payload), version, "node", creating=True)
    if "driver" not in payload:
        raise InvalidInput("Mandatory field missing: driver.")
    uuid = ids.parse_uuid(payload["uuid"], "uuid") if "uuid" in payload else ids.new_uuid()
    if session.scalar(select(Node.id).where(Node.uuid == uuid)) is not None:
        raise Conflict(f"A node with UUID {uuid} already exists.")
    values = {k: v for k, v in payload.items() if k != "uuid"}
    policy.check_field_writers(who, NODE_FIELDS, policy.explicitly_set(values))
    if not who.is_admin:
        values.setdefault("owner", who.project)
    node = Node(
        uuid=uuid,
        provision_state=states.ENROLL if version >= (1, 11) else states.AVAILABLE,
        driver=payload["driver"],
    )
    _set_fields(session, who, registry, node, values)
    session.add(node)
    session.flush()
    return node


def editable_document(node: Node, version: Version) -> JSONObject:
    """The fields a PATCH may address (secrets unmasked: a ``test`` op sees them redacted)."""
    doc: JSONObject = {}
    for name, f in NODE_FIELDS.items():
        if f.writable and f.since <= version and name != "uuid":
            doc[name] = getattr(node, name)
    return doc


def check_patch_paths(
    table: dict[str, Field], patch: list[jsonpatch.PatchOp], version: Version, what: str
) -> None:
    for key in sorted(jsonpatch.top_level_fields(patch)):
        f = table.get(key)
        if f is None:
            raise InvalidInput(
                f"Adding a new attribute (/{key}) to the root of the {what} is not allowed."
            )
        if f.since > version:
            raise NotAcceptable(
                f"The {what} field {key} needs API version {f.since[0]}.{f.since[1]} or newer."
            )
        if not f.writable or key == "uuid":
            raise InvalidInput(f"'/{key}' is an internal attribute and can not be updated.")


def changed_values(before: JSONObject, after: JSONObject) -> JSONObject:
    """Fields whose value the patch changed; removed fields fall back to empty."""
    changes: JSONObject = {}
    for key, old in before.items():
        new = after.get(key, {} if isinstance(old, dict) else None)
        if new != old:
            changes[key] = new
    return changes


def patch(
    session: Session, who: Principal, registry: Registry, ident: str, ops: Any, version: Version
) -> Node:
    ops = jsonpatch.validate(ops)
    check_patch_paths(NODE_FIELDS, ops, version, "node")
    node = find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    policy.require_unlocked(node)
    before = editable_document(node, version)
    changes = changed_values(before, jsonpatch.apply(before, ops))
    policy.check_field_writers(who, NODE_FIELDS, changes)
    policy.check_field_states(who, NODE_FIELDS, changes, node, "the node")
    if "protected" in changes and not changes["protected"]:
        changes.setdefault("protected_reason", None)
    if changes:
        _set_fields(session, who, registry, node, changes)
        if node.protected_reason and not node.protected:
            raise InvalidInput("protected_reason can only be set on a protected node.")
        session.flush()
    return node


def require_wiring_state(node: Node, what: str) -> None:
    if node.maintenance or node.provision_state in states.WIRING_CHANGE_STATES:
        return
    allowed = ", ".join(sorted(states.WIRING_CHANGE_STATES))
    raise InvalidStateForChange(
        f"{what} of node {node.uuid} can only change while the node is in {allowed} "
        f"or in maintenance; it is in provision state '{node.provision_state}'."
    )


def delete(session: Session, who: Principal, ident: str) -> None:
    node = find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    policy.require_unlocked(node)
    if node.protected:
        raise Forbidden(f"Node {node.uuid} is protected and cannot be deleted.")
    if not node.maintenance and node.provision_state not in states.DELETE_STATES:
        allowed = ", ".join(sorted(states.DELETE_STATES))
        raise InvalidStateForChange(
            f"Can not delete node {node.uuid} in provision state '{node.provision_state}': "
            f"allowed in {allowed} or in maintenance."
        )
    session.delete(node)


def set_maintenance(
    session: Session, who: Principal, ident: str, on: bool, reason: str | None
) -> None:
    node = find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    node.maintenance = on
    node.maintenance_reason = reason if on else None
    if not on:
        node.fault = None


def history(
    session: Session, who: Principal, ident: str, limit: int, marker_id: int | None
) -> tuple[Node, Sequence[Row[Any]]]:
    """A node the caller may see and one page of its history events (plain rows, by id)."""
    node = get(session, who, ident)
    return node, node_history.for_node(session, node.id, limit, marker_id)
