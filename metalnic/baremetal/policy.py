"""Who may do what to nodes and ports (RBAC): the one policy layer of /v1.

* admin — everything;
* member — read and write nodes owned by its project, and their ports;
  other nodes do not exist for it (404, as Ironic hides them);
* observer — read everything, write nothing;
* agent (a NIC agent's user) — nothing on /v1.

Every object a request names (``node_uuid``, ``portgroup_uuid``, a VIF) is
resolved by a function below, which answers one the caller may not use exactly
as one that does not exist.  Which roles may set a field, and in which
provision states it may change, is data in ``fields.py``, enforced by
``check_field_writers`` / ``check_field_states``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.baremetal.drivers.network.client import NetworkPort
from metalnic.baremetal.fields import ANYONE, Field
from metalnic.baremetal.models import Node, Port, PortGroup, VifClaim
from metalnic.errors import (
    Conflict,
    Forbidden,
    InvalidStateForChange,
    NodeLocked,
    NodeNotFound,
    NotFound,
    PortGroupNotFound,
)


def require_reader(who: Principal) -> None:
    if not who.roles & {"admin", "member", "observer"}:
        raise Forbidden(f"User {who.name} has no role that allows reading the bare-metal API.")
    if who.roles == {"member"} and not who.project:
        raise Forbidden(f"User {who.name} is a member of no project.")


def require_writer(who: Principal) -> None:
    require_reader(who)
    if not who.roles & {"admin", "member"}:
        raise Forbidden(f"User {who.name} may only read: the observer role cannot make changes.")


def owner_scope(who: Principal) -> str | None:
    """The owner a listing is restricted to, or None for all nodes."""
    if who.is_admin or "observer" in who.roles:
        return None
    return who.project or ""


def check_node(who: Principal, owner: str | None, ident: str, write: bool = False) -> None:
    """Raise unless ``who`` may see (and with ``write``, change) a node with ``owner``."""
    scope = owner_scope(who)
    if write:
        require_writer(who)
        if not who.is_admin and (not who.project or owner != who.project):
            if scope is None:  # it can see the node, just not change it
                raise Forbidden(f"User {who.name} may not change node {ident}.")
            raise NodeNotFound(ident)
        return
    require_reader(who)
    if scope is not None and owner != scope:
        raise NodeNotFound(ident)


def check_owner_change(who: Principal, new_owner: str | None) -> None:
    """Members may only create or keep nodes owned by their own project."""
    if who.is_admin:
        return
    if not who.project or new_owner != who.project:
        raise Forbidden(
            f"User {who.name} may only manage nodes owned by project {who.project}; "
            f"owner {new_owner!r} is not allowed."
        )


# --- who may change which field, in which state (the rules live in fields.py) -----------


def check_field_writers(who: Principal, table: dict[str, Field], keys: Iterable[str]) -> None:
    """Raise Forbidden when ``who`` may not set one of ``keys`` (fields.Field.writers)."""
    for key in sorted(keys):
        f = table.get(key)
        if f is not None and not who.roles & f.writers:
            raise Forbidden(
                f"User {who.name} may not set '/{key}': only "
                f"{' or '.join(sorted(f.writers))} users may (members can read it)."
            )


def check_field_states(
    who: Principal, table: dict[str, Field], keys: Iterable[str], node: Node, what: str
) -> None:
    """Raise InvalidStateForChange when the node's state forbids changing one of ``keys``."""
    for key in sorted(keys):
        f = table.get(key)
        if f is None or f.change_states is None or node.provision_state in f.change_states:
            continue
        if node.maintenance and who.roles & f.maintenance_lifts:
            continue
        anyone = f.maintenance_lifts == ANYONE
        lifted = " or in maintenance" if anyone else " (or, for an admin, in maintenance)"
        raise InvalidStateForChange(
            f"'/{key}' of {what} on node {node.uuid} can only change while the node is in "
            f"{', '.join(sorted(f.change_states))}{lifted}; it is in provision state "
            f"'{node.provision_state}'."
        )


# --- the objects a request names: resolved here, or answered as not found ------------------


def writable_node(session: Session, who: Principal, ident: Any) -> Node:
    """The node a port or port group names in ``node_uuid``, locked, writable by ``who``
    (a node it may not change is reported as not found, or Forbidden to an observer)."""
    require_writer(who)
    node_uuid = ids.parse_uuid(ident, "node_uuid")
    node = session.scalars(select(Node).where(Node.uuid == node_uuid).with_for_update()).first()
    if node is None:
        raise NodeNotFound(node_uuid)
    check_node(who, node.owner, node_uuid, write=True)
    require_unlocked(node)
    return node


def require_unlocked(node: Node) -> None:
    """Writes to a node, its ports and port groups wait while a flow holds the node
    (409 NodeLocked, as Ironic: its port updates take the node's lock too)."""
    if node.reservation:
        raise NodeLocked(node.uuid, node.reservation)


def usable_portgroup(session: Session, who: Principal, ident: Any) -> PortGroup:
    """The port group a port names in ``portgroup_uuid``: one ``who`` may change, else
    not found (whether it is the port's node's is checked by the bond rules)."""
    group_uuid = ids.parse_uuid(ident, "portgroup_uuid")
    stmt = select(PortGroup).where(PortGroup.uuid == group_uuid).with_for_update()
    group = session.scalars(stmt).first()
    if group is None:
        raise PortGroupNotFound(group_uuid)
    try:
        check_node(who, group.node.owner, group.node.uuid, write=True)
    except NodeNotFound:
        raise PortGroupNotFound(group_uuid) from None
    return group


def usable_vif(session: Session, node: Node, vif: str, port: NetworkPort | None) -> None:
    """May network port ``vif`` (as the network service shows it, None: absent) be
    attached to ``node``?  It must belong to the node owner's project (whoever asks;
    a node without owner takes any) — otherwise it does not exist — and must not be
    in use by another node or device (409)."""
    if port is None or (node.owner is not None and port.project_id != node.owner):
        raise NotFound(f"Port {vif} could not be found.")
    device = port.device_id
    if device and device != node.uuid:
        raise Conflict(f"Network port {vif} is in use by device {device}.")
    holder = session.execute(
        select(func.coalesce(Port.node_id, PortGroup.node_id))
        .select_from(VifClaim)
        .outerjoin(Port, VifClaim.port_id == Port.id)
        .outerjoin(PortGroup, VifClaim.portgroup_id == PortGroup.id)
        .where(VifClaim.vif_id == vif)
    ).scalar()
    if holder is not None and holder != node.id:
        # Which node is not said: it may be one the caller cannot see.
        raise Conflict(f"Network port {vif} is already attached to another node.")


def require_smartnic_wiring_writer(who: Principal, what: str) -> None:
    """Which node and bond a smart NIC link belongs to is wiring, like its
    ``local_link_connection``: "readable by observer, writable by admin"."""
    if not who.is_admin:
        raise Forbidden(f"User {who.name} may not change {what}: smart NIC wiring is admin-only.")


def explicitly_set(values: Mapping[str, object]) -> set[str]:
    """The fields of a create request given a value other than an empty default."""
    return {k for k, v in values.items() if v is not None and v is not False and v != {}}
