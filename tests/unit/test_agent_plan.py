"""The agent's planner without root: desired state + observed OVS → actions, step by step.

A small OVS stand-in (``apply`` below) does to the observed state what the
real applier makes OVS do — ofports for plugged ports, the flows a bundle
leaves, parking — so every rule of a pass is checked: deny first, then plug,
then flows; unplug; bonds; security-group changes; a port OVS cannot add;
and that a converged NIC plans nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from metalnic.agent import pipeline
from metalnic.agent.ovs import Interface
from metalnic.agent.plan import (
    OWNER,
    Action,
    Decision,
    EnsureBridges,
    NicConfig,
    Observed,
    ParkPort,
    PlugPort,
    ProgramFlows,
    RemovePort,
    bridge_commands,
    decide,
    plan,
)
from metalnic.contract.agent import DesiredState

CONFIG = NicConfig(host="nic-1", bridge_mappings={"physnet1": "br-phys"})
BRIDGES = ("br-int", "br-phys")
MAC = "52:54:00:00:00:01"


def port(ident: str = "p1", links: tuple[str, ...] = ("pfb0",), **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "mac_address": extra.pop("mac", MAC),
        "network_id": "net-1",
        "network_type": "vlan",
        "physical_network": "physnet1",
        "segmentation_id": 100,
        "device_id": "node-1",
        "local_link_information": [{"port_id": n, "hostname": "nic-1"} for n in links],
        "security_groups": ["sg-1"],
        "status": "DOWN",
        **extra,
    }


def desired(*ports: dict[str, Any], rules: list[dict[str, Any]] | None = None) -> DesiredState:
    return DesiredState.model_validate(
        {
            "host": "nic-1",
            "revision": 1,
            "ports": list(ports),
            "security_groups": {"sg-1": rules if rules is not None else [EGRESS]},
        }
    )


EGRESS = {"direction": "egress", "ethertype": "IPv4"}
SSH = {"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}


class FakeOvs:
    """What OVS does with the planner's actions (ofports from 1, flows as bundled)."""

    def __init__(self, devices: tuple[str, ...] = ("pfb0", "pfb1")) -> None:
        self.devices = set(devices)
        self.interfaces: dict[str, Interface] = {}
        self.cookies: dict[str, Counter[int]] = {b: Counter() for b in BRIDGES}
        self.tried: set[str] = set()
        self.next_ofport = 1

    def observed(self) -> Observed:
        return Observed(dict(self.interfaces), dict(self.cookies), frozenset(self.tried))

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, PlugPort):
                self.tried.add(action.name)
                self._plug(action)
            elif isinstance(action, RemovePort):
                self.tried.add(action.name)
                self.interfaces.pop(action.name, None)
            elif isinstance(action, ProgramFlows):
                self.cookies[action.bridge] = Counter(dict(action.holds))
            elif isinstance(action, ParkPort):
                iface = self.interfaces[action.name]
                ids = {k: v for k, v in iface.external_ids.items() if k == OWNER}
                self.interfaces[action.name] = replace(
                    iface, tag=pipeline.DEAD_VLAN, external_ids=ids, port_other_config={}
                )

    def _plug(self, action: PlugPort) -> None:
        args = action.command
        old = self.interfaces.get(action.name)
        ofport = old.ofport if old is not None else -1
        if ofport <= 0 and action.name in self.devices:
            ofport, self.next_ofport = self.next_ofport, self.next_ofport + 1
        tag = next(int(a.split("=")[1]) for a in args if a.startswith("tag="))
        ids = dict(
            a.removeprefix("external_ids:").split("=", 1) for a in args if "external_ids:" in a
        )
        net = next(a.split("=", 1)[1] for a in args if a.startswith("other_config:"))
        error = None if ofport > 0 else "could not open network device (No such device)"
        self.interfaces[action.name] = Interface(
            action.name, ofport, ids, error, tag=tag, port_other_config={"metalnic-network": net}
        )

    def converge(self, state: DesiredState) -> list[Decision]:
        """One pass: steps until the planner asks for no further observation."""
        self.tried.clear()
        steps = []
        for _ in range(4):
            step = decide(state, self.observed(), CONFIG)
            steps.append(step)
            self.apply(step.actions)
            if not step.again:
                return steps
        raise AssertionError("the planner did not finish a pass in 4 steps")


def kinds(actions: list[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def flow_lines(actions: list[Action], bridge: str = "br-int") -> list[str]:
    return [
        line
        for a in actions
        if isinstance(a, ProgramFlows) and a.bridge == bridge
        for line in a.lines
    ]


def test_deny_first_then_plug_then_flows_and_then_nothing() -> None:
    ovs = FakeOvs()
    state = desired(port())
    first, second, third = ovs.converge(state)
    # 1. A NIC without the canary: bridges again and the base pipeline alone, nothing deleted.
    assert first.restarted and first.again
    assert kinds(first.actions) == ["EnsureBridges", "ProgramFlows", "ProgramFlows"]
    assert {a.bridge for a in first.actions if isinstance(a, ProgramFlows)} == set(BRIDGES)
    assert not any(line.startswith("delete") for line in flow_lines(first.actions))
    assert any("actions=drop" in line for line in flow_lines(first.actions))
    # 2. Then the port is plugged (no flow yet: table 0 drops what it sends).
    assert kinds(second.actions) == ["PlugPort"] and second.again
    plug = second.actions[0]
    assert isinstance(plug, PlugPort) and plug.port_id == "p1" and plug.name == "pfb0"
    assert "external_ids:iface-id=p1" in plug.command and f"tag={1}" in plug.command
    # 3. Then its flows, on the ofport OVS gave it; the port is ACTIVE.
    assert not third.again and "PlugPort" not in kinds(third.actions)
    assert any("in_port=1" in line for line in flow_lines(third.actions))
    assert third.results["p1"].status == "ACTIVE" and third.plugged == ["p1"]
    assert third.expected["p1"].names == ("pfb0",)
    # Idempotence: a NIC that is as desired plans nothing.
    assert plan(state, ovs.observed(), CONFIG) == []


def test_unplug_drops_before_parking() -> None:
    ovs = FakeOvs()
    ovs.converge(desired(port()))
    (again,) = ovs.converge(desired(port()))  # converged: one step, no action
    assert again.actions == []
    (step,) = ovs.converge(desired())
    # The drop flow (br-int) and the network's uplink flows gone (br-phys), then the park.
    assert kinds(step.actions) == ["ProgramFlows", "ProgramFlows", "ParkPort"]
    lines = flow_lines(step.actions)
    assert any(line.endswith("table=0,priority=200,in_port=1,actions=drop") for line in lines)
    assert any(line.startswith("delete cookie=") for line in lines)  # the port's flows
    assert step.parked == ["pfb0"] and step.results == {}
    assert ovs.interfaces["pfb0"].tag == pipeline.DEAD_VLAN
    assert plan(desired(), ovs.observed(), CONFIG) == []


def test_admin_down_port_is_unplugged() -> None:
    ovs = FakeOvs()
    ovs.converge(desired(port()))
    (step,) = ovs.converge(desired(port(admin_state_up=False)))
    assert "ParkPort" in kinds(step.actions)


def test_bond_plugs_every_member_and_balances_over_them() -> None:
    ovs = FakeOvs()
    bond = port(links=("pfb0", "pfb1"), local_group_information={"bond_mode": "balance-xor"})
    steps = ovs.converge(desired(bond))
    plugs = [a for a in steps[1].actions if isinstance(a, PlugPort)]
    assert [p.name for p in plugs] == ["pfb0", "pfb1"]
    last = steps[-1]
    assert last.results["p1"].status == "ACTIVE"
    assert last.expected["p1"].names == ("pfb0", "pfb1")
    lines = flow_lines(last.actions)
    assert any("in_port=1" in line for line in lines) and any("in_port=2" in line for line in lines)
    assert plan(desired(bond), ovs.observed(), CONFIG) == []


def test_security_group_change_rewrites_only_the_port_flows() -> None:
    ovs = FakeOvs()
    ovs.converge(desired(port()))
    before = ovs.observed()
    (step,) = ovs.converge(desired(port(), rules=[EGRESS, SSH]))
    assert kinds(step.actions) == ["ProgramFlows"]  # no plug, no park; br-phys untouched
    (bundle,) = step.actions
    assert isinstance(bundle, ProgramFlows) and bundle.bridge == "br-int"
    assert bundle.removed == 1 and any("tp_dst=22" in line for line in bundle.lines)
    # The port's old group is gone, its new one in; every other group stays as it was.
    kept = Counter(dict(bundle.holds)).keys() & before.cookies["br-int"].keys()
    assert len(kept) == len(before.cookies["br-int"]) - 1
    assert plan(desired(port(), rules=[EGRESS, SSH]), ovs.observed(), CONFIG) == []


def test_remote_group_members_become_member_flows() -> None:
    ovs = FakeOvs()
    rules = [{"direction": "ingress", "remote_group_id": "sg-1"}]
    state = desired(port(), rules=rules)
    ovs.converge(state)
    grown = state.model_copy(update={"members": {"sg-1": [MAC, "52:54:00:00:00:99"]}})
    (step,) = ovs.converge(grown)
    assert any("52:54:00:00:00:99" in line for line in flow_lines(step.actions))
    assert plan(grown, ovs.observed(), CONFIG) == []


def test_a_port_ovs_cannot_add_is_reported_and_removed_not_retried() -> None:
    ovs = FakeOvs(devices=())  # no netdev behind pfb0
    steps = ovs.converge(desired(port()))
    assert kinds(steps[1].actions) == ["PlugPort"]
    last = steps[-1]
    assert "PlugPort" not in kinds(last.actions)  # tried once this pass
    assert RemovePort("pfb0") in last.actions  # nothing half-plugged stays behind
    assert last.results["p1"].status == "ERROR"
    assert "No such device" in str(last.results["p1"].reason)
    assert "pfb0" not in ovs.interfaces


def test_unsupported_network_is_an_error_without_any_plug() -> None:
    ovs = FakeOvs()
    steps = ovs.converge(desired(port(network_type="vxlan"), port("p2", links=())))
    assert not any(isinstance(a, PlugPort) for s in steps for a in s.actions)
    results = steps[-1].results
    assert "not supported" in str(results["p1"].reason)
    assert "names no NIC port" in str(results["p2"].reason)


def test_restarted_ovs_gets_the_base_pipeline_back_before_the_port_flows() -> None:
    ovs = FakeOvs()
    ovs.converge(desired(port()))
    ovs.cookies = {b: Counter() for b in BRIDGES}  # ovs-vswitchd restarted: flows gone
    first, last = ovs.converge(desired(port()))
    assert first.restarted and isinstance(first.actions[0], EnsureBridges)
    assert not any("in_port=1" in line for line in flow_lines(first.actions))
    assert "PlugPort" not in kinds(last.actions)  # the port itself is still right
    assert any("in_port=1" in line for line in flow_lines(last.actions))
    assert plan(desired(port()), ovs.observed(), CONFIG) == []


def test_bridges_are_secure_and_patched_and_only_missing_ones_added() -> None:
    args = bridge_commands(CONFIG, ["br-phys"])
    assert args.count("add-br") == 1 and args[args.index("add-br") + 1] == "br-phys"
    assert args.count("fail_mode=secure") == 3  # the new bridge, then every bridge
    assert "options:peer=phy-br-phys" in args and "options:peer=int-br-phys" in args
    assert "add-br" not in bridge_commands(CONFIG, [])
