"""Which feeds a write to one port touches: the part of each desired document it makes.

A port appears in up to three kinds of feed (``network/agentfeed.py``,
``network/dhcpfeed.py``):

* its NIC host's, while it is bound there (``vif_type`` ovs): its MAC, state,
  binding profile, groups, status, ``fixed_ips`` and ``allowed_address_pairs``;
* the DHCP agent serving its network's: a host entry (MAC, addresses on the
  DHCP-enabled subnets, ``extra_dhcp_opts``) while it is administratively up;
  a DHCP port is instead the agent's own port there (and which agent that is);
* every NIC host with a port on the network, for a DHCP port: its MAC and
  addresses are those hosts' ``dhcp_servers`` (the only DHCP replies admitted).

A write reads a port's ``Parts`` before and after (``parts``) and bumps exactly the
feeds whose part changed (``bump_changed``): a missed bump leaves an agent on a stale
state until its next full pass, a needless one makes it program the same state again
(tests/integration/test_feed_revisions_table.py holds every mutation to that).
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic.contract import dhcp as dc
from metalnic.network import dhcpfeed, dhcpports, feed
from metalnic.network.models import IPAllocation, NetworkPort, Subnet


class Parts(NamedTuple):
    """What one port makes of each feed it appears in (None: it is in none of that kind)."""

    nic_host: str  # "" when no NIC host's feed lists it
    nic: tuple[object, ...] | None
    dhcp: tuple[object, ...] | None  # its host entry, or for a DHCP port (its agent, ...)
    server: tuple[object, ...] | None  # a DHCP port's (MAC, addresses): the dhcp_servers


NONE = Parts("", None, None, None)


def parts(s: Session, port: NetworkPort) -> Parts:
    """The port's parts as they stand in ``s`` (flushed first, so this transaction's
    writes count; addresses read from the table: the allocator writes them by Core)."""
    s.flush()
    held = s.execute(
        select(IPAllocation.subnet_id, IPAllocation.ip_address, Subnet.enable_dhcp)
        .join(Subnet, Subnet.id == IPAllocation.subnet_id)
        .where(IPAllocation.port_id == port.id)
        .order_by(IPAllocation.subnet_id, IPAllocation.ip_address)
    ).all()
    addresses = tuple((sid, ip) for sid, ip, _ in held)
    served = tuple((sid, ip) for sid, ip, dhcp in held if dhcp)
    if port.device_owner == dc.DHCP_OWNER:
        server = (port.mac_address, tuple(sorted(ip for _, ip in addresses)))
        return Parts("", None, (port.host_id, port.mac_address, served), server)
    bound = port.vif_type == "ovs" and bool(port.host_id)
    nic = (
        (
            port.mac_address,
            port.admin_state_up,
            port.device_id,
            port.network_id,
            repr(port.profile.get("local_link_information", [])),
            repr(port.profile.get("local_group_information")),
            port.port_security_enabled,
            tuple(sorted(g.id for g in port.security_groups)),
            port.status,
            addresses,
            repr(port.allowed_address_pairs),
        )
        if bound
        else None
    )
    dhcp = (port.mac_address, served, repr(port.extra_dhcp_opts)) if port.admin_state_up else None
    return Parts(port.host_id if bound else "", nic, dhcp, None)


def bump_changed(
    s: Session, network_id: str, before: Parts, after: Parts, done: set[str] | None = None
) -> set[str]:
    """Bump the feeds where ``before`` and ``after`` (one port's parts, or ``NONE`` for
    a port that was not there or is gone) differ, except those in ``done`` (bumped
    already by this write: one change, one new revision); returns the keys touched."""
    keys: set[str] = set()
    if before.nic != after.nic or before.nic_host != after.nic_host:
        keys |= {h for h in (before.nic_host, after.nic_host) if h}
    if before.dhcp != after.dhcp:
        keys |= dhcpfeed.serving_keys(s, [network_id])
        for part in (before, after):  # a DHCP port's own agents (it may have moved)
            if part.server is not None and part.dhcp is not None and part.dhcp[0]:
                keys.add(dc.feed_key(str(part.dhcp[0])))
    if before.server != after.server:
        keys |= dhcpports.nic_hosts(s, network_id)
    feed.bump_all(s, keys - (done or set()))
    return keys


def bound_host(port: NetworkPort) -> str:
    """The NIC host whose feed lists ``port`` ("" when none does)."""
    return port.host_id if port.vif_type == "ovs" and port.host_id else ""


def of_new(s: Session, port: NetworkPort) -> set[str]:
    """A new port (written in ``s``): bump the DHCP feeds it appears in (its NIC host's
    is its binding's, ``Ports._decide``).  A plain port is a host entry while it is up,
    whatever its addresses: no need to read them (one query less on a port create)."""
    if port.device_owner == dc.DHCP_OWNER:
        return bump_changed(s, port.network_id, NONE, parts(s, port))
    if not port.admin_state_up:
        return set()
    return dhcpfeed.bump_network(s, port.network_id)
