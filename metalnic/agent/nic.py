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
from dataclasses import dataclass, field
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

    # --- the pass ---------------------------------------------------------------------

    def reconcile(self, desired: dict[str, Any]) -> Pass:
        done = Pass()
        br = self.config.integration_bridge
        uplinks = sorted(set(self.config.bridge_mappings.values()))
        if not self._ensured:
            self._ensure_bridges(uplinks)
        actual = {name: self._cookies(name) for name in (br, *uplinks)}
        restarted = any(
            not any(pipeline.kind_of(c) == pipeline.KIND_CANARY for c in cookies)
            for cookies in actual.values()
        )
        done.restarted = restarted
        if restarted:
            self._ensure_bridges(uplinks)
            # Deny by default before anything else: the base pipeline alone, now.
            self._apply(pipeline.base_groups(br, uplinks), actual, done, remove=False)
        interfaces = {i.name: i for i in self.ovs.interfaces(br)}
        ports = [p for p in desired.get("ports", []) if p.get("admin_state_up", True)]
        vlans = self._local_vlans(interfaces, ports)
        rules, members = desired.get("security_groups", {}), desired.get("members", {})

        groups = pipeline.base_groups(br, uplinks)
        wanted_names: dict[str, str] = {}  # NIC port name → network port id
        networks: dict[str, pipeline.NetworkPlan] = {}
        for port in ports:
            try:
                plan, net = self._plug(port, interfaces, vlans)
            except (PlugError, OvsError) as exc:
                done.results[port["id"]] = PortResult("ERROR", str(exc))
                continue
            networks[net.network_id] = net
            for name in _members(port):
                wanted_names[name] = port["id"]
            done.ports_plugged.append(port["id"])
            rule_set = pipeline.resolve_rules(port.get("security_groups", []), rules, members)
            groups.append(pipeline.port_group(br, _with_rules(plan, rule_set)))
        for net in networks.values():
            groups += pipeline.network_groups(br, net)
        # Ours but no longer wanted: dead VLAN, dropped.
        interfaces = {i.name: i for i in self.ovs.interfaces(br)}
        unplug = [
            i
            for i in interfaces.values()
            if i.external_ids.get(OWNER) and i.name not in wanted_names
        ]
        for iface in unplug:
            if iface.ofport > 0:
                groups.append(pipeline.unbound_group(br, iface.name, iface.ofport))
        self._apply(groups, actual, done, remove=True)
        for iface in unplug:
            if iface.tag != pipeline.DEAD_VLAN or iface.external_ids.get("iface-id"):
                self._park(iface.name)
                done.ports_unplugged.append(iface.name)
        for port_id in done.ports_plugged:
            done.results[port_id] = PortResult("ACTIVE")
        return done

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

    def _plug(
        self, port: dict[str, Any], interfaces: dict[str, Interface], vlans: dict[str, int]
    ) -> tuple[pipeline.PortPlan, pipeline.NetworkPlan]:
        net = self._network(port, vlans)
        names = _members(port)
        if not names:
            raise PlugError("the binding names no NIC port (local_link_information.port_id)")
        br = self.config.integration_bridge
        ofports: list[int] = []
        for name in names:
            iface = interfaces.get(name)
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
            if not right:
                cmd = [
                    "--may-exist",
                    "add-port",
                    br,
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
                self.ovs.vsctl(*cmd)
                iface = next((i for i in self.ovs.interfaces(br) if i.name == name), None)
            if iface is None or iface.ofport <= 0:
                why = iface.error if iface is not None and iface.error else "no such device"
                self._park(name, remove_if_broken=True)
                raise PlugError(f"NIC port {name} is missing on {self.config.host} ({why})")
            ofports.append(iface.ofport)
        plan = pipeline.PortPlan(
            port_id=port["id"],
            mac=port["mac_address"],
            local_vlan=net.local_vlan,
            ofports=tuple(ofports),
            bond_mode=(port.get("local_group_information") or {}).get("bond_mode"),
            port_security=bool(port.get("port_security_enabled", True)),
        )
        return plan, net

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

    def _park(self, name: str, remove_if_broken: bool = False) -> None:
        """Back to the dead VLAN, no longer bound (still ours, still dropped)."""
        br = self.config.integration_bridge
        if remove_if_broken:
            self.ovs.vsctl("--if-exists", "del-port", br, name)
            return
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
            self.ovs.bundle(bridge, lines)
            if lines:
                actual[bridge] = self._cookies(bridge)


class PlugError(Exception):
    """A port cannot be plugged; the message is the reason reported to the server."""


def _members(port: dict[str, Any]) -> list[str]:
    links = port.get("local_link_information") or []
    return [
        str(link["port_id"]) for link in links if isinstance(link, dict) and link.get("port_id")
    ]


def _with_rules(plan: pipeline.PortPlan, rules: tuple[pipeline.Rule, ...]) -> pipeline.PortPlan:
    return pipeline.PortPlan(
        port_id=plan.port_id,
        mac=plan.mac,
        local_vlan=plan.local_vlan,
        ofports=plan.ofports,
        bond_mode=plan.bond_mode,
        port_security=plan.port_security,
        rules=rules,
    )
