"""Security group rules as OpenFlow matches: protocols, port ranges as value/mask
pairs, ICMP type/code, remote CIDR and remote group (a register bit).  Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from metalnic.contract.agent import SecurityGroupRule


@dataclass(frozen=True)
class Rule:
    """One security group rule, resolved: remote group → its members' MACs."""

    direction: str  # ingress | egress
    ethertype: str = "IPv4"  # IPv4 | IPv6
    protocol: str | None = None  # tcp, udp, icmp, sctp, a number, or None for any
    port_min: int | None = None
    port_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group: str | None = None  # None: any source/destination


_PROTOCOLS_V4 = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "sctp": "sctp"}
_PROTOCOLS_V6 = {
    "tcp": "tcp6",
    "udp": "udp6",
    "icmp": "icmp6",
    "ipv6-icmp": "icmp6",
    "icmpv6": "icmp6",
    "sctp": "sctp6",
}
_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "132": "sctp"}


def rule_matches(rule: Rule, group_bits: dict[str, int] | None = None) -> list[str]:
    """The OpenFlow matches one rule allows (several for port ranges and member MACs)."""
    v6 = rule.ethertype == "IPv6"
    proto = (rule.protocol or "").lower()
    proto = _NUMBERS.get(proto, proto)
    names = _PROTOCOLS_V6 if v6 else _PROTOCOLS_V4
    if not proto:
        base = ["ipv6" if v6 else "ip"]
    elif proto in names:
        base = [names[proto]]
    elif proto.isdigit():
        base = [f"{'ipv6' if v6 else 'ip'},nw_proto={int(proto)}"]
    else:
        return []  # a protocol this datapath cannot match: allows nothing
    if names.get(proto, "") in ("tcp", "udp", "sctp", "tcp6", "udp6", "sctp6"):
        if rule.port_min is not None:
            high = rule.port_max if rule.port_max is not None else rule.port_min
            base = [f"{b},tp_dst={m}" for b in base for m in port_masks(rule.port_min, high)]
    elif names.get(proto, "") in ("icmp", "icmp6") and rule.port_min is not None:
        base = [f"{b},icmp_type={rule.port_min}" for b in base]
        if rule.port_max is not None:
            base = [f"{b},icmp_code={rule.port_max}" for b in base]
    if rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != (6 if v6 else 4):
            return []
        side = "src" if rule.direction == "ingress" else "dst"
        key = f"ipv6_{side}" if v6 else f"nw_{side}"
        if net.prefixlen:
            base = [f"{b},{key}={net.with_prefixlen}" for b in base]
    if rule.remote_group is not None:
        bit = (group_bits or {}).get(rule.remote_group)
        if bit is None:
            return []  # more remote groups than register bits: this rule allows nothing
        reg = "reg5" if rule.direction == "ingress" else "reg4"
        base = [f"{b},{reg}={bit:#x}/{bit:#x}" for b in base]
    return base


def port_masks(low: int, high: int) -> list[str]:
    """``low..high`` as value/mask pairs OpenFlow can match (at most ~30 for any range)."""
    if not 0 <= low <= high <= 65535:
        return []
    out: list[str] = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while low + size - 1 > high:
            size >>= 1
        mask = 0xFFFF & ~(size - 1)
        out.append(str(low) if size == 1 else f"{low:#x}/{mask:#x}")
        low += size
    return out


def resolve_rules(
    groups: Iterable[str], rules: Mapping[str, Sequence[SecurityGroupRule]]
) -> tuple[Rule, ...]:
    """The server's rules (the contract's model) for a port's groups → ``Rule``s."""
    return tuple(
        Rule(
            direction=raw.direction,
            ethertype=raw.ethertype or "IPv4",
            protocol=raw.protocol,
            port_min=raw.port_range_min,
            port_max=raw.port_range_max,
            remote_ip_prefix=raw.remote_ip_prefix or None,
            remote_group=raw.remote_group_id or None,
        )
        for gid in groups
        for raw in rules.get(gid, [])
    )
