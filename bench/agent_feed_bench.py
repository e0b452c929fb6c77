"""The agent feed's cost in the contract's models, in process: one desired state of N ports.

    .venv/bin/python bench/agent_feed_bench.py --ports 200

server: build the answer and render it (the database read is the same either way):
        plain dicts rendered by the API's JSON response (what the server does: the
        route declares ``DesiredState`` and tests check answers against it) vs the
        contract's models built with ``model_construct`` (no validation of our own
        rows), dumped and rendered the same way (measured, and not done: far slower);
agent:  read the answer: ``json`` alone (before) vs ``DesiredState.model_validate_json``
        (the agent checks what it is given against the contract);
plan:   the planner (``plan.decide``) for those ports on a NIC where every port is
        plugged: programming all flows from nothing, and a converged NIC (plans nothing);
        with the flows per port.  ``--addresses``: each port has a fixed IPv4 and IPv6
        address, an allowed address pair (a CIDR with another MAC) and a DHCP server, so
        the anti-spoofing flows (issue 13) are planned.

Prints the numbers; asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalnic.agent import plan  # noqa: E402
from metalnic.agent.ovs import Interface  # noqa: E402
from metalnic.contract import agent as ac  # noqa: E402
from metalnic.httpjson import JSONResponse  # noqa: E402


def rows(
    n: int, addresses: bool = False
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    ports = [
        {
            "id": f"port-{i:04d}",
            "mac_address": f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
            "admin_state_up": True,
            "device_id": f"node-{i}",
            "network_id": f"net-{i % 4}",
            "network_type": "vlan",
            "physical_network": "physnet1",
            "segmentation_id": 100 + i % 4,
            "local_link_information": [
                {"port_id": f"pf{i}b{j}", "hostname": "nic-1", "switch_info": "nic-1"}
                for j in range(2)
            ],
            "local_group_information": {"bond_mode": "balance-xor"},
            "port_security_enabled": True,
            "security_groups": ["sg-1"],
            "status": "ACTIVE",
            **(_addresses(i) if addresses else {}),
        }
        for i in range(n)
    ]
    rule = {
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": None,
        "remote_group_id": None,
    }
    return ports, {"sg-1": [rule, {**rule, "port_range_min": 80, "port_range_max": 80}]}


def _addresses(i: int) -> dict[str, Any]:
    return {
        "fixed_ips": [
            {"subnet_id": "v4", "ip_address": f"10.{i // 256}.{i % 256}.10"},
            {"subnet_id": "v6", "ip_address": f"2001:db8::{i:x}:10"},
        ],
        "allowed_address_pairs": [
            {"ip_address": f"10.200.{i % 256}.0/28", "mac_address": "fa:16:3e:00:00:01"}
        ],
        "dhcp_servers": [{"mac_address": "fa:16:3e:dd:00:01", "ip_addresses": ["10.0.0.2"]}],
    }


_ADDRESS_MODELS: dict[str, type[ac.Received]] = {
    "fixed_ips": ac.FixedIp,
    "allowed_address_pairs": ac.AddressPair,
    "dhcp_servers": ac.DhcpServer,
}


def plan_nic(state: ac.DesiredState) -> tuple[plan.Observed, plan.NicConfig]:
    """A NIC where every port of ``state`` is plugged (no flows yet)."""
    config = plan.NicConfig(host="nic-1")
    vlans = plan.local_vlans({}, state.ports)
    interfaces: dict[str, Interface] = {}
    for port in state.ports:
        for name in port.members():
            ids = {"iface-id": port.id, "iface-status": "active", "attached-mac": port.mac_address,
                   plan.OWNER: "agent", "node-uuid": str(port.device_id)}  # fmt: skip
            interfaces[name] = Interface(
                name, len(interfaces) + 1, ids, None, tag=vlans[port.network_id],
                port_other_config={plan.NET_KEY: port.network_id},
            )  # fmt: skip
    cookies = {b: Counter({0xCA << 56: 1}) for b in ("br-int", "br-phys")}
    return plan.Observed(interfaces, cookies), config


def render_dicts(ports: list[dict[str, Any]], groups: dict[str, Any]) -> bytes:
    out = [dict(p) for p in ports]
    state = {"host": "nic-1", "revision": 9, "applied": 8, "ports": out,
             "security_groups": {g: [dict(r) for r in rs] for g, rs in groups.items()},
             "members": {}, "verify": []}  # fmt: skip
    return bytes(JSONResponse(state).body)


def render_models(ports: list[dict[str, Any]], groups: dict[str, Any]) -> bytes:
    out = [
        ac.DesiredPort.model_construct(
            **{
                **p,
                "local_link_information": [
                    ac.LinkInformation.model_construct(**x) for x in p["local_link_information"]
                ],
                "local_group_information": ac.GroupInformation.model_construct(
                    **p["local_group_information"]
                ),
                **{
                    key: [model.model_construct(**x) for x in p[key]]
                    for key, model in _ADDRESS_MODELS.items()
                    if key in p
                },
            }
        )
        for p in ports
    ]
    rules = {g: [ac.SecurityGroupRule.model_construct(**r) for r in rs] for g, rs in groups.items()}
    state = ac.DesiredState.model_construct(
        host="nic-1", revision=9, applied=8, ports=out, security_groups=rules, members={},
        verify=[],
    )  # fmt: skip
    return bytes(JSONResponse(state.model_dump(exclude_unset=True)).body)


def timed(label: str, fn: Callable[[], object], rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    p50 = statistics.median(samples)
    print(f"  {label:<44} p50={p50:7.2f} ms  min={min(samples):7.2f} ms  (n={rounds})")
    return p50


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ports", type=int, default=200)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--addresses", action="store_true", help="fixed IPs, pairs, DHCP servers")
    a = p.parse_args()
    ports, groups = rows(a.ports, a.addresses)
    assert json.loads(render_dicts(ports, groups)) == json.loads(render_models(ports, groups))
    raw = render_models(ports, groups)
    print(f"desired state of {a.ports} ports ({len(raw)} bytes)")
    print("server (build + render):")
    timed("plain dicts (the server's way)", lambda: render_dicts(ports, groups), a.rounds)
    timed("models, model_construct + dump", lambda: render_models(ports, groups), a.rounds)
    print("agent (read the answer):")
    timed("json.loads (before)", lambda: json.loads(raw), a.rounds)
    timed("DesiredState.model_validate_json (after)",
          lambda: ac.DesiredState.model_validate_json(raw), a.rounds)  # fmt: skip
    state = ac.DesiredState.model_validate_json(raw)
    empty, config = plan_nic(state)
    first = plan.decide(state, empty, config)
    flows = [a for a in first.actions if isinstance(a, plan.ProgramFlows)]
    holds = {b: Counter(dict(f.holds)) for f in flows for b in [f.bridge]}
    converged = plan.Observed(empty.interfaces, holds)
    assert plan.decide(state, converged, config).actions == []
    per_port = [len(e.flows.flows) for e in first.expected.values()]
    print(f"plan ({len(per_port)} ports, {sum(f.added for f in flows)} flows, "
          f"{min(per_port)}-{max(per_port)} flows per port of 2 bond members):")  # fmt: skip
    timed("decide: every flow from nothing", lambda: plan.decide(state, empty, config), a.rounds)
    timed("decide: converged (nothing to do)",
          lambda: plan.decide(state, converged, config), a.rounds)  # fmt: skip


if __name__ == "__main__":
    main()
