"""The DHCP agent process (``metalnic dhcp-agent``): heartbeats, follows its desired state.

Like Neutron's DHCP agent on a network node: one process per DHCP host, one
dnsmasq per network it serves (``driver.py``).  It registers with the smart
NIC agent's heartbeat (``agent_type`` "DHCP agent", binary
``metalnic-dhcp-agent``; it claims no NIC host), so ``/v2.0/agents`` lists it
and shows it dead once it stops.  It long-polls
``/metalnic/dhcp-agents/{host}/desired`` (``metalnic/contract/dhcp.py``) and
reconciles on every change and at least every ``resync_interval`` seconds.
Stopping the agent leaves dnsmasq running (leases keep being answered); a
restarted agent finds its dnsmasq again and changes nothing that is right.
The process around the driver (heartbeats, the long poll, retries, stopping)
is the smart NIC agent's too (``metalnic/agent/process.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from metalnic.agent.process import AgentProcess, ProcessConfig
from metalnic.contract import agent as ac
from metalnic.contract import dhcp as dc
from metalnic.dhcp.driver import DhcpDriver, DriverConfig, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DhcpAgentConfig(ProcessConfig):
    driver: DriverConfig


class DhcpAgent(AgentProcess[DhcpAgentConfig]):
    """The DHCP agent: the process shell of ``metalnic/agent/process.py``, one worker."""

    role = "DHCP agent"

    def __init__(self, config: DhcpAgentConfig) -> None:
        super().__init__(config)
        self.driver = DhcpDriver(config.driver)
        # Networks and host entries in the last desired state (the heartbeat shows them).
        self.served = 0
        self.ports = 0
        self.last: Outcome | None = None

    def heartbeat(self) -> ac.Heartbeat:
        return ac.Heartbeat(
            host=self.config.host,
            agent_type=dc.DHCP_AGENT,
            binary=dc.DHCP_BINARY,
            configurations=ac.AgentConfigurations.model_validate(
                {
                    "bridge_mappings": dict(self.config.driver.bridge_mappings),
                    "dhcp_driver": "dnsmasq",
                    "dhcp_lease_duration": self.config.driver.lease_time,
                    # As Neutron's DHCP agent reports them (from its last desired state).
                    "networks": self.served,
                    "ports": self.ports,
                }
            ),
        )

    def workers(self) -> list[tuple[str, Callable[[], None]]]:
        return [("dhcp", self._work)]

    # --- the desired state --------------------------------------------------------------

    def _work(self) -> None:
        path = f"/metalnic/dhcp-agents/{self.config.host}/desired"
        self.follow(path, dc.DhcpDesiredState, "desired DHCP state", self._apply)

    def _apply(self, desired: dc.DhcpDesiredState) -> int | None:
        self.last = self.driver.reconcile(desired)
        self.served = len(desired.networks)
        self.ports = sum(len(n.hosts) for n in desired.networks)
        _log_outcome(desired.revision, self.last)
        return desired.revision if not self.last.errors else None


def _log_outcome(revision: int, done: Outcome) -> None:
    if done.started or done.reloaded or done.removed:
        log.info(
            "revision %s: dnsmasq started for %s, reloaded for %s; removed %s",
            revision,
            done.started,
            done.reloaded,
            done.removed,
        )
