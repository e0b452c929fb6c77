"""The shell of every metalnic agent process: its server, heartbeats, long polls, stopping.

The smart NIC agent (``metalnic/agent/service.py``) and the DHCP agent
(``metalnic/dhcp/service.py``) are the same process around a different pass:
both register by heartbeat before anything else and keep beating on a thread
of their own, and each of their workers long-polls a desired-state feed of the
agent contract (woken by the server's commit) and reconciles.  Without changes
a worker still reconciles every ``resync_interval`` seconds (the long-poll
timeout), which is how a lost OVS or dnsmasq is noticed and repaired.  When the
server is unreachable, or answers with another contract version or a
malformed body, what is programmed stays and the worker retries with backoff,
then resyncs in full.  One implementation, so the two agents cannot drift
apart on the contract's rules (version header, retries, timeouts).

A subclass says what its heartbeat carries (``heartbeat``) and which workers
it runs (``workers``); a worker's loop is ``follow``.
"""

from __future__ import annotations

import abc
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from metalnic.contract import agent as ac


@dataclass(frozen=True)
class ProcessConfig:
    """What every agent process knows of its server (the config file's common part,
    ``metalnic/agent/configfile.py``)."""

    server: str
    host: str = field(default_factory=socket.gethostname)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cacert: str | None = None
    heartbeat_interval: float = 2.0
    resync_interval: float = 5.0


class ServerError(Exception):
    """The server refused a request or answered outside the contract (retried)."""


M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound=ProcessConfig)


class AgentProcess(abc.ABC, Generic[C]):
    """Heartbeats and workers following the server, until stopped."""

    #: How the process names itself in the contract's version messages.
    role = "agent"

    def __init__(self, config: C) -> None:
        self.config = config
        # The subclass's module logs (metalnic.agent.service, metalnic.dhcp.service).
        self.log = logging.getLogger(type(self).__module__)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        auth = (config.username, config.password or "") if config.username else None
        self.http = httpx.Client(
            base_url=config.server.rstrip("/") + "/network/v2.0",
            auth=auth,
            verify=config.cacert or True,
            timeout=httpx.Timeout(10.0, read=config.resync_interval + 15),
            headers={ac.CONTRACT_HEADER: str(ac.CONTRACT_VERSION)},
        )

    # --- what a subclass says ---------------------------------------------------------

    @abc.abstractmethod
    def heartbeat(self) -> ac.Heartbeat:
        """The heartbeat's body (built anew for every beat)."""

    @abc.abstractmethod
    def workers(self) -> list[tuple[str, Callable[[], None]]]:
        """The worker threads to run: (thread name, loop)."""

    # --- life -------------------------------------------------------------------------

    def start(self) -> None:
        self._heartbeat()  # registered before the first desired-state read
        loops = [("heartbeat", self._beat_loop), *self.workers()]
        for name, loop in loops:
            self._threads.append(threading.Thread(target=loop, name=name, daemon=True))
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop following the server; what is programmed (flows, dnsmasq) stays as it is."""
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
        body = self.heartbeat()
        try:
            r = self.http.post("/metalnic/agents/heartbeat", json=body.model_dump(mode="json"))
            if r.status_code != 200:
                self.log.error("heartbeat refused (%s): %s", r.status_code, message(r))
                return False
            self.answer(r, ac.HeartbeatReply)
        except httpx.HTTPError as exc:
            self.log.warning("heartbeat failed: %s", type(exc).__name__)
            return False
        except ServerError as exc:
            self.log.error("heartbeat answer refused: %s", exc)
            return False
        return True

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.config.heartbeat_interval):
            self._heartbeat()

    # --- a worker ---------------------------------------------------------------------

    def follow(
        self, path: str, model: type[M], what: str, apply: Callable[[M], int | None]
    ) -> None:
        """Long-poll the desired state at ``path`` (a ``model``) and ``apply`` each one,
        until stopped.  ``apply`` returns the revision it reached, or None when it could
        not (then the next read, a second later, is a full resync).  ``what`` names the
        state in messages."""
        revision: int | None = None  # None: full resync next
        backoff = 0.5
        while not self._stop.is_set():
            try:
                params: dict[str, int] = {}
                if revision is not None:
                    params = {"since": revision, "wait": int(max(1, self.config.resync_interval))}
                r = self.http.get(path, params=params)
                if r.status_code != 200:
                    raise ServerError(f"{what}: {r.status_code} {message(r)}")
                desired = self.answer(r, model)
            except (httpx.HTTPError, ServerError) as exc:
                # Keep what is programmed; come back with a full resync.
                self.log.warning("no %s (%s); retrying", what, exc)
                revision = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            revision = apply(desired)
            if revision is None:
                self._stop.wait(1.0)

    def answer(self, r: httpx.Response, model: type[M]) -> M:
        """The server's answer as the contract's ``model``: of this contract version, well
        formed."""
        mismatch = ac.version_mismatch(r.headers.get(ac.CONTRACT_HEADER), self.role, "server")
        if mismatch:
            raise ServerError(mismatch)
        try:
            return model.model_validate_json(r.content)
        except ValidationError as exc:
            why = f"the server's answer does not follow the {self.role} contract: {exc}"
            raise ServerError(why) from None


def message(r: httpx.Response) -> str:
    """The reason in a refusal (Neutron's error body), or the start of the body."""
    try:
        body = r.json()
        return str(body.get("NeutronError", {}).get("message") or body)
    except ValueError:
        return r.text[:200]
