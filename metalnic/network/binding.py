"""Port binding: which agent plugs a port, decided from the port and live agents.

A ``smart-nic`` port binds only to a live Open vSwitch agent that serves
exactly its ``binding:host_id`` (the NIC host from the bare-metal port's
``local_link_connection.hostname``) and declares smart NIC support, and only
when the binding profile carries ``local_link_information``: one entry per
NIC port, several for a bond (then all on this host, each a distinct port).  The decision is
pure; ``NetworkService.bind`` commits it if the port did not change meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metalnic.network.models import Agent, Network, NetworkPort


@dataclass(frozen=True)
class Decision:
    vif_type: str  # unbound | ovs | binding_failed
    vif_details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def _serves(agent: Agent, host: str) -> bool:
    return host in agent.configurations.get("nic_hosts", [agent.host])


def bind_decision(port: NetworkPort, net: Network, live: list[Agent]) -> Decision:
    if not port.host_id:
        return Decision("unbound")
    if port.vnic_type != "smart-nic":
        return Decision("unbound")  # only smart NIC ports are bound by metalnic's agents
    links = port.profile.get("local_link_information")
    if not isinstance(links, list) or not links or not all(isinstance(x, dict) for x in links):
        return Decision("binding_failed", reason="binding:profile has no local_link_information")
    if any(x.get("hostname") != port.host_id or not x.get("port_id") for x in links):
        return Decision(
            "binding_failed",
            reason=(
                "local_link_information must name this host (hostname) and the NIC port (port_id)"
            ),
        )
    if len({x["port_id"] for x in links}) != len(links):
        return Decision("binding_failed", reason="local_link_information names one NIC port twice")
    agents = [a for a in live if _serves(a, port.host_id)]
    if not agents:
        return Decision(
            "binding_failed", reason=f"no live Open vSwitch agent serves NIC host {port.host_id}"
        )
    agent = agents[0]
    if not agent.configurations.get("smartnic", False):
        return Decision(
            "binding_failed", reason=f"agent on {agent.host} does not declare smart NIC support"
        )
    physnets = agent.configurations.get("bridge_mappings", {})
    if net.physical_network and physnets and net.physical_network not in physnets:
        return Decision(
            "binding_failed",
            reason=(
                f"agent on {agent.host} has no bridge for physical network {net.physical_network}"
            ),
        )
    remote = any(k in links[0] for k in ("ovsdb_cert", "ssh_public_key"))
    return Decision(
        "ovs",
        {
            "agent_host": agent.host,
            "mode": agent.configurations.get("mode", "local"),
            "remote_nic": remote,
            "port_filter": True,
        },
    )
