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
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from metalnic.contract import agent as ac
from metalnic.contract import dhcp as dc
from metalnic.dhcp.driver import DhcpDriver, DriverConfig, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DhcpAgentConfig:
    server: str
    driver: DriverConfig
    host: str = field(default_factory=socket.gethostname)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cacert: str | None = None
    heartbeat_interval: float = 2.0
    resync_interval: float = 5.0


class ServerError(Exception):
    pass


class DhcpAgent:
    def __init__(self, config: DhcpAgentConfig) -> None:
        self.config = config
        self.driver = DhcpDriver(config.driver)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Networks and host entries in the last desired state (the heartbeat shows them).
        self.served = 0
        self.ports = 0
        self.last: Outcome | None = None
        auth = (config.username, config.password or "") if config.username else None
        self.http = httpx.Client(
            base_url=config.server.rstrip("/") + "/network/v2.0",
            auth=auth,
            verify=config.cacert or True,
            timeout=httpx.Timeout(10.0, read=config.resync_interval + 15),
            headers={ac.CONTRACT_HEADER: str(ac.CONTRACT_VERSION)},
        )

    def start(self) -> None:
        self._heartbeat()
        for target, name in ((self._beat_loop, "heartbeat"), (self._work, "dhcp")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop following the server; dnsmasq keeps serving what it has."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self.http.close()

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            pass

    # --- heartbeats -------------------------------------------------------------------

    def _heartbeat(self) -> bool:
        body = ac.Heartbeat(
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

    # --- the desired state --------------------------------------------------------------

    def _work(self) -> None:
        revision: int | None = None
        backoff = 0.5
        path = f"/metalnic/dhcp-agents/{self.config.host}/desired"
        while not self._stop.is_set():
            try:
                params: dict[str, int] = {}
                if revision is not None:
                    params = {"since": revision, "wait": int(max(1, self.config.resync_interval))}
                r = self.http.get(path, params=params)
                if r.status_code != 200:
                    raise ServerError(f"desired state: {r.status_code} {_message(r)}")
                desired = _answer(r, dc.DhcpDesiredState)
            except (httpx.HTTPError, ServerError) as exc:
                log.warning("no desired DHCP state (%s); retrying", exc)
                revision = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            self.last = self.driver.reconcile(desired)
            self.served = len(desired.networks)
            self.ports = sum(len(n.hosts) for n in desired.networks)
            _log_outcome(desired.revision, self.last)
            revision = desired.revision if not self.last.errors else None
            if self.last.errors:
                self._stop.wait(1.0)


def _log_outcome(revision: int, done: Outcome) -> None:
    if done.started or done.reloaded or done.removed:
        log.info(
            "revision %s: dnsmasq started for %s, reloaded for %s; removed %s",
            revision,
            done.started,
            done.reloaded,
            done.removed,
        )


def _answer(r: httpx.Response, model: type[dc.DhcpDesiredState] | type[ac.HeartbeatReply]):  # type: ignore[no-untyped-def]
    mismatch = ac.version_mismatch(r.headers.get(ac.CONTRACT_HEADER), "DHCP agent", "server")
    if mismatch:
        raise ServerError(mismatch)
    try:
        return model.model_validate_json(r.content)
    except ValidationError as exc:
        raise ServerError(f"the server's answer does not follow the contract: {exc}") from None


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("NeutronError", {}).get("message") or body)
    except ValueError:
        return r.text[:200]
