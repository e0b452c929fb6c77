"""VIFs: tenant network ports attached to a node, as Ironic's /v1/nodes/{id}/vifs.

Attaching records the network port on a free smart NIC port of the node (on
``internal_info.tenant_vif_port_id``); the conductor's tenant phase binds it
to the NIC when the node is deployed and unbinds it on undeploy.  A VIF can
change only while it is not plugged (not while the node is active or busy).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.baremetal import nodes, policy, states
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.drivers.network.client import NetworkClient
from metalnic.baremetal.models import Port
from metalnic.errors import Conflict, InvalidInput, InvalidStateForChange, NotFound

KEY = "tenant_vif_port_id"


def _ports(session: Session, node_id: int) -> list[Port]:
    return list(session.scalars(select(Port).where(Port.node_id == node_id).order_by(Port.id)))


def list_vifs(session: Session, who: Principal, ident: str) -> list[dict[str, str]]:
    node = nodes.get(session, who, ident)
    return [
        {"id": p.internal_info[KEY]} for p in _ports(session, node.id) if p.internal_info.get(KEY)
    ]


def _require_unplugged(node_state: str, uuid: str) -> None:
    if (
        node_state == states.ACTIVE
        or node_state in machine.ACTIVE_FLOW_STATES | machine.WAIT_STATES
    ):
        raise InvalidStateForChange(
            f"VIFs of node {uuid} can change only while it is not deployed or busy; "
            f"it is in provision state '{node_state}'."
        )


def attach(
    session: Session, who: Principal, ident: str, body: Any, client: NetworkClient | None
) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or set(body) - {"id"}:
        raise InvalidInput('Expected {"id": "<network port id>"}.')
    vif = body["id"]
    node = nodes.find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    _require_unplugged(node.provision_state, node.uuid)
    if client is None or client.get_port(vif) is None:
        raise InvalidInput(f"Network port {vif} does not exist.")
    ports = _ports(session, node.id)
    if any(p.internal_info.get(KEY) == vif for p in ports):
        raise Conflict(f"VIF {vif} is already attached to node {node.uuid}.")
    free = [p for p in ports if p.is_smartnic and not p.internal_info.get(KEY)] or [
        p for p in ports if not p.internal_info.get(KEY)
    ]
    if not free:
        raise Conflict(f"Node {node.uuid} has no free port for VIF {vif}.")
    free[0].internal_info = {**free[0].internal_info, KEY: vif}


def detach(session: Session, who: Principal, ident: str, vif: str) -> None:
    node = nodes.find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    _require_unplugged(node.provision_state, node.uuid)
    for port in _ports(session, node.id):
        if port.internal_info.get(KEY) == vif:
            info = dict(port.internal_info)
            del info[KEY]
            port.internal_info = info
            return
    raise NotFound(f"VIF {vif} is not attached to node {node.uuid}.")
