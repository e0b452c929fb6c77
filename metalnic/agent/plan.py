"""The agent's planner: desired state (from the server) + what OVS has → the actions to take.

Pure: no I/O, so every rule of a reconcile pass is unit-tested without root
(tests/unit/test_agent_plan.py); ``nic.py`` observes OVS, calls ``decide``
and applies the actions.  Reconcile, never replay: a NIC already as desired
yields no action (``plan(desired, observe(after applying)) == []``).

A plan is one step.  Ordering keeps a host from reaching a network early:

1. deny first — when ovs-vswitchd restarted (a bridge lost its canary flow) the
   step is: bridges again, then the base pipeline (deny by default) alone; the
   NIC is observed again and planned anew;
2. then plug — every NIC port not plugged as wanted (tag, ``external_ids``);
   OVS assigns their ofports, so the NIC is observed again;
3. then flows — one bundle per bridge: base, networks, remote-group members,
   each plugged port (bonds: all members), drop flows for ports no longer
   wanted; and then those are parked (dead VLAN), after their drop flow is in.

Each NIC port is plugged at most once a pass (``Observed.tried``): one that
OVS cannot add is reported ERROR with OVS's reason and removed, not retried.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from metalnic.agent import pipeline
from metalnic.agent.addresses import AddressError, port_addresses
from metalnic.agent.ovs import Interface
from metalnic.contract.agent import DesiredPort, DesiredState, PlugAnswer, PortStatus

OWNER = "metalnic-owner"
NET_KEY = "metalnic-network"
MAX_LOCAL_VLAN = 4094


@dataclass(frozen=True)
class NicConfig:
    host: str  # the NIC host name the server knows (local_link_connection.hostname)
    integration_bridge: str = "br-int"
    bridge_mappings: dict[str, str] = field(default_factory=lambda: {"physnet1": "br-phys"})
    datapath_type: str = "system"  # netdev for the userspace datapath
    create_bridges: bool = True

    @property
    def uplinks(self) -> list[str]:
        return sorted(set(self.bridge_mappings.values()))


@dataclass(frozen=True)
class Observed:
    """What OVS has: the ports on the integration bridge and each bridge's flow cookies."""

    interfaces: Mapping[str, Interface]
    cookies: Mapping[str, Counter[int]]  # bridge → cookie → number of flows
    tried: frozenset[str] = frozenset()  # NIC ports plugged (or removed) earlier this pass
    netdevs: frozenset[str] | None = None  # the NIC's netdevs, when known (remote: SSH)


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureBridges:
    """Bridges (fail_mode=secure) and patch ports again, idempotently."""


@dataclass(frozen=True)
class ProgramFlows:
    """One bundle on one bridge (atomic): deletions of stale groups, then additions."""

    bridge: str
    lines: tuple[str, ...]
    added: int  # flows added
    removed: int  # groups removed
    holds: tuple[tuple[int, int], ...]  # (cookie, flows) the bridge holds afterwards


@dataclass(frozen=True)
class PlugPort:
    """Put NIC port ``name`` on the integration bridge for ``port_id`` (ovs-vsctl args)."""

    port_id: str
    name: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class RemovePort:
    """A NIC port OVS could not add: off the bridge, nothing half-plugged stays behind."""

    name: str


@dataclass(frozen=True)
class ParkPort:
    """Back to the dead VLAN, no longer bound (still ours; its drop flow is already in)."""

    name: str


Action = EnsureBridges | ProgramFlows | PlugPort | RemovePort | ParkPort


@dataclass(frozen=True)
class Expected:
    """How a plugged port must look in OVS (for the boot gate's read-back)."""

    names: tuple[str, ...]
    local_vlan: int
    mac: str
    flows: pipeline.FlowGroup

    def missing(
        self, port_id: str, interfaces: Mapping[str, Interface], cookies: Counter[int]
    ) -> str | None:
        for name in self.names:
            iface = interfaces.get(name)
            if iface is None or iface.ofport <= 0:
                return f"NIC port {name} is not on the integration bridge"
            if iface.tag != self.local_vlan:
                return f"NIC port {name} is in VLAN {iface.tag}, not {self.local_vlan}"
            ids = iface.external_ids
            if ids.get("iface-id") != port_id or ids.get("attached-mac") != self.mac:
                return f"NIC port {name} does not carry this port's iface-id and MAC"
        if cookies.get(self.flows.cookie) != len(self.flows.flows):
            return "the port's flows are not (all) on the integration bridge"
        return None

    def answer(
        self, port_id: str, interfaces: Mapping[str, Interface], cookies: Counter[int]
    ) -> PlugAnswer:
        why = self.missing(port_id, interfaces, cookies)
        return PlugAnswer(plugged=why is None, reason=why)


@dataclass
class Decision:
    """One step: its actions, and (for the last step of a pass) each port's outcome."""

    actions: list[Action] = field(default_factory=list)
    again: bool = False  # observe the NIC again and plan the next step
    restarted: bool = False
    results: dict[str, PortStatus] = field(default_factory=dict)
    expected: dict[str, Expected] = field(default_factory=dict)
    plugged: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)


class PlugError(Exception):
    """A port cannot be plugged; the message is the reason reported to the server."""


def plan(desired: DesiredState, observed: Observed, config: NicConfig) -> list[Action]:
    """The actions of the next step (empty: the NIC is as desired)."""
    return decide(desired, observed, config).actions


def decide(desired: DesiredState, observed: Observed, config: NicConfig) -> Decision:
    br, uplinks = config.integration_bridge, config.uplinks
    if any(
        not any(pipeline.kind_of(c) == pipeline.KIND_CANARY for c in observed.cookies.get(b, ()))
        for b in (br, *uplinks)
    ):
        # Deny by default before anything else: the base pipeline alone, now.
        base = pipeline.base_groups(br, uplinks)
        flows = program_flows(base, observed.cookies, remove=False)
        return Decision([EnsureBridges(), *flows], again=True, restarted=True)
    done = Decision()
    ports = [p for p in desired.ports if p.admin_state_up]
    vlans = local_vlans(observed.interfaces, ports)
    nets: dict[str, pipeline.NetworkPlan] = {}
    for port in ports:
        try:
            net = network(port, vlans, config)
            if not port.members():
                raise PlugError("the binding names no NIC port (local_link_information)")
            absent_representors(port.members(), observed.netdevs, config.host)
            nets[port.id] = net
        except PlugError as exc:
            done.results[port.id] = PortStatus(status="ERROR", reason=str(exc))
    todo = [p for p in ports if p.id in nets]
    plugs = [
        PlugPort(port.id, name, tuple(command))
        for port in todo
        for name in port.members()
        if name not in observed.tried
        for command in [plug_command(port, name, nets[port.id], observed.interfaces.get(name), br)]
        if command
    ]
    if plugs:
        return Decision(list(plugs), again=True)
    _flows(desired, observed, config, todo, nets, done)
    return done


def absent_representors(names: list[str], netdevs: frozenset[str] | None, host: str) -> None:
    """Refuse NIC port names the NIC does not have (when its netdevs are known)."""
    absent = [n for n in names if netdevs is not None and n not in netdevs]
    if absent:
        some = ", ".join(sorted(netdevs or ())[:8]) + (", …" if len(netdevs or ()) > 8 else "")
        raise PlugError(
            f"NIC {host} has no representor {', '.join(absent)} (its netdevs: {some or 'none'})"
        )


def _flows(
    desired: DesiredState,
    observed: Observed,
    config: NicConfig,
    todo: list[DesiredPort],
    nets: dict[str, pipeline.NetworkPlan],
    done: Decision,
) -> None:
    """The last step: flows of every plugged port, drop and park what is no longer wanted."""
    br, interfaces = config.integration_bridge, observed.interfaces
    rules = desired.security_groups
    referenced = {
        r.remote_group_id
        for port in todo
        for gid in port.security_groups
        for r in rules.get(gid, [])
        if r.remote_group_id
    }
    bits, by_mac = pipeline.membership(referenced, desired.members)
    groups = pipeline.base_groups(br, config.uplinks)
    groups += [pipeline.member_group(br, mac, value) for mac, value in sorted(by_mac.items())]
    wanted, removed = _port_groups(desired, observed, config, todo, nets, bits, groups, done)
    # Ours but no longer wanted: dropped, then parked on the dead VLAN.
    unplug = [
        i
        for i in interfaces.values()
        if i.external_ids.get(OWNER) and i.name not in wanted and i.name not in removed
    ]
    groups += [pipeline.unbound_group(br, i.name, i.ofport) for i in unplug if i.ofport > 0]
    done.actions += [RemovePort(name) for name in removed]
    done.actions += program_flows(groups, observed.cookies, remove=True)
    done.parked = [
        i.name for i in unplug if i.tag != pipeline.DEAD_VLAN or i.external_ids.get("iface-id")
    ]
    done.actions += [ParkPort(name) for name in done.parked]


def _port_groups(
    desired: DesiredState,
    observed: Observed,
    config: NicConfig,
    todo: list[DesiredPort],
    nets: dict[str, pipeline.NetworkPlan],
    bits: dict[str, int],
    groups: list[pipeline.FlowGroup],
    done: Decision,
) -> tuple[set[str], list[str]]:
    """Each port's flows (and its networks') into ``groups``; (NIC ports wanted, to remove)."""
    br, interfaces, rules = config.integration_bridge, observed.interfaces, desired.security_groups
    wanted: set[str] = set()
    removed: list[str] = []
    networks: dict[str, pipeline.NetworkPlan] = {}
    on_network: dict[str, list[pipeline.PortPlan]] = {}
    for port in todo:
        try:
            plan_ = port_plan(port, nets[port.id], interfaces, bits, config.host)
        except PlugError as exc:
            done.results[port.id] = PortStatus(status="ERROR", reason=str(exc))
            removed += [n for n in port.members() if _broken(interfaces.get(n))]
            continue
        rule_set = pipeline.resolve_rules(port.security_groups, rules)
        group = pipeline.port_group(br, replace(plan_, rules=rule_set))
        groups.append(group)
        done.expected[port.id] = Expected(tuple(port.members()), plan_.local_vlan, plan_.mac, group)
        networks[nets[port.id].network_id] = nets[port.id]
        on_network.setdefault(nets[port.id].network_id, []).append(plan_)
        wanted.update(port.members())
        done.plugged.append(port.id)
        done.results[port.id] = PortStatus(status="ACTIVE")
    for net in networks.values():
        groups += pipeline.network_groups(br, net)
        dhcp = pipeline.dhcp_broadcast_group(br, net.network_id, on_network[net.network_id])
        if dhcp is not None:
            groups.append(dhcp)
    return wanted, removed


def _broken(iface: Interface | None) -> bool:
    return iface is not None and iface.ofport <= 0


# --- ports --------------------------------------------------------------------------------


def local_vlans(interfaces: Mapping[str, Interface], ports: list[DesiredPort]) -> dict[str, int]:
    """network id → local VLAN: kept from what OVS has (restart-safe), new ones lowest free."""
    vlans: dict[str, int] = {}
    for iface in interfaces.values():
        net = iface.port_other_config.get(NET_KEY)
        if net and iface.tag and iface.tag != pipeline.DEAD_VLAN:
            vlans.setdefault(net, iface.tag)
    wanted = {p.network_id for p in ports}
    vlans = {net: tag for net, tag in vlans.items() if net in wanted}
    used = set(vlans.values())
    for net in sorted(wanted - vlans.keys()):
        free = next((v for v in range(1, MAX_LOCAL_VLAN + 1) if v not in used), None)
        if free is None:
            continue  # network() reports it
        vlans[net] = free
        used.add(free)
    return vlans


def network(port: DesiredPort, vlans: dict[str, int], config: NicConfig) -> pipeline.NetworkPlan:
    kind = port.network_type
    if kind not in ("vlan", "flat"):
        raise PlugError(f"network type {kind!r} is not supported by this agent")
    uplink = config.bridge_mappings.get(str(port.physical_network))
    if uplink is None:
        raise PlugError(f"no bridge is mapped to physical network {port.physical_network}")
    local = vlans.get(port.network_id)
    if local is None:
        raise PlugError(f"no local VLAN is free on {config.host}")
    return pipeline.NetworkPlan(
        network_id=port.network_id,
        local_vlan=local,
        network_type=kind,
        segmentation_id=port.segmentation_id,
        uplink=uplink,
    )


def plug_command(
    port: DesiredPort, name: str, net: pipeline.NetworkPlan, iface: Interface | None, bridge: str
) -> list[str]:
    """The ovs-vsctl arguments that plug NIC port ``name`` for ``port`` (none if it is)."""
    ids = {
        "iface-id": port.id,
        "iface-status": "active",
        "attached-mac": port.mac_address,
        OWNER: "agent",
    }
    if port.device_id:
        ids["node-uuid"] = port.device_id
    right = (
        iface is not None
        and iface.tag == net.local_vlan
        and iface.ofport > 0
        and all(iface.external_ids.get(k) == v for k, v in ids.items())
        and iface.port_other_config.get(NET_KEY) == net.network_id
    )
    if right:
        return []
    return [
        "--may-exist",
        "add-port",
        bridge,
        name,
        "--",
        "set",
        "Port",
        name,
        f"tag={net.local_vlan}",
        f"other_config:{NET_KEY}={net.network_id}",
        "--",
        "set",
        "Interface",
        name,
        *[f"external_ids:{k}={v}" for k, v in ids.items()],
    ]


def port_plan(
    port: DesiredPort,
    net: pipeline.NetworkPlan,
    interfaces: Mapping[str, Interface],
    bits: dict[str, int],
    host: str,
) -> pipeline.PortPlan:
    ofports: list[int] = []
    for name in port.members():
        iface = interfaces.get(name)
        if iface is None or iface.ofport <= 0 or iface.tag != net.local_vlan:
            why = iface.error if iface is not None and iface.error else "no such device"
            raise PlugError(f"NIC port {name} is missing on {host} ({why})")
        ofports.append(iface.ofport)
    group = port.local_group_information
    try:
        sources, pair_macs, servers = port_addresses(port)
    except AddressError as exc:
        raise PlugError(str(exc)) from None
    return pipeline.PortPlan(
        port_id=port.id,
        mac=port.mac_address,
        local_vlan=net.local_vlan,
        ofports=tuple(ofports),
        bond_mode=group.bond_mode if group is not None else None,
        port_security=port.port_security_enabled,
        group_bits=bits,
        sources=sources,
        pair_macs=pair_macs,
        dhcp_servers=servers,
    )


# --- flows --------------------------------------------------------------------------------


def program_flows(
    groups: Iterable[pipeline.FlowGroup], actual: Mapping[str, Counter[int]], remove: bool
) -> list[ProgramFlows]:
    """Per bridge, one bundle: drop stale groups of ours, add missing or damaged ones
    (``remove``: also drop groups of ours no longer wanted)."""
    by_bridge: dict[str, dict[int, pipeline.FlowGroup]] = {}
    for group in groups:
        by_bridge.setdefault(group.bridge, {})[group.cookie] = group
    out: list[ProgramFlows] = []
    for bridge, cookies in actual.items():
        wanted = by_bridge.get(bridge, {})
        lines: list[str] = []
        removed = added = 0
        holds = Counter(cookies)
        for cookie, count in cookies.items():
            if pipeline.kind_of(cookie) not in pipeline.OUR_KINDS:
                continue
            if cookie in wanted or remove:
                del holds[cookie]
                if cookie not in wanted or count != len(wanted[cookie].flows):
                    lines.append(f"delete cookie={cookie:#x}/-1")
                    removed += 1
        for cookie, group in wanted.items():
            holds[cookie] = len(group.flows)
            if cookies.get(cookie) != len(group.flows):
                lines += group.add_lines()
                added += len(group.flows)
        if lines:
            out.append(ProgramFlows(bridge, tuple(lines), added, removed, tuple(holds.items())))
    return out


def bridge_commands(config: NicConfig, missing: list[str]) -> list[str]:
    """ovs-vsctl arguments: the ``missing`` bridges, fail_mode=secure on every bridge
    (nothing forwards without our flows) and the patch ports, idempotently."""
    br, uplinks = config.integration_bridge, config.uplinks
    cmd: list[str] = []
    for bridge in missing:
        cmd += [
            "--",
            "--may-exist",
            "add-br",
            bridge,
            "--",
            "set",
            "Bridge",
            bridge,
            f"datapath_type={config.datapath_type}",
            "fail_mode=secure",
        ]
    for bridge in (br, *uplinks):
        cmd += ["--", "set", "Bridge", bridge, "fail_mode=secure"]
    for uplink in uplinks:
        a, b = pipeline.int_patch(uplink), pipeline.phy_patch(uplink)
        cmd += [
            "--",
            "--may-exist",
            "add-port",
            br,
            a,
            "--",
            "set",
            "Interface",
            a,
            "type=patch",
            f"options:peer={b}",
            "--",
            "--may-exist",
            "add-port",
            uplink,
            b,
            "--",
            "set",
            "Interface",
            b,
            "type=patch",
            f"options:peer={a}",
        ]
    return cmd[1:]
