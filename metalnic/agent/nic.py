"""One smart NIC: observe OVS → plan (``plan.py``, pure) → apply, until nothing is left to do.

Reconcile, never replay.  Each pass reads what OVS has (bridges, the ports on
br-int with their tags and external_ids, the flow cookies), asks the planner
for the actions that make it as desired, and applies them; running it twice
changes nothing the second time and an agent restart does not touch traffic
that is already right.  The agent owns only what it marked: ports with
``external_ids:metalnic-owner`` and flows with its cookie kinds.

The planner's steps keep a host from reaching a network early (deny first,
then plug, then flows: see ``plan.py``); after a step that restarts the base
pipeline or plugs ports this module reads the ports again (OVS assigns their
ofports) — the flow cookies it does not read again: it knows what each bundle
left on its bridge.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from metalnic.agent import pipeline
from metalnic.agent.ovs import Ovs, OvsError
from metalnic.agent.plan import (
    NET_KEY,
    OWNER,
    Action,
    EnsureBridges,
    Expected,
    NicConfig,
    Observed,
    ParkPort,
    PlugError,
    PlugPort,
    ProgramFlows,
    RemovePort,
    bridge_commands,
    decide,
)
from metalnic.contract.agent import DesiredState, PlugAnswer, PortStatus

__all__ = ["NET_KEY", "OWNER", "Expected", "Nic", "NicConfig", "Pass", "PlugError"]  # and plan.py

log = logging.getLogger(__name__)

# Steps of one pass at most: deny first, plug, flows (and one to spare).
MAX_STEPS = 4


@dataclass
class Pass:
    """What one reconcile pass did (for reports, logs and tests)."""

    results: dict[str, PortStatus] = field(default_factory=dict)
    restarted: bool = False
    flows_added: int = 0
    groups_removed: int = 0
    ports_plugged: list[str] = field(default_factory=list)
    ports_unplugged: list[str] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)  # NIC ports plugged or removed


class Nic:
    def __init__(self, ovs: Ovs, config: NicConfig) -> None:
        self.ovs = ovs
        self.config = config
        self._ensured = False
        self.expected: dict[str, Expected] = {}
        # The NIC's netdev names when known (remote mode reads them over SSH); the
        # planner refuses a port B that is not among them.
        self.netdevs: frozenset[str] | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"ovs-{config.host}")

    # --- the pass ---------------------------------------------------------------------

    def reconcile(self, desired: DesiredState) -> Pass:
        done = Pass()
        observed = self.observe()
        for _ in range(MAX_STEPS):
            step = decide(desired, observed, self.config)
            done.restarted |= step.restarted
            cookies = self.apply(step.actions, observed.cookies, done)
            if not step.again:
                break
            interfaces = {i.name: i for i in self.ovs.state(self.config.integration_bridge)[1]}
            observed = Observed(interfaces, cookies, frozenset(done.tried), self.netdevs)
        done.results = step.results
        done.ports_plugged = step.plugged
        done.ports_unplugged = step.parked
        self.expected = step.expected
        return done

    def observe(self) -> Observed:
        """Read the NIC: flows of every bridge and the ports, at once (each read is a tool run)."""
        br = self.config.integration_bridge
        if not self._ensured:
            self._ensure_bridges(self.config.uplinks)
        reads = {b: self._pool.submit(self._cookies, b) for b in (br, *self.config.uplinks)}
        state = self._pool.submit(self.ovs.state, br)
        cookies = {name: future.result() for name, future in reads.items()}
        return Observed({i.name: i for i in state.result()[1]}, cookies, netdevs=self.netdevs)

    def forget(self) -> None:
        """Drop what this object remembers of the NIC (it rebooted): the next pass
        ensures the bridges again and plans from what it reads alone."""
        self._ensured = False
        self.expected = {}

    def apply(
        self, actions: list[Action], cookies: Mapping[str, Counter[int]], done: Pass
    ) -> dict[str, Counter[int]]:
        """Run ``actions`` in order; the bridges' cookies afterwards (without reading back)."""
        after = {b: Counter(c) for b, c in cookies.items()}
        plugs = [a for a in actions if isinstance(a, PlugPort)]
        if plugs:  # a step of plugs (plan.py): all in one transaction
            self._plug(plugs, done)
        bundles: list[ProgramFlows] = []
        for action in actions:
            if isinstance(action, EnsureBridges):
                self._ensure_bridges(self.config.uplinks)
            elif isinstance(action, RemovePort):
                br = self.config.integration_bridge
                self.ovs.vsctl("--if-exists", "del-port", br, action.name)
                done.tried.add(action.name)
            elif isinstance(action, ProgramFlows):
                bundles.append(action)
                after[action.bridge] = Counter(dict(action.holds))
                done.flows_added += action.added
                done.groups_removed += action.removed
            elif isinstance(action, ParkPort):
                self._flush(bundles)  # the drop flow goes in before the port is parked
                self._park(action.name)
        self._flush(bundles)
        return after

    def _flush(self, bundles: list[ProgramFlows]) -> None:
        """Each bridge's bundle is atomic; bridges are independent: apply them at once."""
        futures = [self._pool.submit(self.ovs.bundle, b.bridge, list(b.lines)) for b in bundles]
        bundles.clear()
        for future in futures:
            future.result()

    def verify(self, port_ids: list[str]) -> dict[str, PlugAnswer]:
        """The boot gate's question, answered from OVS read now — not from this object's
        memory of what it did: each port B on br-int in its network's VLAN with the
        port's external_ids, and every flow of the port on the bridge."""
        br = self.config.integration_bridge
        interfaces = {i.name: i for i in self.ovs.state(br)[1]}
        cookies = self._cookies(br)
        out: dict[str, PlugAnswer] = {}
        for port_id in port_ids:
            want = self.expected.get(port_id)
            if want is None:
                reason = f"port {port_id} is not bound on {self.config.host}"
                out[port_id] = PlugAnswer(plugged=False, reason=reason)
            else:
                out[port_id] = want.answer(port_id, interfaces, cookies)
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
        self.ovs.vsctl(*bridge_commands(self.config, missing))
        self._ensured = True

    # --- ports ------------------------------------------------------------------------

    def _plug(self, plugs: list[PlugPort], done: Pass) -> None:
        """All plugs in one transaction; if it fails, one by one to find the bad one
        (a port B that cannot be added is then reported by the planner's next step)."""
        done.tried.update(p.name for p in plugs)
        try:
            joined: list[str] = []
            for p in plugs:
                joined += ["--", *p.command]
            self.ovs.vsctl(*joined[1:])
        except OvsError:
            for p in plugs:
                try:
                    self.ovs.vsctl(*p.command)
                except OvsError as exc:
                    log.warning("plugging %s failed: %s", p.name, exc)

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
