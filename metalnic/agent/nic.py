"""One smart NIC: desired state from the server + actual state read from OVS → minimal changes.

Reconcile, never replay.  Each pass reads what OVS has (bridges, the ports on
br-int with their tags and external_ids, the flow cookies) and changes only
what differs, so running it twice changes nothing the second time and an
agent restart does not touch traffic that is already right.  The agent owns
only what it marked: ports with ``external_ids:metalnic-owner`` and flows
with its cookie kinds.

Order keeps a host from reaching a network early: a port is put on br-int
(its tag set) before its flows exist — and without flows table 0 drops all it
sends; on unplug the drop flow replaces the port's flows (one bundle) before
the tag goes back to the dead VLAN.  When ovs-vswitchd restarted (the canary
flow is gone), the base pipeline — deny by default — goes in first.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from metalnic.agent import pipeline
from metalnic.agent.ovs import Interface, Ovs, OvsError

log = logging.getLogger(__name__)

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


@dataclass
class PortResult:
    status: str  # ACTIVE | ERROR
    reason: str | None = None

    def report(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason}


@dataclass
class Pass:
    """What one reconcile pass did (for reports, logs and tests)."""

    results: dict[str, PortResult] = field(default_factory=dict)
    restarted: bool = False
    flows_added: int = 0
    groups_removed: int = 0
    ports_plugged: list[str] = field(default_factory=list)
    ports_unplugged: list[str] = field(default_factory=list)


class Nic:
    def __init__(self, ovs: Ovs, config: NicConfig) -> None:
        self.ovs = ovs
        self.config = config
        self._ensured = False
        self.expected: dict[str, Expected] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"ovs-{config.host}")

    # --- the pass ---------------------------------------------------------------------

    def reconcile(self, desired: dict[str, Any]) -> Pass:
        done = Pass()
        br = self.config.integration_bridge
        uplinks = sorted(set(self.config.bridge_mappings.values()))
        if not self._ensured:
            self._ensure_bridges(uplinks)
        # Read the NIC: flows of every bridge and the ports, at once (each read is a tool run).
        reads = {name: self._pool.submit(self._cookies, name) for name in (br, *uplinks)}
        state = self._pool.submit(self.ovs.state, br)
        actual = {name: future.result() for name, future in reads.items()}
        found = state.result()[1]
        done.restarted = any(
            not any(pipeline.kind_of(c) == pipeline.KIND_CANARY for c in cookies)
            for cookies in actual.values()
        )
        if done.restarted:
            # Deny by default before anything else: the base pipeline alone, now.
            self._ensure_bridges(uplinks)
            self._apply(pipeline.base_groups(br, uplinks), actual, done, remove=False)
            found = self.ovs.state(br)[1]
        interfaces = {i.name: i for i in found}
        ports = [p for p in desired.get("ports", []) if p.get("admin_state_up", True)]
        vlans = self._local_vlans(interfaces, ports)

        # 1. OVSDB: every port B that is not plugged as wanted, in one transaction.
        nets: dict[str, pipeline.NetworkPlan] = {}
        todo: list[dict[str, Any]] = []
        for port in ports:
            try:
                net = self._network(port, vlans)
                if not _members(port):
                    raise PlugError("the binding names no NIC port (local_link_information)")
            except PlugError as exc:
                done.results[port["id"]] = PortResult("ERROR", str(exc))
                continue
            nets[port["id"]] = net
            todo.append(port)
        changes = [
            cmd
            for port in todo
            for name in _members(port)
            for cmd in [self._plug_command(port, name, nets[port["id"]], interfaces.get(name))]
            if cmd
        ]
        if changes:
            self._vsctl_each(changes, done)
            interfaces = {i.name: i for i in self.ovs.state(br)[1]}

        # 2. Flows: base, networks, remote-group members, each plugged port, parked ports.
        rules = desired.get("security_groups", {})
        referenced = {
            str(r["remote_group_id"])
            for port in todo
            for gid in port.get("security_groups", [])
            for r in rules.get(gid, [])
            if r.get("remote_group_id")
        }
        bits, by_mac = pipeline.membership(referenced, desired.get("members", {}))
        groups = pipeline.base_groups(br, uplinks)
        groups += [pipeline.member_group(br, mac, value) for mac, value in sorted(by_mac.items())]
        wanted_names: set[str] = set()
        expected: dict[str, Expected] = {}
        used_networks: dict[str, pipeline.NetworkPlan] = {}
        for port in todo:
            if port["id"] in done.results:
                continue  # its OVSDB change failed
            try:
                plan = self._plan(port, nets[port["id"]], interfaces, bits)
            except PlugError as exc:
                done.results[port["id"]] = PortResult("ERROR", str(exc))
                for name in _members(port):  # nothing half-plugged stays behind
                    if interfaces.get(name) is not None and interfaces[name].ofport <= 0:
                        self.ovs.vsctl("--if-exists", "del-port", br, name)
                        del interfaces[name]
                continue
            rule_set = pipeline.resolve_rules(port.get("security_groups", []), rules)
            group = pipeline.port_group(br, replace(plan, rules=rule_set))
            groups.append(group)
            expected[port["id"]] = Expected(tuple(_members(port)), plan.local_vlan, plan.mac, group)
            used_networks[plan.port_id] = nets[port["id"]]
            wanted_names.update(_members(port))
            done.ports_plugged.append(port["id"])
        for net in {n.network_id: n for n in used_networks.values()}.values():
            groups += pipeline.network_groups(br, net)
        # Ours but no longer wanted: dead VLAN, dropped.
        unplug = [
            i
            for i in interfaces.values()
            if i.external_ids.get(OWNER) and i.name not in wanted_names
        ]
        groups += [pipeline.unbound_group(br, i.name, i.ofport) for i in unplug if i.ofport > 0]
        self._apply(groups, actual, done, remove=True)

        # 3. OVSDB again: park what was unplugged (its drop flow is already in).
        for iface in unplug:
            if iface.tag != pipeline.DEAD_VLAN or iface.external_ids.get("iface-id"):
                self._park(iface.name)
                done.ports_unplugged.append(iface.name)
        for port_id in done.ports_plugged:
            done.results[port_id] = PortResult("ACTIVE")
        self.expected = expected
        return done

    def verify(self, port_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The boot gate's question, answered from OVS read now — not from this object's
        memory of what it did: each port B on br-int in its network's VLAN with the
        port's external_ids, and every flow of the port on the bridge."""
        br = self.config.integration_bridge
        interfaces = {i.name: i for i in self.ovs.state(br)[1]}
        cookies = self._cookies(br)
        out: dict[str, dict[str, Any]] = {}
        for port_id in port_ids:
            want = self.expected.get(port_id)
            if want is None:
                why: str | None = f"port {port_id} is not bound on {self.config.host}"
            else:
                why = want.missing(port_id, interfaces, cookies)
            out[port_id] = {"plugged": why is None, "reason": why}
        return out

    # --- bridges ----------------------------------------------------------------------

    def _ensure_bridges(self, uplinks: list[str]) -> None:
        """Bridges (fail_mode=secure: nothing forwards without our flows) and patch ports,
        idempotently; run on the first pass and after OVS restarts."""
        present = self.ovs.bridges()
        br = self.config.integration_bridge
        missing = [b for b in (br, *uplinks) if b not in present]
        if missing and not self.config.create_bridges:
            raise OvsError(f"bridge(s) {', '.join(missing)} missing on NIC {self.config.host}")
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
                f"datapath_type={self.config.datapath_type}",
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
        self.ovs.vsctl(*cmd[1:])
        self._ensured = True

    # --- ports ------------------------------------------------------------------------

    def _local_vlans(
        self, interfaces: dict[str, Interface], ports: list[dict[str, Any]]
    ) -> dict[str, int]:
        """network id → local VLAN: kept from what OVS has (restart-safe), new ones lowest free."""
        vlans: dict[str, int] = {}
        for iface in interfaces.values():
            net = iface.port_other_config.get(NET_KEY)
            if net and iface.tag and iface.tag != pipeline.DEAD_VLAN:
                vlans.setdefault(net, iface.tag)
        wanted = {p["network_id"] for p in ports}
        vlans = {net: tag for net, tag in vlans.items() if net in wanted}
        used = set(vlans.values())
        for net in sorted(wanted - vlans.keys()):
            free = next((v for v in range(1, MAX_LOCAL_VLAN + 1) if v not in used), None)
            if free is None:
                continue  # _plug reports it
            vlans[net] = free
            used.add(free)
        return vlans

    def _plug_command(
        self,
        port: dict[str, Any],
        name: str,
        net: pipeline.NetworkPlan,
        iface: Interface | None,
    ) -> list[str]:
        """The ovs-vsctl commands that plug NIC port ``name`` for ``port`` (none if it is)."""
        ids = {
            "iface-id": port["id"],
            "iface-status": "active",
            "attached-mac": port["mac_address"],
            OWNER: "agent",
        }
        if port.get("device_id"):
            ids["node-uuid"] = port["device_id"]
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
            self.config.integration_bridge,
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

    def _vsctl_each(self, changes: list[list[str]], done: Pass) -> None:
        """All changes in one transaction; if it fails, one by one to find the bad one
        (a port B that cannot be added is then reported by ``_plan``)."""
        try:
            joined: list[str] = []
            for cmd in changes:
                joined += ["--", *cmd]
            self.ovs.vsctl(*joined[1:])
        except OvsError:
            for cmd in changes:
                try:
                    self.ovs.vsctl(*cmd)
                except OvsError as exc:
                    log.warning("plugging %s failed: %s", cmd[3], exc)

    def _plan(
        self,
        port: dict[str, Any],
        net: pipeline.NetworkPlan,
        interfaces: dict[str, Interface],
        bits: dict[str, int],
    ) -> pipeline.PortPlan:
        ofports: list[int] = []
        for name in _members(port):
            iface = interfaces.get(name)
            if iface is None or iface.ofport <= 0 or iface.tag != net.local_vlan:
                why = iface.error if iface is not None and iface.error else "no such device"
                raise PlugError(f"NIC port {name} is missing on {self.config.host} ({why})")
            ofports.append(iface.ofport)
        return pipeline.PortPlan(
            port_id=port["id"],
            mac=port["mac_address"],
            local_vlan=net.local_vlan,
            ofports=tuple(ofports),
            bond_mode=(port.get("local_group_information") or {}).get("bond_mode"),
            port_security=bool(port.get("port_security_enabled", True)),
            group_bits=bits,
        )

    def _network(self, port: dict[str, Any], vlans: dict[str, int]) -> pipeline.NetworkPlan:
        kind = port.get("network_type")
        physnet = port.get("physical_network")
        if kind not in ("vlan", "flat"):
            raise PlugError(f"network type {kind!r} is not supported by this agent")
        uplink = self.config.bridge_mappings.get(str(physnet))
        if uplink is None:
            raise PlugError(f"no bridge is mapped to physical network {physnet}")
        local = vlans.get(port["network_id"])
        if local is None:
            raise PlugError(f"no local VLAN is free on {self.config.host}")
        return pipeline.NetworkPlan(
            network_id=port["network_id"],
            local_vlan=local,
            network_type=kind,
            segmentation_id=port.get("segmentation_id"),
            uplink=uplink,
        )

    def _park(self, name: str) -> None:
        """Back to the dead VLAN, no longer bound (still ours, still dropped)."""
        self.ovs.vsctl(
            "set",
            "Port",
            name,
            f"tag={pipeline.DEAD_VLAN}",
            "--",
            "remove",
            "Port",
            name,
            "other_config",
            NET_KEY,
            "--",
            "remove",
            "Interface",
            name,
            "external_ids",
            "iface-id",
            "--",
            "remove",
            "Interface",
            name,
            "external_ids",
            "attached-mac",
            "--",
            "remove",
            "Interface",
            name,
            "external_ids",
            "node-uuid",
            "--",
            "set",
            "Interface",
            name,
            "external_ids:iface-status=down",
        )

    # --- flows ------------------------------------------------------------------------

    def _cookies(self, bridge: str) -> Counter[int]:
        counts: Counter[int] = Counter()
        for line in self.ovs.dump_flows(bridge):
            value = line.split("cookie=", 1)[1].split(",", 1)[0]
            counts[int(value, 16)] += 1
        return counts

    def _apply(
        self,
        groups: list[pipeline.FlowGroup],
        actual: dict[str, Counter[int]],
        done: Pass,
        remove: bool,
    ) -> None:
        """Per bridge, one bundle: drop stale groups of ours, add missing or damaged ones."""
        by_bridge: dict[str, list[pipeline.FlowGroup]] = {}
        for group in groups:
            by_bridge.setdefault(group.bridge, []).append(group)
        bundles: dict[str, list[str]] = {}
        for bridge, cookies in actual.items():
            wanted = {g.cookie: g for g in by_bridge.get(bridge, [])}
            lines: list[str] = []
            for cookie, count in cookies.items():
                ours = pipeline.kind_of(cookie) in pipeline.OUR_KINDS
                stale = cookie not in wanted or count != len(wanted[cookie].flows)
                if ours and stale and (remove or cookie in wanted):
                    lines.append(f"delete cookie={cookie:#x}/-1")
                    done.groups_removed += 1
            for cookie, group in wanted.items():
                if cookies.get(cookie) != len(group.flows):
                    lines += group.add_lines()
                    done.flows_added += len(group.flows)
            bundles[bridge] = lines
            if lines:  # what the bridge will hold, without reading it back
                for cookie in list(cookies):
                    if pipeline.kind_of(cookie) in pipeline.OUR_KINDS and (
                        remove or cookie in wanted
                    ):
                        del cookies[cookie]
                for cookie, group in wanted.items():
                    cookies[cookie] = len(group.flows)
        # Each bridge's bundle is atomic; bridges are independent: apply them at once.
        for future in [
            self._pool.submit(self.ovs.bundle, bridge, lines) for bridge, lines in bundles.items()
        ]:
            future.result()


@dataclass(frozen=True)
class Expected:
    """How a plugged port must look in OVS (for the boot gate's read-back)."""

    names: tuple[str, ...]
    local_vlan: int
    mac: str
    flows: pipeline.FlowGroup

    def missing(
        self, port_id: str, interfaces: dict[str, Interface], cookies: Counter[int]
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


class PlugError(Exception):
    """A port cannot be plugged; the message is the reason reported to the server."""


def _members(port: dict[str, Any]) -> list[str]:
    links = port.get("local_link_information") or []
    return [
        str(link["port_id"]) for link in links if isinstance(link, dict) and link.get("port_id")
    ]
