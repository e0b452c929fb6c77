"""Each network's DHCP port: made with its first DHCP-enabled subnet, scheduled to a DHCP
agent, addressed on every DHCP subnet, removed with the last one (or the network).

As Neutron: the port has ``device_owner`` network:dhcp, one address from each
DHCP-enabled subnet of its network, and its ``binding:host_id`` is the host of
the DHCP agent that serves the network (``dhcp_agents_per_network`` = 1).  The
agent is the live one with the fewest networks (Neutron's default weighting);
with no live DHCP agent the port waits unscheduled (host "") and the next DHCP
agent to register takes it (``schedule_waiting``).  A dead agent keeps its
networks (no automatic failover; an admin moves a port by PUT of
``binding:host_id``).

Everything here runs in the caller's transaction and returns the feed keys it
bumped: the DHCP agents' (``dhcp:<host>``), and, when the DHCP port is made,
readdressed or removed, those of the NIC hosts with ports on the network, whose
desired ports list the network's DHCP servers (``dhcp_servers``: the only source
of DHCP replies the NIC admits).  Moving the port to another agent changes
neither its MAC nor its addresses: only the two agents' feeds are bumped.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.contract import dhcp as dc
from metalnic.db.base import utcnow
from metalnic.network import feed, ipam
from metalnic.network.models import Agent, IPAllocation, Network, NetworkPort, Subnet


def dhcp_port(s: Session, network_id: str) -> NetworkPort | None:
    return s.scalars(
        select(NetworkPort)
        .where(NetworkPort.network_id == network_id, NetworkPort.device_owner == dc.DHCP_OWNER)
        .order_by(NetworkPort.created_at, NetworkPort.id)
    ).first()


def sync(s: Session, who: Principal, network_id: str, down_time: float) -> set[str]:
    """Make the network's DHCP port what its subnets call for (flushes first).  The
    network's row is locked first: two subnets created at once on PostgreSQL would
    otherwise both see no DHCP port and make one each (SQLite has one writer anyway).
    ``FOR NO KEY UPDATE``: a plain ``FOR UPDATE`` would wait for the key-share locks
    the subnets' own foreign keys hold on the row, and two such requests deadlock."""
    s.flush()
    mine = select(Network.id).where(Network.id == network_id)
    s.execute(mine.with_for_update(key_share=True))  # PostgreSQL: FOR NO KEY UPDATE
    subnets = s.scalars(
        select(Subnet)
        .where(Subnet.network_id == network_id, Subnet.enable_dhcp.is_(True))
        .order_by(Subnet.created_at, Subnet.id)
    ).all()
    port = dhcp_port(s, network_id)
    if not subnets:
        if port is None:
            return set()
        keys = seeing_keys(s, network_id, port.host_id)
        s.delete(port)  # its addresses go with it (ON DELETE CASCADE)
        s.flush()
        feed.bump_all(s, keys)
        return keys
    if port is None:
        port = _new_port(s, s.get_one(Network, network_id), _pick_agent(s, down_time))
    held = {
        a.subnet_id: a
        for a in s.scalars(select(IPAllocation).where(IPAllocation.port_id == port.id))
    }
    wanted = {n.id for n in subnets}
    gone = [sid for sid in held if sid not in wanted]
    if gone:
        s.execute(
            delete(IPAllocation).where(
                IPAllocation.port_id == port.id, IPAllocation.subnet_id.in_(gone)
            )
        )
    missing = [n.id for n in subnets if n.id not in held]
    allocator = ipam.Allocator(s, who, port)
    for subnet_id in missing:  # one at a time: the port's other addresses stay
        allocator.add(subnet_id)
    if not (gone or missing):
        return set()
    port.revision_number += 1
    keys = seeing_keys(s, network_id, port.host_id)
    feed.bump_all(s, keys)
    return keys


def schedule_waiting(s: Session, agent: Agent) -> set[str]:
    """A DHCP agent (re)started: the DHCP ports no agent serves yet go to it."""
    waiting = s.scalars(
        select(NetworkPort).where(
            NetworkPort.device_owner == dc.DHCP_OWNER, NetworkPort.host_id == ""
        )
    ).all()
    # Only the agents' feeds name who serves a network (the NIC hosts' list the DHCP
    # port's MAC and addresses, unchanged by a move).
    keys = {dc.feed_key(agent.host)} if waiting else set()
    for port in waiting:
        port.host_id, port.status = agent.host, "ACTIVE"
        port.revision_number += 1
    s.flush()
    feed.bump_all(s, keys)
    return keys


def reschedule_from(s: Session, agent: Agent, down_time: float) -> set[str]:
    """A DHCP agent was deleted: each of its networks goes to the live DHCP agent with
    the fewest networks, or waits for the next to register."""
    ports = s.scalars(
        select(NetworkPort).where(
            NetworkPort.device_owner == dc.DHCP_OWNER, NetworkPort.host_id == agent.host
        )
    ).all()
    keys = {dc.feed_key(agent.host)} if ports else set()
    for port in ports:
        host = _pick_agent(s, down_time)
        port.host_id, port.status = host, "ACTIVE" if host else "DOWN"
        port.revision_number += 1
        s.flush()
        if host:  # the agents' feeds only, as in schedule_waiting
            keys.add(dc.feed_key(host))
    feed.bump_all(s, keys)
    return keys


def remove_for_network(s: Session, network_id: str) -> set[str]:
    """The network is being deleted: its DHCP port goes first (Neutron does the same)."""
    port = dhcp_port(s, network_id)
    if port is None:
        return set()
    keys = {dc.feed_key(port.host_id)} if port.host_id else set()
    s.delete(port)
    s.flush()
    feed.bump_all(s, keys)
    return keys


def servers(s: Session, network_ids: set[str]) -> dict[str, list[tuple[str, list[str]]]]:
    """Per network, its DHCP ports as (MAC, addresses): the NIC agents' ``dhcp_servers``."""
    out: dict[str, list[tuple[str, list[str]]]] = {}
    if not network_ids:
        return out
    ports = s.execute(
        select(NetworkPort.id, NetworkPort.network_id, NetworkPort.mac_address).where(
            NetworkPort.network_id.in_(network_ids), NetworkPort.device_owner == dc.DHCP_OWNER
        )
    ).all()
    addresses: dict[str, list[str]] = {}
    if ports:
        for port_id, ip in s.execute(
            select(IPAllocation.port_id, IPAllocation.ip_address).where(
                IPAllocation.port_id.in_([p.id for p in ports])
            )
        ):
            addresses.setdefault(port_id, []).append(ip)
    for p in ports:
        out.setdefault(p.network_id, []).append((p.mac_address, sorted(addresses.get(p.id, []))))
    return out


def seeing_keys(s: Session, network_id: str, dhcp_host: str) -> set[str]:
    """The feeds that see the DHCP port: its agent's and the NIC hosts on the network."""
    keys = nic_hosts(s, network_id)
    if dhcp_host:
        keys.add(dc.feed_key(dhcp_host))
    return keys


def nic_hosts(s: Session, network_id: str) -> set[str]:
    """The NIC hosts with a port bound on the network: their feeds list its DHCP ports
    (``dhcp_servers``)."""
    hosts = s.scalars(
        select(NetworkPort.host_id)
        .where(
            NetworkPort.network_id == network_id,
            NetworkPort.vif_type == "ovs",
            NetworkPort.host_id != "",
        )
        .distinct()
    )
    return {h for h in hosts if h}


def _pick_agent(s: Session, down_time: float) -> str:
    """The live DHCP agent serving the fewest networks ("" when none lives)."""
    cutoff = utcnow() - dt.timedelta(seconds=down_time)
    live = s.scalars(
        select(Agent.host)
        .where(
            Agent.agent_type == dc.DHCP_AGENT,
            Agent.admin_state_up.is_(True),
            Agent.heartbeat_timestamp > cutoff,
        )
        .order_by(Agent.host)
    ).all()
    if not live:
        return ""
    load = dict(
        s.execute(
            select(NetworkPort.host_id, func.count())
            .where(NetworkPort.device_owner == dc.DHCP_OWNER, NetworkPort.host_id.in_(live))
            .group_by(NetworkPort.host_id)
        ).all()
    )
    return min(live, key=lambda host: (load.get(host, 0), host))


def _new_port(s: Session, net: Network, host: str) -> NetworkPort:
    port = NetworkPort(
        id=ids.new_uuid(),
        name="",
        description="",
        network_id=net.id,
        project_id=net.project_id,
        mac_address="fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3)),
        admin_state_up=True,
        device_id=f"dhcp-{net.id}",
        device_owner=dc.DHCP_OWNER,
        vnic_type="normal",
        host_id=host,
        profile={},
        port_security_enabled=False,
        vif_type="unbound",
        vif_details={},
        status="ACTIVE" if host else "DOWN",
        status_reason=None,
        allowed_address_pairs=[],
        extra_dhcp_opts=[],
    )
    port.security_groups = []
    s.add(port)
    s.flush()
    return port
