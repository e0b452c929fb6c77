"""IP address management: a subnet's address arithmetic, and a port's addresses.

The arithmetic is pure (``default_gateway``, ``default_pools``, ``check_pools``,
``eui64`` and ``pick``) and the unit tests call it directly.  Allocation
(``Allocator``) writes ``ip_allocations`` rows, whose primary key
(subnet_id, ip_address) is the only guard against handing an address out
twice: every claim is one ``INSERT ... ON CONFLICT DO NOTHING``, and a claim
that inserted nothing lost its address to another port (committed, or
committing: PostgreSQL makes the INSERT wait for the other transaction's end).
That holds across threads and server processes, on SQLite and PostgreSQL,
without locks and without aborting the request's transaction (so no SAVEPOINT
is needed around a lost claim).

Choosing a free address stays cheap however large the subnet: a few random
candidates from the pools first (an empty or sparse /16 needs one INSERT);
only when those were all taken — a subnet filling up — are the subnet's
allocated addresses read (one column of one index) and a free one picked from
the pools minus them.  Never a walk over all the pools' addresses.

Neutron's rules, as its API documents them: a port without ``fixed_ips`` gets
one address from the first IPv4 subnet with a free one and one from the first
stateful IPv6 subnet with a free one; every IPv6 subnet in ``slaac`` or
``dhcpv6-stateless`` mode ("auto-address") gives it its EUI-64 address from
its MAC, also when ``fixed_ips`` names other addresses (not when it is ``[]``).
"""

from __future__ import annotations

import bisect
import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.contract.agent import FixedIpData
from metalnic.errors import (
    InvalidAllocationPool,
    InvalidIpForNetwork,
    InvalidIpForSubnet,
    InvalidOperation,
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    OutOfBoundsAllocationPool,
    OverlappingAllocationPools,
)
from metalnic.network import access
from metalnic.network.inputs import FixedIpRequest
from metalnic.network.models import IPAllocation, NetworkPort, Subnet

AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")
RANDOM_TRIES = 3  # random candidates before the subnet's allocations are read
CROWDED_TRIES = 32  # picks from the free addresses before giving up (each one raced away)
PICK_AMONG = 16  # a crowded subnet: one of its first free addresses, at random


# --- arithmetic (pure) -----------------------------------------------------------------------

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def network(cidr: str) -> Net:
    return ipaddress.ip_network(cidr)


def _int(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


def _text(value: int, version: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def first_host(net: Net) -> int:
    return int(net.network_address) + 1 if net.num_addresses > 1 else int(net.network_address)


def last_host(net: Net) -> int:
    """IPv4 keeps its broadcast address out; IPv6 has none."""
    last = int(net.broadcast_address)
    return last - 1 if net.version == 4 and net.num_addresses > 2 else last


def default_gateway(net: Net) -> str | None:
    """Neutron's default: the first address after the network's own."""
    return _text(first_host(net), net.version) if net.num_addresses > 1 else None


def default_pools(net: Net, gateway: str | None) -> list[dict[str, str]]:
    """The hosts of ``net`` without the gateway: one range on each side of it."""
    low, high = first_host(net), last_host(net)
    gw = _int(gateway) if gateway else None
    if gw is not None and low <= gw <= high:
        ranges = [(low, gw - 1), (gw + 1, high)]
    else:
        ranges = [(low, high)]
    return [_pool(a, b, net.version) for a, b in ranges if a <= b]


def _pool(a: int, b: int, version: int) -> dict[str, str]:
    return {"start": _text(a, version), "end": _text(b, version)}


def check_pools(pools: Sequence[dict[str, str]], net: Net) -> None:
    """Each pool a range of the subnet's hosts, no two overlapping (Neutron's errors)."""
    ranges: list[tuple[int, int, dict[str, str]]] = []
    for pool in pools:
        start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        if start.version != net.version or end.version != net.version or int(end) < int(start):
            raise InvalidAllocationPool(f"The allocation pool {_range(pool)} is not valid.")
        if int(start) < first_host(net) or int(end) > last_host(net):
            raise OutOfBoundsAllocationPool(
                f"The allocation pool {_range(pool)} spans beyond the subnet cidr {net}."
            )
        ranges.append((int(start), int(end), pool))
    ranges.sort(key=lambda r: r[0])
    for (_, end_a, a), (start_b, _, b) in zip(ranges, ranges[1:], strict=False):
        if start_b <= end_a:
            raise OverlappingAllocationPools(
                f"Found overlapping allocation pools: {_range(a)} {_range(b)} for subnet {net}."
            )


def _range(pool: dict[str, str]) -> str:
    return f"{pool['start']}-{pool['end']}"


def pool_containing(pools: Sequence[dict[str, str]], ip: str) -> dict[str, str] | None:
    value = ipaddress.ip_address(ip)
    for pool in pools:
        start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        if start.version == value.version and int(start) <= int(value) <= int(end):
            return pool
    return None


def normalized(ip: str) -> str:
    """An address as stored (``FD00::0001`` → ``fd00::1``); anything else as given."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def contains(net: Net, ip: str) -> bool:
    value = ipaddress.ip_address(ip)
    return value.version == net.version and value in net


def usable_host(net: Net, ip: str) -> bool:
    """May a port hold ``ip`` on a subnet of ``net``: inside it, and neither the network's
    own address nor (IPv4) its broadcast address."""
    return contains(net, ip) and first_host(net) <= _int(ip) <= last_host(net)


def eui64(cidr: str, mac: str) -> str:
    """The SLAAC address of ``mac`` on the /64 ``cidr``: the modified EUI-64 interface
    id (RFC 4291, appendix A): ff:fe in the middle of the MAC, its universal bit flipped."""
    octets = bytes(int(part, 16) for part in mac.split(":"))
    iid = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:6]
    prefix = int(ipaddress.IPv6Network(cidr).network_address)
    return str(ipaddress.IPv6Address(prefix | int.from_bytes(iid, "big")))


class SubnetModes(Protocol):
    @property
    def ipv6_ra_mode(self) -> str | None: ...
    @property
    def ipv6_address_mode(self) -> str | None: ...


def is_auto_address(subnet: SubnetModes) -> bool:
    return (
        subnet.ipv6_address_mode in AUTO_ADDRESS_MODES or subnet.ipv6_ra_mode in AUTO_ADDRESS_MODES
    )


def pick(pools: Sequence[dict[str, str]], taken: Iterable[str], rng: random.Random) -> str | None:
    """A free address of ``pools``, given the ``taken`` ones (None: none left): one of
    the first few free addresses at random, so that racing requests rarely choose the
    same.  Walks the gaps between the taken addresses (sorted integers), never the
    pools' addresses one by one."""
    used = sorted(_int(ip) for ip in taken)
    candidates: list[int] = []
    version = 4
    for pool in sorted(pools, key=lambda p: _int(p["start"])):
        low, high = _int(pool["start"]), _int(pool["end"])
        version = ipaddress.ip_address(pool["start"]).version
        at = bisect.bisect_left(used, low)
        value = low
        while value <= high and len(candidates) < PICK_AMONG:
            if at < len(used) and used[at] == value:
                # A run of taken addresses: jump over it.
                while at + 1 < len(used) and used[at + 1] == used[at] + 1:
                    at += 1
                value = used[at] + 1
                at += 1
                continue
            candidates.append(value)
            value += 1
        if len(candidates) >= PICK_AMONG:
            break
    return _text(rng.choice(candidates), version) if candidates else None


def random_candidate(pools: Sequence[dict[str, str]], rng: random.Random) -> str | None:
    """An address of ``pools`` at random (each address as likely), or None without pools."""
    ranges = [(_int(p["start"]), _int(p["end"])) for p in pools]
    total = sum(b - a + 1 for a, b in ranges)
    if total <= 0:
        return None
    n = rng.randrange(total)
    for (a, b), pool in zip(ranges, pools, strict=True):
        if n <= b - a:
            return _text(a + n, ipaddress.ip_address(pool["start"]).version)
        n -= b - a + 1
    raise AssertionError("unreachable")


# --- allocation (in the request's transaction) ---------------------------------------------


class SubnetFacts(NamedTuple):
    """What allocation reads of a subnet (a plain row: an ORM object per subnet cost
    more than the allocation's own statements)."""

    id: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    ipv6_ra_mode: str | None
    ipv6_address_mode: str | None
    allocation_pools: list[dict[str, str]]


_FACTS = [Subnet.__table__.c[name] for name in SubnetFacts._fields]


@dataclass(frozen=True)
class Address:
    subnet_id: str
    ip_address: str


class Allocator:
    """Claims and releases the addresses of one port inside the caller's transaction."""

    def __init__(self, s: Session, who: Principal, port: NetworkPort) -> None:
        self.s, self.who, self.port = s, who, port
        self.rng = random.Random()
        self._subnets: list[SubnetFacts] | None = None

    @property
    def subnets(self) -> list[SubnetFacts]:
        """The port's network's subnets, oldest first (read once)."""
        if self._subnets is None:
            rows = self.s.connection().execute(
                select(*_FACTS)
                .where(Subnet.network_id == self.port.network_id)
                .order_by(Subnet.created_at, Subnet.id)
            )
            self._subnets = [SubnetFacts._make(r) for r in rows]
        return self._subnets

    # -- a new port --

    def allocate(self, requested: Sequence[FixedIpRequest] | None) -> list[Address]:
        """The addresses of a new port: the requested ones, or Neutron's defaults."""
        if requested is None:
            return self._defaults()
        if not requested:
            return []
        made = [self._requested(r) for r in requested]
        named = {a.subnet_id for a in made}
        for subnet in self.subnets:
            if is_auto_address(subnet) and subnet.id not in named:
                made.append(self._claim_or_fail(subnet, eui64(subnet.cidr, self.port.mac_address)))
        return made

    def _defaults(self) -> list[Address]:
        made: list[Address] = []
        v4 = [n for n in self.subnets if n.ip_version == 4]
        stateful = [n for n in self.subnets if n.ip_version == 6 and not is_auto_address(n)]
        for group in (v4, stateful):
            if group:
                made.append(self._from_any(group))
        for subnet in self.subnets:
            if is_auto_address(subnet):
                made.append(self._claim_or_fail(subnet, eui64(subnet.cidr, self.port.mac_address)))
        return made

    def _from_any(self, subnets: Sequence[SubnetFacts]) -> Address:
        for subnet in subnets:
            found = self._any_free(subnet)
            if found is not None:
                return found
        raise IpAddressGenerationFailure(self.port.network_id)

    def _requested(self, want: FixedIpRequest) -> Address:
        subnet = self._subnet_for(want)
        if want.ip_address is None:
            if is_auto_address(subnet):
                return self._claim_or_fail(subnet, eui64(subnet.cidr, self.port.mac_address))
            found = self._any_free(subnet)
            if found is None:
                raise IpAddressGenerationFailure(self.port.network_id)
            return found
        if is_auto_address(subnet):
            raise InvalidOperation(
                f"IPv6 address {want.ip_address} cannot be directly assigned to a port on subnet "
                f"{subnet.id} as the subnet is configured for automatic addresses"
            )
        if not usable_host(network(subnet.cidr), want.ip_address):
            raise InvalidIpForSubnet(want.ip_address)
        if want.ip_address == subnet.gateway_ip and not self.port.device_owner.startswith(
            "network:router"
        ):
            raise IpAddressAlreadyAllocated(want.ip_address, subnet.id)  # the router's
        return self._claim_or_fail(subnet, want.ip_address)

    def _subnet_for(self, want: FixedIpRequest) -> SubnetFacts:
        if want.subnet_id is not None:
            for subnet in self.subnets:
                if subnet.id == want.subnet_id:
                    return subnet
            # Another network's subnet: named as invalid only to whom may see it.
            access.visible_subnet(self.s, self.who, want.subnet_id)
            raise InvalidOperation(
                f"Failed to create port on network {self.port.network_id}, because fixed_ips "
                f"included invalid subnet {want.subnet_id}"
            )
        assert want.ip_address is not None  # the model asks for one of both
        for subnet in self.subnets:
            if contains(network(subnet.cidr), want.ip_address):
                return subnet
        raise InvalidIpForNetwork(want.ip_address)

    # -- claims --

    def _any_free(self, subnet: SubnetFacts) -> Address | None:
        pools = subnet.allocation_pools
        for _ in range(RANDOM_TRIES):
            ip = random_candidate(pools, self.rng)
            if ip is None:
                return None
            if self._claim(subnet, ip):
                return Address(subnet.id, ip)
        for _ in range(CROWDED_TRIES):
            taken = self.s.scalars(
                select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet.id)
            ).all()
            ip = pick(pools, taken, self.rng)
            if ip is None:
                return None
            if self._claim(subnet, ip):
                return Address(subnet.id, ip)
        return None

    def _claim_or_fail(self, subnet: SubnetFacts, ip: str) -> Address:
        if not self._claim(subnet, ip):
            raise IpAddressAlreadyAllocated(ip, subnet.id)
        return Address(subnet.id, ip)

    def _claim(self, subnet: SubnetFacts, ip: str) -> bool:
        """INSERT the allocation unless the address is taken; True when this one got it
        (told by the row RETURNING gives back: psycopg's rowcount did not say it)."""
        dialect = self.s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(IPAllocation)
            .values(
                subnet_id=subnet.id,
                ip_address=ip,
                port_id=self.port.id,
                network_id=self.port.network_id,
            )
            .on_conflict_do_nothing(index_elements=["subnet_id", "ip_address"])
            .returning(IPAllocation.ip_address)
        )
        return self.s.connection().execute(stmt).first() is not None

    # -- an existing port --

    def replace(self, requested: Sequence[FixedIpRequest]) -> list[Address]:
        """Neutron's PUT of ``fixed_ips``: entries naming an address the port holds keep
        it (a subnet alone keeps one of that subnet's), auto-addresses stay, every other
        held address is released first, then the new entries are claimed."""
        held = [
            Address(a.subnet_id, a.ip_address)
            for a in self.s.scalars(
                select(IPAllocation).where(IPAllocation.port_id == self.port.id)
            )
        ]
        auto = {n.id for n in self.subnets if is_auto_address(n)}
        kept = [a for a in held if a.subnet_id in auto]
        new: list[FixedIpRequest] = []
        for want in requested:
            match = next((a for a in held if a not in kept and _matches(a, want)), None)
            if match is not None:
                kept.append(match)
            elif not (want.subnet_id in auto and want.ip_address is None):
                new.append(want)
        gone = [a for a in held if a not in kept]
        if gone:
            self.s.execute(
                delete(IPAllocation).where(
                    IPAllocation.port_id == self.port.id,
                    tuple_(IPAllocation.subnet_id, IPAllocation.ip_address).in_(
                        [(a.subnet_id, a.ip_address) for a in gone]
                    ),
                )
            )
        return kept + [self._requested(w) for w in new]

    def follow_mac(self) -> None:
        """The port's MAC changed: its SLAAC addresses are made from the new one."""
        for subnet in self.subnets:
            if not is_auto_address(subnet):
                continue
            gone = self.s.execute(
                delete(IPAllocation)
                .where(IPAllocation.port_id == self.port.id, IPAllocation.subnet_id == subnet.id)
                .returning(IPAllocation.ip_address)
            ).first()
            if gone is not None:
                self._claim_or_fail(subnet, eui64(subnet.cidr, self.port.mac_address))


def _matches(held: Address, want: FixedIpRequest) -> bool:
    if want.ip_address is not None:
        return held.ip_address == want.ip_address and want.subnet_id in (None, held.subnet_id)
    return held.subnet_id == want.subnet_id


def shown(addresses: Iterable[Address | IPAllocation]) -> list[FixedIpData]:
    """``fixed_ips`` as a port shows them: IPv4 before IPv6, each in address order."""
    ordered = sorted(addresses, key=lambda a: _order(a.ip_address))
    return [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in ordered]


def _order(ip: str) -> tuple[int, int]:
    value = ipaddress.ip_address(ip)
    return value.version, int(value)
