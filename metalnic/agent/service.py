"""The agent process: heartbeats, one worker per NIC following its desired-state feed.

A worker long-polls its NIC host's feed (woken by the server's commit), runs a
reconcile pass, and reports port statuses with the revision it applied.  Even
without changes it reconciles every ``resync_interval`` seconds (the long-poll
timeout), which is how an OVS restart or a NIC reboot is noticed and repaired.
When the server is unreachable the NIC keeps what is programmed and the worker
retries with backoff, then resyncs in full; when the NIC's OVS is unreachable
the reason is reported per port and retried.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from metalnic.agent.nic import Nic, NicConfig, Pass
from metalnic.agent.ovs import Endpoint, Ovs, OvsError
from metalnic.agent.remote import IdentityError, RemoteNic
from metalnic.contract import agent as ac

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NicSpec:
    config: NicConfig
    endpoint: Endpoint
    remote: bool = False


@dataclass(frozen=True)
class AgentConfig:
    server: str
    nics: tuple[NicSpec, ...]
    host: str = field(default_factory=socket.gethostname)
    mode: str = "local"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cacert: str | None = None
    heartbeat_interval: float = 2.0
    resync_interval: float = 5.0
    # Remote mode: the agent's own TLS identity towards the NICs (files).
    private_key: str | None = None
    certificate: str | None = None
    state_dir: str = "/var/lib/metalnic-agent"


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.passes: dict[str, Pass] = {}  # the last pass per NIC host (status, tests)
        auth = (config.username, config.password or "") if config.username else None
        self.http = httpx.Client(
            base_url=config.server.rstrip("/") + "/network/v2.0",
            auth=auth,
            verify=config.cacert or True,
            timeout=httpx.Timeout(10.0, read=config.resync_interval + 15),
            headers={ac.CONTRACT_HEADER: str(ac.CONTRACT_VERSION)},
        )

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        self._heartbeat()  # registered before the first desired-state read
        beat = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)
        self._threads.append(beat)
        for spec in self.config.nics:
            worker = threading.Thread(
                target=self._work, args=(spec,), name=f"nic-{spec.config.host}", daemon=True
            )
            self._threads.append(worker)
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop following the feeds; what is programmed on the NICs stays as it is."""
        self._stop.set()
        for thread in self._threads:
            # A worker in a long-poll finishes within resync_interval; don't wait longer
            # than a moment for it (daemon threads end with the process).
            thread.join(timeout=2.0)
        self.http.close()

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    # --- heartbeats -------------------------------------------------------------------

    def _heartbeat(self) -> bool:
        body = ac.Heartbeat(
            host=self.config.host,
            configurations=ac.AgentConfigurations(
                mode="remote" if self.config.mode == "remote" else "local",
                nic_hosts=[n.config.host for n in self.config.nics],
                smartnic=True,
                bridge_mappings=_mappings(self.config.nics),
            ),
        )
        try:
            r = self.http.post("/metalnic/agents/heartbeat", json=body.model_dump(mode="json"))
            if r.status_code != 200:
                log.error("heartbeat refused (%s): %s", r.status_code, _message(r))
                return False
            _answer(r, ac.HeartbeatReply)
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed: %s", type(exc).__name__)
            return False
        except ServerError as exc:
            log.error("heartbeat answer refused: %s", exc)
            return False
        return True

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.config.heartbeat_interval):
            self._heartbeat()

    # --- one NIC ----------------------------------------------------------------------

    def _work(self, spec: NicSpec) -> None:
        host = spec.config.host
        nic = self._nic(spec)
        revision: int | None = None  # None: full resync next
        backoff = 0.5
        while not self._stop.is_set():
            try:
                params: dict[str, int] = {}
                if revision is not None:
                    params = {"since": revision, "wait": int(max(1, self.config.resync_interval))}
                r = self.http.get(f"/metalnic/hosts/{host}/desired", params=params)
                if r.status_code != 200:
                    raise ServerError(f"desired state of {host}: {r.status_code} {_message(r)}")
                desired = _answer(r, ac.DesiredState)
            except (httpx.HTTPError, ServerError) as exc:
                # Keep what is programmed; come back with a full resync.
                log.warning("no desired state for %s (%s); retrying", host, exc)
                revision = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            done = self._pass(nic, spec, desired)
            revision = desired.revision if done is not None else None
            if done is None:
                self._stop.wait(1.0)

    def _nic(self, spec: NicSpec) -> Nic:
        ovs = Ovs(spec.endpoint)
        if spec.remote:
            return RemoteNic(ovs, spec.config, self.config)
        return Nic(ovs, spec.config)

    def _pass(self, nic: Nic, spec: NicSpec, desired: ac.DesiredState) -> Pass | None:
        """Reconcile and report; None when the NIC could not be programmed at all."""
        host = spec.config.host
        started = time.monotonic()
        try:
            done = nic.reconcile(desired)
        except (OvsError, IdentityError) as exc:
            log.error("NIC %s cannot be programmed: %s", host, exc)
            error = ac.PortStatus(status="ERROR", reason=f"NIC {host}: {exc}")
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
                log.error("report for %s refused (%s): %s", host, r.status_code, _message(r))
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


class ServerError(Exception):
    pass


def _mappings(nics: tuple[NicSpec, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in nics:
        out.update(spec.config.bridge_mappings)
    return out


M = TypeVar("M", bound=BaseModel)


def _answer(r: httpx.Response, model: type[M]) -> M:
    """The server's answer as the contract's ``model``: of this contract version, well formed."""
    mismatch = ac.version_mismatch(r.headers.get(ac.CONTRACT_HEADER), "agent", "server")
    if mismatch:
        raise ServerError(mismatch)
    try:
        return model.model_validate_json(r.content)
    except ValidationError as exc:
        why = f"the server's answer does not follow the agent contract: {exc}"
        raise ServerError(why) from None


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("NeutronError", {}).get("message") or body)
    except ValueError:
        return r.text[:200]
