"""Chassis, as Ironic's ``/v1/chassis``: an admin's grouping of nodes (a rack, an
enclosure), with a description and ``extra``.

Chassis are infrastructure (Ironic's system-scoped rules): admins create, change
and delete them; admins and observers read them; project members see neither
chassis nor their node listings (403).  A node names its chassis in
``chassis_uuid`` (admins set it; the chassis must exist).  A chassis that still
has nodes cannot be deleted (400, as Ironic's ChassisNotEmpty); the database's
key on ``nodes.chassis_uuid`` holds that against racing writers too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from metalnic import ids, jsonpatch
from metalnic.auth import Principal
from metalnic.baremetal import nodes, policy
from metalnic.baremetal.fields import CHASSIS_FIELDS, Version
from metalnic.baremetal.listing import Page, paginate
from metalnic.baremetal.models import Chassis, Node
from metalnic.errors import ChassisNotFound, Conflict, Forbidden, InvalidInput
from metalnic.jsontypes import JSONObject

CHASSIS_SORT_KEYS = ("id", "uuid", "description", "created_at")


def require_reader(who: Principal) -> None:
    policy.require_reader(who)
    if not (who.is_admin or "observer" in who.roles):
        raise Forbidden(f"User {who.name} may not see chassis: admins and observers only.")


def require_admin(who: Principal) -> None:
    policy.require_reader(who)
    if not who.is_admin:
        raise Forbidden(f"User {who.name} may not change chassis: admins only.")


def find(session: Session, ident: str, for_update: bool = False) -> Chassis:
    uuid = ident.lower() if ids.is_uuid_like(ident) else None
    stmt = select(Chassis).where(Chassis.uuid == uuid)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalars(stmt).first() if uuid else None
    if found is None:
        raise ChassisNotFound(ident)
    return found


def get(session: Session, who: Principal, ident: str) -> Chassis:
    require_reader(who)
    return find(session, ident)


def list_chassis(session: Session, who: Principal, page: Page) -> Sequence[Row[Any]]:
    require_reader(who)
    marker = find(session, page.marker) if page.marker else None
    stmt = select(*Chassis.__table__.c)
    return session.execute(paginate(stmt, Chassis, page, marker)).all()


def create(session: Session, who: Principal, payload: JSONObject, version: Version) -> Chassis:
    require_admin(who)
    nodes.check_payload_fields(CHASSIS_FIELDS, set(payload), version, "chassis", True)
    values = {k: CHASSIS_FIELDS[k].coerce(k, v) for k, v in payload.items()}  # type: ignore[misc]
    uuid = ids.parse_uuid(values.pop("uuid"), "uuid") if "uuid" in values else ids.new_uuid()
    if session.scalar(select(Chassis.id).where(Chassis.uuid == uuid)) is not None:
        raise Conflict(f"A chassis with UUID {uuid} already exists.")
    chassis = Chassis(uuid=uuid, description=values.get("description"))
    chassis.extra = values.get("extra") or {}
    session.add(chassis)
    session.flush()
    return chassis


def patch(session: Session, who: Principal, ident: str, ops: Any, version: Version) -> Chassis:
    require_admin(who)
    ops = jsonpatch.validate(ops)
    nodes.check_patch_paths(CHASSIS_FIELDS, ops, version, "chassis")
    chassis = find(session, ident, for_update=True)
    before: JSONObject = {"description": chassis.description, "extra": chassis.extra}
    changes = nodes.changed_values(before, jsonpatch.apply(before, ops))
    for key, value in changes.items():
        setattr(chassis, key, CHASSIS_FIELDS[key].coerce(key, value))  # type: ignore[misc]
    session.flush()
    return chassis


def delete(session: Session, who: Principal, ident: str) -> None:
    require_admin(who)
    chassis = find(session, ident, for_update=True)
    count = session.scalar(select(func.count(Node.id)).where(Node.chassis_uuid == chassis.uuid))
    if count:
        raise InvalidInput(
            f"Chassis {chassis.uuid} contains nodes ({count}); it cannot be deleted."
        )
    session.delete(chassis)
