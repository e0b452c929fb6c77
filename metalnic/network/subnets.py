"""Subnets: create, read, update and delete, with Neutron's rules between their values.

Each method runs its own transaction and raises ``metalnic.errors``; bodies
arrive as the request models of ``network/inputs.py`` (addresses and CIDRs
already parsed and normalized, host bits refused).  What is checked here is
what relates values to each other or to the database, in Neutron's order and
words: the CIDR against ``ip_version`` and the network's other subnets (several
subnets per network, never overlapping there; other networks and projects may
overlap freely), the IPv6 modes, the gateway and the allocation pools
(``network/ipam.py`` has the arithmetic), the limits on name servers and
routes.  Who may see or change a subnet is ``network/access.py``: a subnet's
network must be visible, and writable to create one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.contract.dhcp import DHCP_OWNER
from metalnic.db.session import Database
from metalnic.errors import (
    DNSNameServersExhausted,
    GatewayConflictWithAllocationPools,
    HostRoutesExhausted,
    InvalidOperation,
    SubnetInUse,
)
from metalnic.network import access, dhcpfeed, dhcpports, feed, ipam, tags, views
from metalnic.network.access import require_writer
from metalnic.network.inputs import SubnetCreate, SubnetUpdate
from metalnic.network.models import IPAllocation, NetworkPort, Subnet

# Neutron's defaults of max_dns_nameservers and max_subnet_host_routes.
MAX_DNS_NAMESERVERS = 5
MAX_HOST_ROUTES = 20
# Ports whose addresses a subnet's deletion takes with it (Neutron: the DHCP port's).
RELEASED_WITH_SUBNET = ("network:dhcp",)
# Router interfaces (``network:router_interface``, ``…_distributed``, ``…_gateway``)
# get no automatic IPv6 address on a new subnet (Neutron's rule).
ROUTER_OWNER_PREFIX = "network:router"


class Subnets:
    def __init__(
        self,
        db: Database,
        after_change: Callable[[set[str]], None],
        on_change: Callable[[Session, str], set[str]] = lambda s, network_id: set(),
    ) -> None:
        self.db = db
        self.after_change = after_change
        # A network's subnets changed (in the same transaction): its DHCP port follows
        # (``network/dhcpports.py``); returns the feeds it bumped.
        self.on_change = on_change

    def create(self, who: Principal, body: SubnetCreate) -> views.SubnetView:
        require_writer(who)
        given = body.model_fields_set
        net = ipam.network(body.cidr)
        _check_version(body.ip_version, body.cidr, "cidr")
        if net.prefixlen == 0:
            raise InvalidOperation("0 is not allowed as CIDR prefix length")
        _check_ipv6_modes(body, net)
        gateway = body.gateway_ip if "gateway_ip" in given else ipam.default_gateway(net)
        with self.db.transaction() as s:
            network = access.writable_network(s, who, body.network_id)
            self._check_no_overlap(s, network.id, body.cidr)
            subnet_id = ids.new_uuid()
            pools = (
                [p.model_dump() for p in body.allocation_pools]
                if "allocation_pools" in given
                else ipam.default_pools(net, gateway)
            )
            _check_addresses(subnet_id, net, gateway, pools, body)
            subnet = Subnet(
                id=subnet_id,
                name=body.name,
                description=body.description,
                project_id=access.owner_project(
                    who, body.project_id or body.tenant_id, default=network.project_id
                ),
                network_id=network.id,
                ip_version=body.ip_version,
                cidr=body.cidr,
                gateway_ip=gateway,
                enable_dhcp=body.enable_dhcp,
                ipv6_ra_mode=body.ipv6_ra_mode,
                ipv6_address_mode=body.ipv6_address_mode,
                allocation_pools=pools,
                dns_nameservers=list(body.dns_nameservers),
                host_routes=[r.model_dump() for r in body.host_routes],
                tag_rows=[],
            )
            s.add(subnet)
            s.flush()
            bumped = _auto_addresses_for_ports(s, subnet) if ipam.is_auto_address(subnet) else set()
            bumped |= self.on_change(s, network.id)
            view = views.subnet(subnet)
        self.after_change(bumped)
        return view

    @staticmethod
    def _check_no_overlap(s: Session, network_id: str, cidr: str) -> None:
        new = ipam.network(cidr)
        for other in s.scalars(select(Subnet.cidr).where(Subnet.network_id == network_id)):
            if ipam.network(other).version == new.version and ipam.network(other).overlaps(new):
                raise InvalidOperation(
                    f"Requested subnet with cidr: {cidr} for network: {network_id} overlaps "
                    "with another subnet"
                )

    def show(self, who: Principal, subnet_id: str) -> views.SubnetView:
        with self.db.transaction() as s:
            return views.subnet(access.visible_subnet(s, who, subnet_id))

    def list(self, who: Principal, filters: dict[str, str]) -> list[views.SubnetView]:
        stmt = select(Subnet).options(tags.loaded("subnets")).order_by(Subnet.created_at, Subnet.id)
        where = access.subnets_filter(who)
        if where is not None:
            stmt = stmt.where(where)
        for key, column in (
            ("id", Subnet.id),
            ("name", Subnet.name),
            ("network_id", Subnet.network_id),
            ("project_id", Subnet.project_id),
            ("tenant_id", Subnet.project_id),
            ("cidr", Subnet.cidr),
            ("gateway_ip", Subnet.gateway_ip),
            ("ipv6_ra_mode", Subnet.ipv6_ra_mode),
            ("ipv6_address_mode", Subnet.ipv6_address_mode),
        ):
            if key in filters:
                stmt = stmt.where(column == filters[key])
        if "ip_version" in filters:
            stmt = stmt.where(Subnet.ip_version == int(filters["ip_version"]))
        if "enable_dhcp" in filters:
            stmt = stmt.where(Subnet.enable_dhcp.is_(filters["enable_dhcp"].lower() == "true"))
        stmt = tags.filtered(stmt, filters, "subnets", Subnet.id)
        with self.db.transaction() as s:
            return [views.subnet(n) for n in s.scalars(stmt)]

    def update(
        self, who: Principal, subnet_id: str, body: SubnetUpdate, revision: int | None = None
    ) -> views.SubnetView:
        require_writer(who)
        given = body.model_fields_set
        with self.db.transaction() as s:
            subnet = access.writable_subnet(s, who, subnet_id)
            subnet.require_revision(revision)
            net = ipam.network(subnet.cidr)
            if (
                "enable_dhcp" in given
                and not body.enable_dhcp
                and (subnet.ipv6_ra_mode or subnet.ipv6_address_mode)
            ):
                raise InvalidOperation("Cannot disable enable_dhcp with ipv6 attributes set")
            gateway = body.gateway_ip if "gateway_ip" in given else subnet.gateway_ip
            pools = (
                [p.model_dump() for p in body.allocation_pools]
                if "allocation_pools" in given
                else subnet.allocation_pools
            )
            _check_addresses(subnet.id, net, gateway, pools, body)
            served = dhcpfeed.subnet_data(subnet) if subnet.enable_dhcp else None
            for key in ("name", "description", "enable_dhcp"):
                if key in given:
                    setattr(subnet, key, getattr(body, key))
            subnet.gateway_ip, subnet.allocation_pools = gateway, pools
            if "dns_nameservers" in given:
                subnet.dns_nameservers = list(body.dns_nameservers)
            if "host_routes" in given:
                subnet.host_routes = [r.model_dump() for r in body.host_routes]
            subnet.revision_number += 1
            s.flush()
            bumped = self.on_change(s, subnet.network_id)
            if served != (dhcpfeed.subnet_data(subnet) if subnet.enable_dhcp else None):
                # What its DHCP agent serves changed (gateway, name servers, routes;
                # switched on or off: the DHCP port's address, in ``on_change``).
                keys = dhcpfeed.serving_keys(s, [subnet.network_id]) - bumped
                feed.bump_all(s, keys)
                bumped |= keys
            view = views.subnet(subnet)
        self.after_change(bumped)
        return view

    def delete(self, who: Principal, subnet_id: str, revision: int | None = None) -> None:
        """Refused (SubnetInUse) while a port holds an address of it, except the DHCP
        port's and auto-addresses (IPv6 SLAAC), which go with it as in Neutron."""
        require_writer(who)
        with self.db.transaction() as s:
            subnet = access.writable_subnet(s, who, subnet_id)
            subnet.require_revision(revision)
            holders = s.execute(
                select(
                    NetworkPort.id,
                    NetworkPort.device_owner,
                    NetworkPort.host_id,
                    NetworkPort.vif_type,
                )
                .join(IPAllocation, IPAllocation.port_id == NetworkPort.id)
                .where(IPAllocation.subnet_id == subnet.id)
            ).all()
            auto = ipam.is_auto_address(subnet)
            if any(not auto and h.device_owner not in RELEASED_WITH_SUBNET for h in holders):
                raise SubnetInUse(subnet_id)
            s.execute(delete(IPAllocation).where(IPAllocation.subnet_id == subnet.id))
            if holders:  # those ports' addresses changed: a new revision, their feeds
                s.execute(
                    update(NetworkPort)
                    .where(NetworkPort.id.in_({h.id for h in holders}))
                    .values(revision_number=NetworkPort.revision_number + 1)
                    .execution_options(synchronize_session=False)
                )
            # Those ports' addresses changed: the NIC hosts they are bound to, and
            # (a DHCP subnet) its agent and, for the DHCP port's, every NIC host there.
            hosts = {h.host_id for h in holders if h.host_id and h.vif_type == "ovs"}
            network_id = subnet.network_id
            if subnet.enable_dhcp:
                hosts |= dhcpfeed.serving_keys(s, [network_id])
            if any(h.device_owner == DHCP_OWNER for h in holders):
                hosts |= dhcpports.nic_hosts(s, network_id)
            feed.bump_all(s, hosts)
            s.delete(subnet)
            hosts |= self.on_change(s, network_id) - hosts
        self.after_change(hosts)


def _auto_addresses_for_ports(s: Session, subnet: Subnet) -> set[str]:
    """A new SLAAC or DHCPv6-stateless subnet: every port already on the network gets
    its EUI-64 address on it, as in Neutron (the host's kernel makes that address from
    the router advert, and the NIC would drop it as spoofed otherwise).  Not router
    ports (Neutron's exception) nor the DHCP port (``dhcpports.sync`` gives it an
    address on each DHCP subnet).  The address of a MAC is unique on a network, and
    no one can hold one on a subnet made in this transaction: a plain INSERT.
    Returns the feeds bumped: the NIC hosts the ports are bound to, and (a DHCP
    subnet) its DHCP agent."""
    owner = NetworkPort.device_owner
    ports = s.execute(
        select(NetworkPort.id, NetworkPort.mac_address, NetworkPort.host_id, NetworkPort.vif_type)
        .where(
            NetworkPort.network_id == subnet.network_id,
            owner != DHCP_OWNER,
            ~owner.startswith(ROUTER_OWNER_PREFIX),
        )
        .order_by(NetworkPort.id)
    ).all()
    if not ports:
        return set()
    s.execute(
        insert(IPAllocation),
        [
            {
                "subnet_id": subnet.id,
                "ip_address": ipam.eui64(subnet.cidr, p.mac_address),
                "port_id": p.id,
                "network_id": subnet.network_id,
            }
            for p in ports
        ],
    )
    s.execute(
        update(NetworkPort)
        .where(NetworkPort.id.in_([p.id for p in ports]))
        .values(revision_number=NetworkPort.revision_number + 1)
        .execution_options(synchronize_session=False)
    )
    hosts = {p.host_id for p in ports if p.host_id and p.vif_type == "ovs"}
    if subnet.enable_dhcp:
        hosts |= dhcpfeed.serving_keys(s, [subnet.network_id])
    feed.bump_all(s, hosts)
    return hosts


def subnet_ids(s: Session, network_ids: Sequence[str]) -> dict[str, list[str]]:
    """The ids of each network's subnets, oldest first (one query for all of them)."""
    found: dict[str, list[str]] = {n: [] for n in network_ids}
    if network_ids:
        rows = s.execute(
            select(Subnet.network_id, Subnet.id)
            .where(Subnet.network_id.in_(list(network_ids)))
            .order_by(Subnet.created_at, Subnet.id)
        )
        for network_id, sid in rows:
            found[network_id].append(sid)
    return found


def _check_version(version: int, value: str, what: str) -> None:
    if ipaddress.ip_network(value, strict=False).version != version:
        raise InvalidOperation(f"{what} '{value}' does not match the ip_version '{version}'")


def _check_ipv6_modes(body: SubnetCreate, net: ipam.Net) -> None:
    ra, address = body.ipv6_ra_mode, body.ipv6_address_mode
    if body.ip_version == 4:
        if ra or address:
            raise InvalidOperation(
                "ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4"
            )
        return
    if (ra or address) and not body.enable_dhcp:
        raise InvalidOperation(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False."
        )
    if ra and address and ra != address:
        raise InvalidOperation(
            f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{address}' is not "
            "valid. If both attributes are set, they must be the same value"
        )
    auto = ipam.AUTO_ADDRESS_MODES
    if (ra in auto or address in auto) and net.prefixlen != 64:
        raise InvalidOperation(
            f"Invalid CIDR {net} for IPv6 address mode. OpenStack uses the EUI-64 address "
            "format, which requires the prefix to be /64."
        )


def _check_addresses(
    subnet_id: str,
    net: ipam.Net,
    gateway: str | None,
    pools: Sequence[dict[str, str]],
    body: SubnetCreate | SubnetUpdate,
) -> None:
    """The gateway, pools, name servers and routes of a subnet of ``net``."""
    if gateway is not None:
        _check_version(net.version, gateway, "gateway_ip")
        if ipam.contains(net, gateway) and not ipam.usable_host(net, gateway):
            raise InvalidOperation("Gateway is not valid on subnet")
    ipam.check_pools(pools, net)
    if gateway is not None:
        pool = ipam.pool_containing(pools, gateway)
        if pool is not None:
            raise GatewayConflictWithAllocationPools(
                f"Gateway ip {gateway} conflicts with allocation pool "
                f"{pool['start']}-{pool['end']}."
            )
    if len(body.dns_nameservers) > MAX_DNS_NAMESERVERS:
        raise DNSNameServersExhausted(
            f"Unable to complete operation for {subnet_id}. The number of DNS nameservers "
            f"exceeds the limit {MAX_DNS_NAMESERVERS}."
        )
    if len(body.host_routes) > MAX_HOST_ROUTES:
        raise HostRoutesExhausted(
            f"Unable to complete operation for {subnet_id}. The number of host routes exceeds "
            f"the limit {MAX_HOST_ROUTES}."
        )
    for route in body.host_routes:
        _check_version(net.version, route.nexthop, "nexthop")
        _check_version(net.version, route.destination, "destination")
