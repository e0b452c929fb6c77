"""The smart NIC agent process: heartbeats, one worker per NIC following its feed.

The process shell (heartbeats, long polls, retries, stopping) is the one every
agent shares (``process.py``); this module is what is the NIC agent's own.
A worker long-polls its NIC host's feed (woken by the server's commit), runs a
reconcile pass, and reports port statuses with the revision it applied.  Even
without changes it reconciles every ``resync_interval`` seconds (the long-poll
timeout), which is how an OVS restart or a NIC reboot is noticed and repaired.
When the server is unreachable the NIC keeps what is programmed and the worker
retries with backoff, then resyncs in full; when the NIC's OVS is unreachable
the reason is reported per port and retried.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from metalnic.agent.nic import Nic, NicConfig, Pass
from metalnic.agent.ovs import Endpoint, Ovs, OvsError
from metalnic.agent.process import AgentProcess, ProcessConfig, message
from metalnic.agent.remote import IdentityError, RemoteNic
from metalnic.agent.sshchannel import SshTarget
from metalnic.contract import agent as ac

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NicSpec:
    config: NicConfig
    endpoint: Endpoint
    remote: bool = False
    ssh: SshTarget | None = None  # remote: the NIC's SSH server


@dataclass(frozen=True, kw_only=True)
class AgentConfig(ProcessConfig):
    nics: tuple[NicSpec, ...]
    mode: str = "local"
    # Remote mode: the agent's own TLS identity towards the NICs (files).
    private_key: str | None = None
    certificate: str | None = None
    ssh_private_key: str | None = None  # the agent's SSH key towards the NICs (file)
    state_dir: str = "/var/lib/metalnic-agent"


class Agent(AgentProcess[AgentConfig]):
    """The smart NIC agent: the process shell of ``process.py``, one worker per NIC."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self.passes: dict[str, Pass] = {}  # the last pass per NIC host (status, tests)
        self.nics: dict[str, Nic] = {}

    def heartbeat(self) -> ac.Heartbeat:
        return ac.Heartbeat(
            host=self.config.host,
            configurations=ac.AgentConfigurations(
                mode="remote" if self.config.mode == "remote" else "local",
                nic_hosts=[n.config.host for n in self.config.nics],
                smartnic=True,
                bridge_mappings=_mappings(self.config.nics),
                nic_netdevs=_netdevs(self.nics),
            ),
        )

    def workers(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            (f"nic-{spec.config.host}", functools.partial(self._work, spec))
            for spec in self.config.nics
        ]

    # --- one NIC ----------------------------------------------------------------------

    def _work(self, spec: NicSpec) -> None:
        host = spec.config.host
        nic = self.nics[host] = self._nic(spec)

        def apply(desired: ac.DesiredState) -> int | None:
            done = self._pass(nic, spec, desired)
            return desired.revision if done is not None else None

        path = f"/metalnic/hosts/{host}/desired"
        self.follow(path, ac.DesiredState, f"desired state of {host}", apply)

    def _nic(self, spec: NicSpec) -> Nic:
        ovs = Ovs(spec.endpoint)
        if spec.remote:
            return RemoteNic(ovs, spec.config, self.config, spec.ssh)
        return Nic(ovs, spec.config)

    def _pass(self, nic: Nic, spec: NicSpec, desired: ac.DesiredState) -> Pass | None:
        """Reconcile and report; None when the NIC could not be programmed at all."""
        host = spec.config.host
        started = time.monotonic()
        try:
            done = nic.reconcile(desired)
        except (OvsError, IdentityError) as exc:
            log.error("NIC %s cannot be programmed: %s", host, exc)
            status = exc.status if isinstance(exc, IdentityError) else "ERROR"
            error = ac.PortStatus(status=status, reason=f"NIC {host}: {exc}")
            self._report(host, ac.Report(ports={p.id: error for p in desired.ports}))
            return None
        self.passes[host] = done
        _log_pass(host, desired.revision, done, time.monotonic() - started)
        report = ac.Report(
            ports=_news(desired, done),
            verified=_verify(nic, desired.verify),
            applied_revision=desired.revision,
        )
        self._report(host, report)
        return done

    def _report(self, host: str, report: ac.Report) -> None:
        body = report.model_dump(mode="json")
        if report.applied_revision is None:
            del body["applied_revision"]  # not programmed: nothing to say
        try:
            r = self.http.post(f"/metalnic/hosts/{host}/report", json=body)
            if r.status_code != 204:
                log.error("report for %s refused (%s): %s", host, r.status_code, message(r))
        except httpx.HTTPError as exc:
            log.warning("report for %s failed: %s", host, type(exc).__name__)


def _log_pass(host: str, revision: int, done: Pass, seconds: float) -> None:
    if done.restarted:
        log.warning("NIC %s had lost its flows (OVS restarted?); reprogrammed", host)
    if done.flows_added or done.groups_removed or done.ports_unplugged:
        log.info(
            "NIC %s revision %s: %d flows added, %d groups removed, %d ports unplugged in %.1f ms",
            host,
            revision,
            done.flows_added,
            done.groups_removed,
            len(done.ports_unplugged),
            seconds * 1000,
        )


def _news(desired: ac.DesiredState, done: Pass) -> dict[str, ac.PortStatus]:
    """What to report: the statuses the server does not know yet, and every error
    (with its reason)."""
    known = {p.id: p.status for p in desired.ports}
    return {
        port_id: result
        for port_id, result in done.results.items()
        if known.get(port_id) != result.status or result.reason
    }


def _verify(nic: Nic, questions: list[ac.VerifyRequest]) -> dict[str, dict[str, ac.PlugAnswer]]:
    """The answers to the server's boot-gate questions, read from OVS now (a port OVS
    cannot be read for is not plugged, with the reason)."""
    verified: dict[str, dict[str, ac.PlugAnswer]] = {}
    for question in questions:
        try:
            verified[question.id] = nic.verify(question.ports)
        except OvsError as exc:
            unread = ac.PlugAnswer(plugged=False, reason=f"OVS cannot be read: {exc}")
            verified[question.id] = {p: unread for p in question.ports}
    return verified


# Netdevs in one heartbeat at most (~45 bytes each): the heartbeat must stay well under
# the server's request body limit (112 KiB by default) however many NICs report.
MAX_REPORTED_NETDEVS = 1000


def _netdevs(nics: dict[str, Nic]) -> dict[str, dict[str, str]]:
    """The remote NICs' netdevs for the heartbeat (name → MAC), in NIC and name order, up
    to ``MAX_REPORTED_NETDEVS`` in all; the planner uses every one regardless."""
    out: dict[str, dict[str, str]] = {}
    room = MAX_REPORTED_NETDEVS
    for host, nic in sorted(list(nics.items())):
        if isinstance(nic, RemoteNic) and nic.inventory and room > 0:
            names = sorted(nic.inventory)[:room]
            out[host] = {name: nic.inventory[name] for name in names}
            room -= len(names)
    return out


def _mappings(nics: tuple[NicSpec, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in nics:
        out.update(spec.config.bridge_mappings)
    return out
