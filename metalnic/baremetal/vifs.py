"""VIFs: tenant network ports attached to a node, as Ironic's /v1/nodes/{id}/vifs.

Attaching records the network port on a free link of the node (on its
``internal_info.tenant_vif_port_id``): as Ironic does, port groups first, then
ports outside any group, smart NIC ones before the others.  The conductor's
tenant phase binds it to the NIC when the node is deployed and unbinds it on
undeploy.  On a deployed (``active``) node the conductor plugs or unplugs the
one VIF at once, under the node lock (``Conductor.attach_vif``); while a flow
is moving the node between networks VIFs cannot change.

A VIF must be a network port of the node owner's project (``policy.usable_vif``:
any other is reported as not found, to admins too) that no other node or
device uses (409).  The ``vif_claims`` table, keyed on the VIF id and written in
the attach transaction, makes that hold against racing attaches too: of two
concurrent attaches of one VIF (to two nodes, or twice to one) one wins and
the other is refused with 409.

A node whose network interface is ``noop`` (its networking is not managed) takes
any VIF id and records nothing, as Ironic's noop network interface: attach and
detach answer 204 after the node's own checks (rights, not busy), no network
port is looked up, and the list shows only VIFs recorded before the interface
became ``noop``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.baremetal import nodes, policy, states
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.drivers.network.client import NetworkClient, get_port
from metalnic.baremetal.models import VIF_KEY, Port, PortGroup, VifClaim
from metalnic.errors import Conflict, InvalidInput, InvalidStateForChange, NotFound

KEY = VIF_KEY
NOOP = "noop"


def _links(session: Session, node_id: int) -> list[Port | PortGroup]:
    """What can carry a VIF, in the order a free one is chosen."""
    groups = list(
        session.scalars(
            select(PortGroup).where(PortGroup.node_id == node_id).order_by(PortGroup.id)
        )
    )
    groups = [g for g in groups if g.ports]
    ports = list(
        session.scalars(
            select(Port)
            .where(Port.node_id == node_id, Port.portgroup_id.is_(None))
            .order_by(Port.id)
        )
    )
    smart: list[Port | PortGroup] = [g for g in groups if g.ports[0].is_smartnic]
    smart += [p for p in ports if p.is_smartnic]
    plain: list[Port | PortGroup] = [g for g in groups if not g.ports[0].is_smartnic]
    plain += [p for p in ports if not p.is_smartnic]
    return smart + plain


def list_vifs(session: Session, who: Principal, ident: str) -> list[dict[str, str]]:
    node = nodes.get(session, who, ident)
    return [
        {"id": str(link.internal_info[KEY])}
        for link in _links(session, node.id)
        if link.internal_info.get(KEY)
    ]


def _require_settled(node_state: str, uuid: str) -> None:
    if node_state in machine.ACTIVE_FLOW_STATES | machine.WAIT_STATES:
        raise InvalidStateForChange(
            f"VIFs of node {uuid} cannot change while it is busy; "
            f"it is in provision state '{node_state}'."
        )


def parse(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or set(body) - {"id"}:
        raise InvalidInput('Expected {"id": "<network port id>"}.')
    return str(body["id"])


def attach(
    session: Session, who: Principal, ident: str, vif: str, client: NetworkClient | None
) -> tuple[bool, str]:
    """Record ``vif`` on a free link; (whether the node is deployed, the link's uuid)."""
    node = nodes.find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    _require_settled(node.provision_state, node.uuid)
    if node.network_interface == NOOP:
        return False, ""  # accepted, nothing recorded (see the module docstring)
    policy.usable_vif(session, node, vif, get_port(client, vif) if client else None)
    links = _links(session, node.id)
    if any(link.internal_info.get(KEY) == vif for link in links):
        raise Conflict(f"VIF {vif} is already attached to node {node.uuid}.")
    free = [link for link in links if not link.internal_info.get(KEY)]
    if not free:
        raise Conflict(f"Node {node.uuid} has no free port or port group for VIF {vif}.")
    link = free[0]
    link.internal_info = {**link.internal_info, KEY: vif}
    _claim(session, vif, link, node.uuid)
    return node.provision_state == states.ACTIVE, link.uuid


def _claim(session: Session, vif: str, link: Port | PortGroup, node_uuid: str) -> None:
    """Insert the VIF's claim now: when a racing attach of the same VIF committed
    first, its key refuses this one (409) and nothing of this request is stored."""
    on_port = isinstance(link, Port)
    session.add(
        VifClaim(
            vif_id=vif,
            port_id=link.id if on_port else None,
            portgroup_id=None if on_port else link.id,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            f"Network port {vif} was attached to a node by a concurrent request; "
            f"it is not attached to node {node_uuid}."
        ) from None


def find(session: Session, who: Principal, ident: str, vif: str) -> tuple[bool, str]:
    """Where ``vif`` is recorded: (whether the node is deployed, the link's uuid)."""
    node = nodes.find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    _require_settled(node.provision_state, node.uuid)
    for link in _links(session, node.id):
        if link.internal_info.get(KEY) == vif:
            return node.provision_state == states.ACTIVE, link.uuid
    if node.network_interface == NOOP:
        return False, ""  # nothing was recorded to detach
    raise NotFound(f"VIF {vif} is not attached to node {node.uuid}.")


def forget(session: Session, node_uuid: str, vif: str) -> None:
    """Drop the record of ``vif`` (after an unplug, or when a hot plug failed)."""
    node = nodes.find(session, node_uuid, for_update=True)
    for link in _links(session, node.id):
        if link.internal_info.get(KEY) == vif:
            info = dict(link.internal_info)
            del info[KEY]
            link.internal_info = info
            on_port = isinstance(link, Port)
            held = VifClaim.port_id if on_port else VifClaim.portgroup_id
            session.execute(delete(VifClaim).where(VifClaim.vif_id == vif, held == link.id))
