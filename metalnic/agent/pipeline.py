"""The OpenFlow pipeline of a smart NIC, as data: desired state in, flow lines out.

Pure functions, no OVS: ``nic.py`` applies what they return.  Every group of
flows that changes together (the base pipeline, one network, one port, a
network's broadcast DHCP replies) has a
cookie of its own::

    kind (8 bits) | key hash (24 bits) | content hash (32 bits)

so that reconciling is comparing cookie sets: a group whose cookie (and flow
count) is on the bridge is right and left alone — an agent restart touches
nothing that is already correct — and a changed group is swapped in one
OpenFlow bundle (``delete cookie=old/-1`` then ``add …``).

br-int tables (``reg6`` carries the packet's local VLAN; each port's conntrack
zone is its own, so a packet between two ports of one NIC is checked on the
way out of the first *and* on the way into the second)::

     0 classify  port B with one of its MACs (its own, an address pair's) → reg6, 9
                 (no port security: → 15); any other source MAC → drop;
                 uplink patch, segment S → local VLAN: ARP/ND → NORMAL, IP → 19;
                 unbound port → drop; anything else → drop
     9 members   destination MAC → reg4 = bits of the remote groups it belongs to → 10
    10 egress    anti-spoofing (port security): a host acting as DHCP server (UDP
                 from 67/547 or to 68/546) or router (RA, redirect) → drop;
                 DHCP discover from 0.0.0.0 → 15; DAD/MLD from :: → NORMAL; IPv4 whose (MAC, source)
                 is the port's (fixed IPs, pairs) → ct(zone=port) → 11; ARP whose
                 (sender MAC, sender IP) is, or a probe from 0.0.0.0 → NORMAL; IPv6
                 whose (MAC, source) is (with the link-local address of each MAC) → 12;
                 a port without addresses: any source IP, ARP with its MACs
    12 nd        IPv6 after its source is checked: an NA only for the port's own
                 targets, RS/NS/MLD → NORMAL; the rest → ct(zone=port) → 11
    11 egress    est/rel → 15; DHCP client requests → 15; new and allowed by an
                 egress rule → commit → 15
    15 local     destination is a port of this NIC on this network → ct_clear → 19;
                 else NORMAL (the access tag and the patch carry it to the uplink)
    19 members   source MAC → reg5 = bits of the remote groups it belongs to → 20
    20 ingress   DHCP replies to a port: only from its DHCP servers' MACs → output
                 (broadcast ones: a network's flow to every port listing the server),
                 anything else for its DHCP client port (68/546) → drop;
                 IP for a port's MAC on reg6 → ct(zone=port) → 21
    21 ingress   est/rel → output; new and allowed by an ingress rule → commit → output

A remote-group rule matches a bit of reg5 (ingress) or reg4 (egress): a port
joining a group changes one small flow group keyed by its MAC, not the rules
of every port that names the group.

Each table ends in a drop (15 in NORMAL): deny by default.  The uplink bridge
translates local VLAN ↔ segmentation id on the patch (vlan) or strips the tag
(flat); table 250 holds a canary whose absence means ovs-vswitchd restarted.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from metalnic.agent.addresses import link_local, source_match
from metalnic.agent.rules import Rule, port_masks, resolve_rules, rule_matches

__all__ = ["Rule", "link_local", "port_masks", "resolve_rules", "rule_matches", "source_match"]

CLASSIFY, EGRESS, EGRESS_RULES, LOCAL, INGRESS, INGRESS_RULES, CANARY = 0, 10, 11, 15, 20, 21, 250
EGRESS_ND = 12  # egress IPv6 whose source was checked: neighbour discovery, then conntrack
DST_MEMBERS, SRC_MEMBERS = 9, 19
MAX_REMOTE_GROUPS = 32  # one bit each in a 32-bit register
DEAD_VLAN = 4095

KIND_BASE, KIND_NETWORK, KIND_PORT, KIND_UNBOUND, KIND_MEMBER = 0x01, 0x02, 0x03, 0x04, 0x05
KIND_DHCP = 0x06  # a network's broadcast DHCP replies, to the ports that may get them
KIND_CANARY = 0xCA
OUR_KINDS = frozenset(
    {KIND_BASE, KIND_NETWORK, KIND_PORT, KIND_UNBOUND, KIND_MEMBER, KIND_DHCP, KIND_CANARY}
)

# Neighbour discovery (router/neighbour solicitation and advertisement) is IPv6's ARP.
_ND_TYPES = (133, 134, 135, 136)
RS, RA, NS, NA, REDIRECT = 133, 134, 135, 136, 137
MLD_REPORTS = (131, 132, 143)  # MLDv1 report and done, MLDv2 report (a host's part of MLD)
DHCP_SERVER, DHCP_CLIENT, DHCP6_SERVER, DHCP6_CLIENT = 67, 68, 547, 546


def _hash(text: str, bits: int) -> int:
    return zlib.crc32(text.encode()) & ((1 << bits) - 1)


def kind_of(cookie: int) -> int:
    return cookie >> 56


@dataclass(frozen=True)
class FlowGroup:
    """Flows that change together, under one cookie."""

    bridge: str
    kind: int
    key: str
    flows: tuple[str, ...]

    @cached_property
    def cookie(self) -> int:
        content = _hash("\n".join(self.flows), 32)
        return (self.kind << 56) | (_hash(self.key, 24) << 32) | content

    def add_lines(self) -> list[str]:
        cookie = self.cookie
        return [f"add cookie={cookie:#x},{flow}" for flow in self.flows]


@dataclass(frozen=True)
class NetworkPlan:
    network_id: str
    local_vlan: int
    network_type: str  # vlan | flat
    segmentation_id: int | None
    uplink: str  # the uplink bridge (its patch ports are int-<uplink> / phy-<uplink>)


@dataclass(frozen=True)
class PortPlan:
    port_id: str
    mac: str
    local_vlan: int
    ofports: tuple[int, ...]  # one, or a bond's members
    bond_mode: str | None = None
    port_security: bool = True
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    group_bits: dict[str, int] = field(default_factory=dict)  # remote group → its bit
    # (MAC, address or CIDR) the host may send from: its fixed IPs with its MAC, its
    # allowed address pairs with theirs.  Empty: no IP filtering (only the MAC).
    sources: tuple[tuple[str, str], ...] = ()
    pair_macs: tuple[str, ...] = ()  # further MACs of address pairs
    dhcp_servers: tuple[str, ...] = ()  # MACs whose DHCP replies the host may get

    @cached_property
    def macs(self) -> tuple[str, ...]:
        """Every MAC the host may send from (and receive at): its own first."""
        return (self.mac, *sorted(set(self.pair_macs) - {self.mac.lower()}))

    @cached_property
    def source_matches(self) -> tuple[tuple[str, int, str], ...]:
        """(MAC, IP version, match) of each source, then the link-local address of each
        MAC (parsed once a port, not once a bond member)."""
        out = [(mac, *source_match(address)) for mac, address in self.sources]
        return tuple(out + [(mac, 6, link_local(mac)) for mac in self.macs])

    @property
    def is_dhcp_server(self) -> bool:
        """The port is one of its network's DHCP ports: it may answer DHCP."""
        return self.mac.lower() in self.dhcp_servers


def int_patch(uplink: str) -> str:
    return f"int-{uplink}"[:15]


def phy_patch(uplink: str) -> str:
    return f"phy-{uplink}"[:15]


# --- the fixed part --------------------------------------------------------------------


def base_groups(integration: str, uplinks: Sequence[str]) -> list[FlowGroup]:
    flows = [f"table={CLASSIFY},priority=150,dl_vlan={DEAD_VLAN},actions=drop"]
    flows += [f"table={CLASSIFY},priority=40,in_port={int_patch(u)},actions=drop" for u in uplinks]
    flows += [f"table={t},priority=0,actions=drop" for t in (CLASSIFY, EGRESS, EGRESS_RULES)]
    flows += [f"table={t},priority=0,actions=drop" for t in (INGRESS, INGRESS_RULES)]
    flows += [
        f"table={t},priority=100,ct_state=+trk+inv,actions=drop"
        for t in (EGRESS_RULES, INGRESS_RULES)
    ]
    flows.append(f"table={LOCAL},priority=0,actions=NORMAL")
    flows += _anti_spoofing_base()
    flows.append(f"table={DST_MEMBERS},priority=0,actions=goto_table:{EGRESS}")
    flows.append(f"table={SRC_MEMBERS},priority=0,actions=goto_table:{INGRESS}")
    groups = [FlowGroup(integration, KIND_BASE, integration, tuple(flows))]
    for bridge in (integration, *uplinks):
        canary = (f"table={CANARY},priority=0,actions=drop",)
        groups.append(FlowGroup(bridge, KIND_CANARY, bridge, canary))
    for uplink in uplinks:
        phys = (
            f"table={CLASSIFY},priority=2,in_port={phy_patch(uplink)},actions=drop",
            f"table={CLASSIFY},priority=1,actions=NORMAL",
        )
        groups.append(FlowGroup(uplink, KIND_BASE, uplink, phys))
    return groups


def _anti_spoofing_base() -> list[str]:
    """What holds for every host with port security (table 10 and 12 see only theirs):
    no DHCP server, no router; DHCP discover, DAD and MLD from the unspecified address;
    neighbour discovery of a host whose source was checked."""
    e, nd = EGRESS, EGRESS_ND
    return [
        # A DHCP server (or relay) answers from its port or to a client's, whatever
        # source port it picks: neither leaves a host.
        f"table={e},priority=120,udp,tp_src={DHCP_SERVER},actions=drop",
        f"table={e},priority=120,udp6,tp_src={DHCP6_SERVER},actions=drop",
        f"table={e},priority=120,udp,tp_dst={DHCP_CLIENT},actions=drop",
        f"table={e},priority=120,udp6,tp_dst={DHCP6_CLIENT},actions=drop",
        f"table={e},priority=120,icmp6,icmp_type={RA},actions=drop",
        f"table={e},priority=120,icmp6,icmp_type={REDIRECT},actions=drop",
        f"table={e},priority=105,udp,nw_src=0.0.0.0,tp_src={DHCP_CLIENT},tp_dst={DHCP_SERVER},"
        f"actions=goto_table:{LOCAL}",
        *(
            f"table={e},priority=105,icmp6,ipv6_src=::,icmp_type={t},actions=NORMAL"
            for t in (NS, *MLD_REPORTS)
        ),
        f"table={nd},priority=100,icmp6,icmp_type={NA},actions=drop",  # not its own target
        *(
            f"table={nd},priority=100,icmp6,icmp_type={t},actions=NORMAL"
            for t in (RS, NS, *MLD_REPORTS)
        ),
        f"table={nd},priority=0,actions=drop",
        # DHCP client requests pass whatever the egress rules say (as in Neutron).
        f"table={EGRESS_RULES},priority=80,ct_state=+trk+new,udp,tp_src={DHCP_CLIENT},"
        f"tp_dst={DHCP_SERVER},actions=goto_table:{LOCAL}",
        f"table={EGRESS_RULES},priority=80,ct_state=+trk+new,udp6,tp_src={DHCP6_CLIENT},"
        f"tp_dst={DHCP6_SERVER},actions=goto_table:{LOCAL}",
    ]


def network_groups(integration: str, net: NetworkPlan) -> list[FlowGroup]:
    local, patch = net.local_vlan, int_patch(net.uplink)
    if net.network_type == "flat":
        out_action, match_in = "strip_vlan", "vlan_tci=0x0000/0x1fff"
    else:
        out_action, match_in = (
            f"mod_vlan_vid:{net.segmentation_id}",
            f"dl_vlan={net.segmentation_id}",
        )
    into_local = f"table={CLASSIFY},priority=50,in_port={patch},{match_in}"
    integration_flows = (
        f"{into_local},arp,actions=mod_vlan_vid:{local},NORMAL",
        # Above the ipv6 flow: at one priority, which of two overlapping flows wins is
        # undefined (neighbour discovery from the uplink went to the ingress filter).
        *(
            f"{into_local.replace('priority=50', 'priority=51')},icmp6,icmp_type={t},"
            f"actions=mod_vlan_vid:{local},NORMAL"
            for t in _ND_TYPES
        ),
        f"{into_local},ip,actions=strip_vlan,set_field:{local}->reg6,goto_table:{SRC_MEMBERS}",
        f"{into_local},ipv6,actions=strip_vlan,set_field:{local}->reg6,goto_table:{SRC_MEMBERS}",
    )
    uplink_flows = (
        f"table={CLASSIFY},priority=4,in_port={phy_patch(net.uplink)},dl_vlan={local},"
        f"actions={out_action},NORMAL",
    )
    return [
        FlowGroup(integration, KIND_NETWORK, net.network_id, integration_flows),
        FlowGroup(net.uplink, KIND_NETWORK, net.network_id, uplink_flows),
    ]


# --- ports -----------------------------------------------------------------------------


def dhcp_broadcast_group(
    integration: str, network_id: str, ports: Sequence[PortPlan]
) -> FlowGroup | None:
    """Broadcast DHCP replies (a client that sets the broadcast flag) on one network of
    this NIC: from each DHCP server to every port that lists it, one flow per server
    (per-port flows cannot all match one packet).  None: no port lists a server."""
    outputs: dict[tuple[int, str], list[str]] = {}
    for port in ports:
        if port.port_security:  # (without it the port gets unicast DHCP only, as before)
            for server in port.dhcp_servers:
                outputs.setdefault((port.local_vlan, server), []).append(_output(port))
    if not outputs:
        return None
    reply = f"udp,dl_dst=ff:ff:ff:ff:ff:ff,tp_src={DHCP_SERVER},tp_dst={DHCP_CLIENT}"
    flows = tuple(
        f"table={INGRESS},priority=96,{reply},reg6={local},dl_src={server},"
        f"actions={','.join(sorted(outs))}"
        for (local, server), outs in sorted(outputs.items())
    )
    return FlowGroup(integration, KIND_DHCP, network_id, flows)


def unbound_group(integration: str, name: str, ofport: int) -> FlowGroup:
    """A port of ours that is not bound: dropped whatever it sends (tag 4095 alone
    does not isolate two unbound ports under NORMAL)."""
    flow = f"table={CLASSIFY},priority=200,in_port={ofport},actions=drop"
    return FlowGroup(integration, KIND_UNBOUND, name, (flow,))


def _output(port: PortPlan) -> str:
    if len(port.ofports) == 1:
        return f"output:{port.ofports[0]}"
    members = ",".join(str(p) for p in port.ofports)
    if port.bond_mode in (None, "active-backup"):
        return f"bundle(eth_src,0,active_backup,ofport,members:{members})"
    return f"bundle(symmetric_l4,0,hrw,ofport,members:{members})"


def port_group(integration: str, port: PortPlan) -> FlowGroup:
    zone, local = port.ofports[0], port.local_vlan
    to_ports = [f"reg6={local},dl_dst={mac}" for mac in port.macs]
    out = _output(port)
    egress_rules, ingress_rules = _rule_matches(port, "egress"), _rule_matches(port, "ingress")
    flows: list[str] = []
    for ofport in port.ofports:
        if port.port_security:
            flows += [
                f"table={CLASSIFY},priority=100,in_port={ofport},dl_src={mac},"
                f"actions=set_field:{local}->reg6,goto_table:{DST_MEMBERS}"
                for mac in port.macs
            ]
            flows.append(
                f"table={CLASSIFY},priority=90,in_port={ofport},actions=drop"
            )  # spoofed MAC
            flows += _egress(port, ofport, zone)
            flows += [
                f"table={EGRESS_RULES},priority=90,ct_state=+trk+est,in_port={ofport},"
                f"actions=goto_table:{LOCAL}",
                f"table={EGRESS_RULES},priority=90,ct_state=+trk+rel,in_port={ofport},"
                f"actions=goto_table:{LOCAL}",
            ]
            for match in egress_rules:
                flows.append(
                    f"table={EGRESS_RULES},priority=70,ct_state=+trk+new,in_port={ofport},"
                    f"{match},actions=ct(commit,zone={zone}),goto_table:{LOCAL}"
                )
        else:
            flows.append(
                f"table={CLASSIFY},priority=100,in_port={ofport},"
                f"actions=set_field:{local}->reg6,goto_table:{LOCAL}"
            )
    for to_port in to_ports:
        flows.append(
            f"table={LOCAL},priority=90,{to_port},actions=ct_clear,goto_table:{SRC_MEMBERS}"
        )
        if not port.port_security:
            flows.append(f"table={INGRESS},priority=90,{to_port},actions={out}")
            continue
        flows += _dhcp_replies(port, to_port, out)
        for ip in ("ip", "ipv6"):
            flows.append(
                f"table={INGRESS},priority=90,{ip},{to_port},"
                f"actions=ct(table={INGRESS_RULES},zone={zone})"
            )
        for state in ("est", "rel"):
            flows.append(
                f"table={INGRESS_RULES},priority=90,ct_state=+trk+{state},{to_port},actions={out}"
            )
        for match in ingress_rules:
            flows.append(
                f"table={INGRESS_RULES},priority=70,ct_state=+trk+new,{to_port},{match},"
                f"actions=ct(commit,zone={zone}),{out}"
            )
    return FlowGroup(integration, KIND_PORT, port.port_id, tuple(flows))


def _egress(port: PortPlan, ofport: int, zone: int) -> list[str]:
    """Table 10 and 12 of one port B: what source addresses it may use (anti-spoofing).
    Base flows (``_anti_spoofing_base``) hold what is the same for every host."""
    e, nd, at = EGRESS, EGRESS_ND, f"in_port={ofport}"
    to_ct = f"actions=ct(table={EGRESS_RULES},zone={zone})"
    flows: list[str] = []
    if port.is_dhcp_server:  # the network's DHCP port answers DHCP
        flows += [
            f"table={e},priority=125,udp,{at},tp_src={DHCP_SERVER},actions=goto_table:{LOCAL}",
            f"table={e},priority=125,udp6,{at},tp_src={DHCP6_SERVER},actions=goto_table:{LOCAL}",
        ]
    if not port.sources:  # no addresses known: any source IP (the MAC is checked)
        flows.append(f"table={e},priority=100,ip,{at},{to_ct}")
        flows += [
            f"table={e},priority=110,arp,{at},arp_sha={mac},actions=NORMAL" for mac in port.macs
        ]
        flows.append(f"table={e},priority=100,ipv6,{at},actions=goto_table:{nd}")
        flows.append(f"table={nd},priority=110,icmp6,{at},icmp_type={NA},actions=NORMAL")
    else:
        v6_targets: list[str] = []
        for mac, version, match in port.source_matches:
            if version == 4:
                flows.append(f"table={e},priority=100,ip,{at},dl_src={mac},nw_src={match},{to_ct}")
                flows.append(
                    f"table={e},priority=110,arp,{at},arp_sha={mac},arp_spa={match},actions=NORMAL"
                )
            else:
                flows.append(
                    f"table={e},priority=100,ipv6,{at},dl_src={mac},ipv6_src={match},"
                    f"actions=goto_table:{nd}"
                )
                v6_targets.append(match)
        flows += [
            f"table={e},priority=110,arp,{at},arp_sha={mac},arp_spa=0.0.0.0,actions=NORMAL"
            for mac in port.macs
        ]
        flows += [
            f"table={nd},priority=110,icmp6,{at},icmp_type={NA},nd_target={target},actions=NORMAL"
            for target in sorted(set(v6_targets))
        ]
    flows.append(f"table={nd},priority=90,ipv6,{at},{to_ct}")
    return list(dict.fromkeys(flows))  # once each, in order


def _dhcp_replies(port: PortPlan, to_port: str, out: str) -> list[str]:
    """DHCP replies to the host only from its network's DHCP ports (none listed: none)."""
    flows: list[str] = []
    for proto, server, client in (
        ("udp", DHCP_SERVER, DHCP_CLIENT),
        ("udp6", DHCP6_SERVER, DHCP6_CLIENT),
    ):
        reply = f"{proto},{to_port},tp_src={server},tp_dst={client}"
        flows += [
            f"table={INGRESS},priority=95,{reply},dl_src={mac},actions={out}"
            for mac in sorted(set(port.dhcp_servers))
        ]
        # Anything else for the host's DHCP client port, from any source port.
        flows.append(f"table={INGRESS},priority=94,{proto},{to_port},tp_dst={client},actions=drop")
    return flows


# --- security group rules --------------------------------------------------------------


def _rule_matches(port: PortPlan, direction: str) -> list[str]:
    out: list[str] = []
    for rule in port.rules:
        if rule.direction == direction:
            out += rule_matches(rule, port.group_bits)
    return sorted(set(out))


def member_group(integration: str, mac: str, bits: int) -> FlowGroup:
    """Which referenced remote groups ``mac`` belongs to, as register bits."""
    flows = (
        f"table={SRC_MEMBERS},priority=50,dl_src={mac},"
        f"actions=load:{bits:#x}->NXM_NX_REG5[],goto_table:{INGRESS}",
        f"table={DST_MEMBERS},priority=50,dl_dst={mac},"
        f"actions=load:{bits:#x}->NXM_NX_REG4[],goto_table:{EGRESS}",
    )
    return FlowGroup(integration, KIND_MEMBER, mac, flows)


def membership(
    referenced: Iterable[str], members: Mapping[str, Sequence[str]]
) -> tuple[dict[str, int], dict[str, int]]:
    """(remote group → bit, MAC → bits) for the remote groups this NIC's rules name."""
    ordered = sorted(set(referenced))[:MAX_REMOTE_GROUPS]
    bits = {gid: 1 << i for i, gid in enumerate(ordered)}
    by_mac: dict[str, int] = {}
    for gid, bit in bits.items():
        for mac in members.get(gid, []):
            by_mac[mac] = by_mac.get(mac, 0) | bit
    return bits, by_mac
