"""The DHCP agents' feed: which networks a DHCP agent serves, and what dnsmasq must know.

A network is served by the DHCP agent whose host is the ``binding:host_id`` of
the network's DHCP port (``device_owner`` network:dhcp), as in Neutron.  The
desired state of a DHCP agent's host lists, per such network, its segment, its
DHCP-enabled subnets, the DHCP port (MAC, addresses) and one host entry per
other port of the network (MAC, fixed IPs, host name, ``extra_dhcp_opts``):
``metalnic/contract/dhcp.py``.

Revisions: one ``FeedRevision`` row per DHCP agent host, keyed
``dhcp:<host>`` (``contract.dhcp.feed_key``) so it never meets a NIC host's;
every write that changes what a DHCP agent must serve (a port of a served
network created, changed or deleted: ``network/portfeeds.py``; a DHCP port moved or
readdressed: ``network/dhcpports.py``; a served subnet's options or the network's
MTU changed) bumps it in the same transaction, and only such a write; the long
poll waits on it like the NIC agents' (``network/feed.py``).

Who may read it: an admin, or the user with role ``agent`` who registered the
DHCP agent of that host (``speaks_for``); anyone else 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.contract import dhcp as dc
from metalnic.db.session import Database
from metalnic.errors import Forbidden
from metalnic.network import feed
from metalnic.network.models import Agent, IPAllocation, Network, NetworkPort, Subnet


def serving_keys(s: Session, network_ids: Iterable[str]) -> set[str]:
    """The feed keys of the DHCP agents serving any of ``network_ids``."""
    wanted = set(network_ids)
    if not wanted:
        return set()
    hosts = s.scalars(
        select(NetworkPort.host_id).where(
            NetworkPort.network_id.in_(wanted),
            NetworkPort.device_owner == dc.DHCP_OWNER,
            NetworkPort.host_id != "",
        )
    )
    return {dc.feed_key(h) for h in hosts if h}


def bump_network(s: Session, *network_ids: str) -> set[str]:
    """Bump the feeds of the DHCP agents serving ``network_ids`` (flushed first, so a
    port written in this transaction is seen); returns their keys."""
    s.flush()
    keys = serving_keys(s, network_ids)
    feed.bump_all(s, keys)
    return keys


def speaks_for(s: Session, who: Principal, host: str) -> None:
    if who.is_admin:
        return
    if "agent" not in who.roles:
        raise Forbidden(f"User {who.name} is not an agent.")
    agent = s.scalars(
        select(Agent).where(Agent.agent_type == dc.DHCP_AGENT, Agent.host == host)
    ).first()
    if agent is None or agent.registered_by != who.name:
        raise Forbidden(f"User {who.name} runs no DHCP agent on host {host}.")


class DhcpFeed:
    def __init__(self, db: Database, notifier: feed.Notifier) -> None:
        self.db = db
        self.notifier = notifier

    def check_speaks_for(self, who: Principal, host: str) -> None:
        with self.db.transaction() as s:
            speaks_for(s, who, host)

    def revision(self, host: str) -> int:
        with self.db.transaction() as s:
            return feed.revisions(s, dc.feed_key(host))[0]

    async def wait_past(self, host: str, since: int, timeout: float) -> bool:
        return await self.notifier.wait_for_async(lambda: self.revision(host) > since, timeout)

    def desired(self, who: Principal, host: str) -> DesiredData:
        """The contract's ``DhcpDesiredState`` as plain data."""
        with self.db.transaction() as s:
            speaks_for(s, who, host)
            revision = feed.revisions(s, dc.feed_key(host))[0]
            dhcp_ports = s.scalars(
                select(NetworkPort)
                .where(NetworkPort.device_owner == dc.DHCP_OWNER, NetworkPort.host_id == host)
                .order_by(NetworkPort.network_id, NetworkPort.created_at, NetworkPort.id)
            ).all()
            # One per network (an admin could make a second one by hand): the oldest.
            first = {p.network_id: p for p in reversed(dhcp_ports)}
            networks = [_network(s, first[n]) for n in sorted(first)]
            return {"host": host, "revision": revision, "networks": networks}


# --- plain data of the contract's models (field for field; tests/unit/test_dhcp_render.py) ---


class FixedIpData(TypedDict):
    subnet_id: str
    ip_address: str


class DhcpOptionData(TypedDict):
    opt_name: str
    opt_value: str
    ip_version: int


class HostData(TypedDict):
    port_id: str
    mac_address: str
    fixed_ips: list[FixedIpData]
    hostname: str
    extra_dhcp_opts: list[DhcpOptionData]


class PortData(TypedDict):
    id: str
    mac_address: str
    fixed_ips: list[FixedIpData]


class SubnetData(TypedDict):
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    dns_nameservers: list[str]
    host_routes: list[dict[str, str]]
    ipv6_address_mode: str | None
    ipv6_ra_mode: str | None


class NetworkData(TypedDict):
    id: str
    network_type: str
    physical_network: str | None
    segmentation_id: int | None
    mtu: int
    subnets: list[SubnetData]
    port: PortData
    hosts: list[HostData]


class DesiredData(TypedDict):
    host: str
    revision: int
    networks: list[NetworkData]


def _network(s: Session, dhcp_port: NetworkPort) -> NetworkData:
    net = s.get_one(Network, dhcp_port.network_id)
    subnets = _dhcp_subnets(s, net.id)
    served = {sub["id"] for sub in subnets}
    others = s.scalars(
        select(NetworkPort)
        .where(NetworkPort.network_id == net.id, NetworkPort.device_owner != dc.DHCP_OWNER)
        .order_by(NetworkPort.id)
    ).all()
    addresses = _fixed_ips(s, [dhcp_port.id, *(p.id for p in others)], served)
    return {
        "id": net.id,
        "network_type": net.network_type,
        "physical_network": net.physical_network,
        "segmentation_id": net.segmentation_id,
        "mtu": net.mtu,
        "subnets": subnets,
        "port": {
            "id": dhcp_port.id,
            "mac_address": dhcp_port.mac_address,
            "fixed_ips": addresses.get(dhcp_port.id, []),
        },
        "hosts": [_host(p, addresses.get(p.id, [])) for p in others if p.admin_state_up],
    }


def _host(port: NetworkPort, fixed_ips: list[FixedIpData]) -> HostData:
    first = fixed_ips[0]["ip_address"] if fixed_ips else port.mac_address
    return {
        "port_id": port.id,
        "mac_address": port.mac_address,
        "fixed_ips": fixed_ips,
        # Neutron's default host name: host-<address with dashes>.
        "hostname": "host-" + first.replace(".", "-").replace(":", "-"),
        "extra_dhcp_opts": [
            {
                "opt_name": str(o["opt_name"]),
                "opt_value": str(o["opt_value"]),
                "ip_version": int(o.get("ip_version") or 4),
            }
            for o in port.extra_dhcp_opts
            if o.get("opt_value") is not None
        ],
    }


def _dhcp_subnets(s: Session, network_id: str) -> list[SubnetData]:
    """The network's DHCP-enabled subnets, oldest first."""
    found = s.scalars(
        select(Subnet)
        .where(Subnet.network_id == network_id, Subnet.enable_dhcp.is_(True))
        .order_by(Subnet.created_at, Subnet.id)
    )
    return [subnet_data(n) for n in found]


def subnet_data(n: Subnet) -> SubnetData:
    """A DHCP-enabled subnet as its DHCP agent is sent it."""
    return {
        "id": n.id,
        "cidr": n.cidr,
        "ip_version": n.ip_version,
        "gateway_ip": n.gateway_ip,
        "dns_nameservers": list(n.dns_nameservers),
        "host_routes": [dict(r) for r in n.host_routes],
        "ipv6_address_mode": n.ipv6_address_mode,
        "ipv6_ra_mode": n.ipv6_ra_mode,
    }


def _fixed_ips(
    s: Session, port_ids: list[str], subnet_ids: set[str]
) -> dict[str, list[FixedIpData]]:
    """The ports' addresses on ``subnet_ids``, by port (one query)."""
    out: dict[str, list[FixedIpData]] = {}
    if not port_ids or not subnet_ids:
        return out
    rows = s.execute(
        select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address)
        .where(IPAllocation.port_id.in_(port_ids), IPAllocation.subnet_id.in_(subnet_ids))
        .order_by(IPAllocation.port_id, IPAllocation.subnet_id)
    )
    for port_id, subnet_id, ip in rows:
        out.setdefault(port_id, []).append({"subnet_id": subnet_id, "ip_address": ip})
    return out
