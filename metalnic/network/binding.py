"""Port binding: which agent plugs a port, decided from the port and its NIC host's agent.

A ``smart-nic`` port binds only to the live Open vSwitch agent that serves
its ``binding:host_id`` (the NIC host from the bare-metal port's
``local_link_connection.hostname``; ``network/agents.py`` says which agent
that is) and declares smart NIC support, and only when the binding profile
carries ``local_link_information``: one entry per NIC port, several for a
bond (then all on this host, each a distinct port).  A profile for a remote
NIC (its links carry the NIC's ``ovsdb_cert``) needs an agent in remote mode,
a local NIC one in local mode.  The decision is pure; ``Ports.bind`` (ports.py)
commits it if the port did not change meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metalnic.network.models import Agent, Network, NetworkPort


@dataclass(frozen=True)
class Decision:
    vif_type: str  # unbound | ovs | binding_failed
    vif_details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def bind_decision(port: NetworkPort, net: Network, agent: Agent | None) -> Decision:
    """``agent``: the live agent serving ``port.host_id`` (``agents.serving``), if any.
    The first problem found is the reason, in this order: the profile, then the agent."""
    if not port.host_id:
        return Decision("unbound")
    if port.vnic_type != "smart-nic":
        return Decision("unbound")  # only smart NIC ports are bound by metalnic's agents
    links = port.profile.get("local_link_information", [])
    problem = _links_problem(links, port.host_id)
    if problem:
        return _failed(problem)
    if agent is None:
        return _failed(f"no live Open vSwitch agent serves NIC host {port.host_id}")
    problem = _agent_problem(links, net, agent, port.host_id)
    if problem:
        return _failed(problem)
    mode = agent.configurations.get("mode", "local")
    details = {"agent_host": agent.host, "mode": mode, "remote_nic": mode == "remote"}
    return Decision("ovs", {**details, "port_filter": True})


def _failed(reason: str) -> Decision:
    return Decision("binding_failed", reason=reason)


def _links_problem(links: object, nic_host: str) -> str | None:
    """What is wrong with ``local_link_information``: it must list the NIC ports, each
    naming this host and a port, no port twice (None: nothing)."""
    if not isinstance(links, list) or not links or not all(isinstance(x, dict) for x in links):
        return "binding:profile has no local_link_information"
    if any(x.get("hostname") != nic_host or not x.get("port_id") for x in links):
        return "local_link_information must name this host (hostname) and the NIC port (port_id)"
    if len({x["port_id"] for x in links}) != len(links):
        return "local_link_information names one NIC port twice"
    return None


def _agent_problem(
    links: Sequence[Mapping[str, object]], net: Network, agent: Agent, nic_host: str
) -> str | None:
    """Why the agent serving the NIC host cannot plug these links: all of them remote
    NICs (with ``ovsdb_cert``) or all local, as its mode; smart NIC support; a bridge for
    the network's physical network when the agent lists its bridges (None: it can)."""
    remote = {bool(x.get("ovsdb_cert")) for x in links}
    if len(remote) != 1:
        return "local_link_information mixes remote NIC ports (with ovsdb_cert) and local ones"
    mismatch = _mode_mismatch(remote.pop(), agent, nic_host)
    if mismatch:
        return mismatch
    if not agent.configurations.get("smartnic", False):
        return f"agent on {agent.host} does not declare smart NIC support"
    physnets = agent.configurations.get("bridge_mappings", {})
    if net.physical_network and physnets and net.physical_network not in physnets:
        return f"agent on {agent.host} has no bridge for physical network {net.physical_network}"
    return None


def _mode_mismatch(remote: bool, agent: Agent, nic_host: str) -> str | None:
    """Why a remote NIC's port cannot go to a local-mode agent, or the reverse."""
    mode = agent.configurations.get("mode", "local")
    if remote and mode != "remote":
        return (
            f"binding:profile is for a remote NIC (local_link_information carries its "
            f"ovsdb_cert) but agent {agent.host} serves NIC host {nic_host} in {mode} mode"
        )
    if not remote and mode == "remote":
        return (
            f"binding:profile is for a local NIC (local_link_information has no ovsdb_cert) "
            f"but agent {agent.host} serves NIC host {nic_host} in remote mode"
        )
    return None
