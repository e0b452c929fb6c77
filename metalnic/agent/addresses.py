"""A port's addresses as the anti-spoofing flows write them: fixed IPs, allowed
address pairs (by prefix, with their MAC), DHCP servers' MACs, and the IPv6
link-local address of a MAC.  Pure; the parsing is cached (the same values come
on every reconcile pass, for every port)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from metalnic.contract.agent import DesiredPort


class AddressError(ValueError):
    """A value of the desired state that is not an address or a MAC (the server's error)."""


@lru_cache(maxsize=65536)
def link_local(mac: str) -> str:
    """The IPv6 link-local address a host derives from ``mac`` (modified EUI-64)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02  # the universal/local bit, inverted
    eui = bytes(octets[:3] + [0xFF, 0xFE] + octets[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


@lru_cache(maxsize=65536)
def source_match(address: str) -> tuple[int, str]:
    """(IP version, the address or CIDR as OpenFlow writes it: no /32 or /128)."""
    net = ipaddress.ip_network(address, strict=False)
    full = net.prefixlen == net.max_prefixlen
    return net.version, str(net.network_address) if full else net.with_prefixlen


Sources = tuple[tuple[str, str], ...]  # (MAC, address or CIDR) a host may send from


def port_addresses(port: DesiredPort) -> tuple[Sources, tuple[str, ...], tuple[str, ...]]:
    """(the (MAC, address or CIDR) pairs ``port``'s host may send from, the pairs' MACs
    other than its own, its DHCP servers' MACs).

    Its fixed IPs go with its own MAC; an allowed address pair with the pair's MAC (the
    port's when it names none).  A value that is not an address or a MAC is the
    server's error (``AddressError``): the port is reported ERROR and not plugged,
    never left open."""
    own = port.mac_address.lower()
    sources: list[tuple[str, str]] = []
    for fixed in port.fixed_ips:
        sources.append((own, _address(fixed.ip_address, port.id, cidr=False)))
    macs: list[str] = []
    for pair in port.allowed_address_pairs:
        mac = _mac(pair.mac_address, port.id) if pair.mac_address else own
        sources.append((mac, _address(pair.ip_address, port.id, cidr=True)))
        macs.append(mac)
    servers = tuple(sorted({_mac(s.mac_address, port.id) for s in port.dhcp_servers}))
    return tuple(dict.fromkeys(sources)), tuple(sorted(set(macs) - {own})), servers


def _address(value: str, port_id: str, cidr: bool) -> str:
    normal = normal_address(value, cidr)
    if normal is None:
        raise AddressError(f"port {port_id} has an address that is not an IP address: {value!r}")
    return normal


@lru_cache(maxsize=65536)
def normal_address(value: str, cidr: bool) -> str | None:
    """``value`` as the flows write it (None: not an address, or a CIDR where one
    address must be)."""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    if not cidr and net.prefixlen != net.max_prefixlen:
        return None
    return source_match(net.with_prefixlen)[1]


def _mac(value: str, port_id: str) -> str:
    normal = normal_mac(value)
    if normal is None:
        raise AddressError(f"port {port_id} names a MAC address that is not one: {value!r}")
    return normal


@lru_cache(maxsize=65536)
def normal_mac(value: str) -> str | None:
    """``value`` as lower-case colon-separated hex (None: not a MAC address)."""
    parts = value.lower().replace("-", ":").split(":")
    hexdigits = set("0123456789abcdef")
    if len(parts) != 6 or not all(len(p) == 2 and set(p) <= hexdigits for p in parts):
        return None
    return ":".join(parts)
