"""The conductor: accepts verbs from the API, runs flows on worker threads.

An API call checks the verb against the state machine, takes the node lock
and moves the node into its busy state in one transaction, then hands the
flow to a worker and answers 202.  The worker runs the flow and, in one last
transaction, takes the flow's event (``done``/``wait``/``fail``), writes
last_error and releases the lock.  A ``done`` that leads into another busy
state (deleting → cleaning) runs that state's flow under the same lock.  A
verb that leads straight to a stable state (``manage`` from ``available``)
runs no flow and so leaves no lock behind.

Stopping (``shutdown``): new work is refused (503), running flows end at their
next step (``Task.checkpoint``) and are failed, their hosts powered off and
unplugged (``recovery.unwire``); whatever is still reserved by this conductor
afterwards is released through ``recovery.orphan`` before its row goes.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.baremetal import nodes as inventory
from metalnic.baremetal import policy, states, vifs
from metalnic.baremetal.conductor import bmc, flows, history, options, recovery
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.conductor import task as tasks
from metalnic.baremetal.conductor.states import Event
from metalnic.baremetal.conductor.task import VIF_PENDING, Task
from metalnic.baremetal.drivers.base import DriverError
from metalnic.baremetal.drivers.deploy import reported
from metalnic.baremetal.drivers.registry import Registry
from metalnic.baremetal.models import Conductor as ConductorRow
from metalnic.baremetal.models import Node, Port
from metalnic.baremetal.states import PowerTarget, ProvisionState
from metalnic.db.base import utcnow
from metalnic.db.session import Database
from metalnic.errors import (
    ConductorStopping,
    InvalidInput,
    InvalidStateRequested,
    MetalnicError,
    NodeNotFound,
    NotAuthenticated,
)
from metalnic.settings import Settings

log = logging.getLogger(__name__)

Flow = Callable[[Task], Event]  # a flow ends with the event the machine takes next
SideWork = Callable[[Task], None]  # work on a locked node that moves no state


class Conductor:
    def __init__(self, settings: Settings, db: Database, registry: Registry) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.hostname = socket.gethostname()
        self.name = f"{self.hostname}:{os.getpid()}:{secrets.token_hex(3)}"
        self._pool = ThreadPoolExecutor(settings.conductor_workers, thread_name_prefix="flow")
        self.futures: set[Future[None]] = set()
        self._stopping = threading.Event()
        self._holding = 0  # with_lock calls under way (request threads)
        self._holding_lock = threading.Lock()
        self.retry = bmc.RetryPolicy(settings.bmc_retries, settings.bmc_retry_interval)

    # --- life cycle -----------------------------------------------------------------------

    def register(self) -> None:
        with self.db.transaction() as s:
            s.add(ConductorRow(name=self.name, hostname=self.hostname))

    def drain(self, timeout: float) -> bool:
        """Start stopping while the API still serves (agents must be able to answer):
        refuse new work, let flows end at their next step and requests holding a
        node finish.  Whether everything ended within ``timeout`` seconds."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self.futures or self._holding:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def shutdown(self) -> None:
        """Refuse new work, let running flows end at their next step (failed, host off,
        ports unplugged), release whatever is still held, then deregister."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
        work = self.db.retry(self._take_over_own)
        for node_id, job in work:
            if job is not None:
                try:
                    job(self.task(node_id))
                except Exception as exc:  # stopping: record it, go on with the others
                    self.db.retry(
                        functools.partial(self._record_error, node_id=node_id, error=str(exc))
                    )
                finally:
                    with self.db.transaction() as s:
                        tasks.release(s, node_id, self.name)
        with self.db.transaction() as s:
            row = s.scalars(select(ConductorRow).where(ConductorRow.name == self.name)).first()
            if row is not None:
                s.delete(row)

    def _take_over_own(self, s: Session) -> list[tuple[int, recovery.Work | None]]:
        left = s.scalars(select(Node).where(Node.reservation == self.name)).all()
        return [(n.id, recovery.orphan(s, n, self.name, self.name)) for n in left]

    def task(self, node_id: int, stoppable: bool = True) -> Task:
        """A task on a node this conductor holds.  A stoppable one (flows) ends at its next
        step once the conductor stops and retries BMC failures (conductor/bmc.py); the
        others (requests) run to their end and answer a BMC failure at once."""
        return Task(
            self.db,
            self.registry,
            self.name,
            node_id,
            self.settings.power_timeout,
            self._stopping.is_set if stoppable else lambda: False,
            self.retry if stoppable else bmc.NO_RETRY,
        )

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _guard(self) -> None:
        if self._stopping.is_set():
            raise ConductorStopping("retry against another server or after the restart")

    # --- running flows ----------------------------------------------------------------------

    def _submit(self, node_id: int, flow: Flow) -> None:
        future = self._pool.submit(self._run, node_id, flow)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)

    def _run(self, node_id: int, flow: Flow) -> None:
        while True:
            try:
                task = self.task(node_id)
            except Exception:
                log.exception("cannot prepare node %s", node_id)
                self._finish(node_id, Event.FAIL, "internal error preparing the flow")
                return
            with task.node() as node:
                busy_state = node.provision_state
            try:
                event = flow(task)
                error, left_over = None, False
            except Exception as exc:  # a worker's top: every failure ends the flow cleanly
                event = Event.FAIL
                error, left_over = self._failed(task, flow, exc, busy_state)
            next_state = self._finish(node_id, event, error, left_over)
            follow = flows.FLOWS.get(next_state) if event == Event.DONE else None
            if follow is None:
                return
            flow = follow  # e.g. deleting → cleaning, under the same lock

    def _failed(self, task: Task, flow: Flow, exc: Exception, busy_state: str) -> tuple[str, bool]:
        """Wind a failed flow down; its last_error, and whether clean-up is left over.
        While the conductor stops, the host is also taken off every network."""
        error = _describe(flow, exc)
        if not isinstance(exc, MetalnicError):
            log.exception("flow %s of node %s crashed", flow.__name__, task.uuid)
        stopped = self._stopping.is_set()
        if isinstance(exc, ConductorStopping):
            error = f"The conductor stopped while the node was {busy_state}: {exc.what}."
        elif stopped:
            error += f" (while the conductor stopped; the node was {busy_state})"
        task.log(history.ERROR, error, severity="ERROR")
        if stopped and busy_state in recovery.POWERED_FLOWS and not recovery.unwire_quietly(task):
            return error + "; its ports are taken off the network by the next conductor", True
        if not stopped and busy_state in flows.POWER_OFF_ON_FAILURE:
            flows.wind_down_quietly(task)
        return error, False

    def _finish(
        self, node_id: int, event: Event, error: str | None, left_over: bool = False
    ) -> ProvisionState:
        """Take the flow's event, record it and unlock — retried on a fresh read if a
        request changed the node meanwhile (the flow's outcome must never be lost)."""
        return self.db.retry(lambda s: self._finish_in(s, node_id, event, error, left_over))

    def _finish_in(
        self, s: Session, node_id: int, event: Event, error: str | None, left_over: bool
    ) -> ProvisionState:
        node = s.get_one(Node, node_id)
        tasks.advance(node, event)
        if left_over:
            recovery.mark(node, "unwire")  # the next conductor retries it
        if error is not None:
            node.last_error = error
        elif event == Event.DONE:
            node.last_error = None
        history.record(
            s,
            node_id,
            history.PROVISION,
            f"{event}: now {node.provision_state}",
            severity="ERROR" if error else "INFO",
            conductor=self.name,
        )
        if node.provision_state not in machine.ACTIVE_FLOW_STATES or event != Event.DONE:
            tasks.release(s, node_id, self.name)
        return node.provision_state

    # --- API entry points -------------------------------------------------------------------

    def provision(self, who: Principal, ident: str, verb: Any, body: dict[str, Any]) -> None:
        event = machine.event_of(verb)
        if event is None:
            raise InvalidInput(
                f"Invalid provision target {verb!r}; use one of {', '.join(sorted(machine.VERBS))}."
            )
        self._guard()
        with self.db.transaction() as s:
            node = inventory.find(s, ident, for_update=True)
            policy.check_node(who, node.owner, ident, write=True)
            if event == Event.ABORT:
                return self._abort(s, node)
            if node.maintenance and event not in (Event.MANAGE, Event.DELETE):
                raise InvalidStateRequested(f"Node {node.uuid} is in maintenance.")
            tasks.check(node, event)  # raises naming the allowed verbs
            tasks.acquire(s, node, self.name)  # (re-reads the row)
            tasks.advance(node, event)
            options.apply(node, event, body)  # a refusal rolls all of this back
            flow = flows.FLOWS.get(node.provision_state)
            if flow is None:  # a move straight to a stable state: no flow, no lock
                node.reservation = None
            history.record(
                s,
                node.id,
                history.PROVISION,
                f"{verb} requested: now {node.provision_state}",
                conductor=self.name,
                user=who.name,
            )
            node_id = node.id
        if flow is not None:
            self._submit(node_id, flow)

    def _abort(self, s: Any, node: Node) -> None:
        if node.provision_state not in machine.WAIT_STATES:
            raise InvalidStateRequested(
                f"Node {node.uuid} in state '{node.provision_state}' cannot be aborted; "
                "only a node waiting for its ramdisk agent can."
            )
        tasks.check(node, Event.ABORT)
        tasks.acquire(s, node, self.name)
        tasks.advance(node, Event.ABORT)
        node.last_error = "Aborted by the user while waiting for the ramdisk agent."
        aborted = f"aborted: now {node.provision_state}"
        history.record(s, node.id, history.PROVISION, aborted, conductor=self.name)
        node_id = node.id

        def power_off(task: Task) -> None:
            flows.wind_down_quietly(task)
            flows.forget_agent(task)

        self.submit_side(node_id, power_off)

    def submit_side(self, node_id: int, work: SideWork) -> None:
        """Run ``work`` on a locked node without a state transition, then unlock."""

        def run() -> None:
            try:
                work(self.task(node_id))
            except Exception as exc:
                error = str(exc)
                self.db.retry(lambda s: self._record_error(s, node_id, error))
            finally:
                with self.db.transaction() as s:
                    tasks.release(s, node_id, self.name)

        future = self._pool.submit(run)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)

    def _record_error(self, s: Session, node_id: int, error: str) -> None:
        s.get_one(Node, node_id).last_error = error
        history.record(s, node_id, history.ERROR, error, severity="ERROR", conductor=self.name)

    def power(self, who: Principal, ident: str, target: Any) -> None:
        if target not in states.POWER_TARGETS:
            raise InvalidInput(
                f"Invalid power target {target!r}; use one of {', '.join(states.POWER_TARGETS)}."
            )
        power_target = PowerTarget(target)
        self._guard()
        with self.db.transaction() as s:
            node = inventory.find(s, ident, for_update=True)
            policy.check_node(who, node.owner, ident, write=True)
            if node.provision_state in machine.ACTIVE_FLOW_STATES:
                raise InvalidStateRequested(
                    f"Node {node.uuid} is {node.provision_state}; power actions wait until it "
                    "is done."
                )
            tasks.acquire(s, node, self.name)
            node.target_power_state = power_target
            history.record(
                s,
                node.id,
                history.POWER,
                f"{power_target} requested by {who.name}",
                conductor=self.name,
                user=who.name,
            )
            node_id = node.id

        def act(task: Task) -> None:
            task.set_power(power_target)

        self.submit_side(node_id, act)

    def with_lock(
        self, who: Principal, ident: str, work: Callable[[Task], Any], write: bool = True
    ) -> Any:
        """Run ``work`` on the node now: locked when it changes something
        (set boot device); reads (boot device, validate) take no lock, so they never
        fail with NodeLocked while a flow runs."""
        if write:
            self._guard()
        with self.db.transaction() as s:
            node = inventory.find(s, ident, for_update=write)
            policy.check_node(who, node.owner, ident, write=write)
            if write:
                tasks.acquire(s, node, self.name)
            node_id = node.id
        with self._holding_lock:
            self._holding += 1
        try:
            return work(self.task(node_id, stoppable=False))  # drain() waits for it
        finally:
            if write:
                with self.db.transaction() as s:
                    tasks.release(s, node_id, self.name)
            with self._holding_lock:
                self._holding -= 1

    # --- VIFs -----------------------------------------------------------------------------

    def attach_vif(self, who: Principal, ident: str, vif: str) -> None:
        """Record ``vif`` on a free link; on a deployed node also plug it now, under the
        node lock and the smart NIC power rule — and forget it again when that fails.

        The record and a ``vif_pending`` journal entry are written in one transaction,
        so a conductor that dies meanwhile leaves the next one enough to undo it."""
        client = self.registry.network_client

        def work(task: Task) -> None:
            with self.db.transaction() as s:
                deployed, link = vifs.attach(s, who, ident, vif, client)
                if deployed:
                    recovery.set_vif_pending(
                        s, task.uuid, {"op": "attach", "vif": vif, "link": link}
                    )
            if not deployed:
                return
            task.refresh()
            try:
                flows.hot_plug(task, "plug", vif, link)
            except DriverError as exc:
                self.db.retry(lambda s: recovery.forget_vif(s, task.uuid, vif))
                task.log(history.NETWORK, f"tenant VIF {vif} not plugged: {exc.message}", "ERROR")
                raise bmc.request_error(exc, f"VIF {vif} could not be plugged") from None
            task.journal(VIF_PENDING, None)

        self.with_lock(who, ident, work)

    def detach_vif(self, who: Principal, ident: str, vif: str) -> None:
        """Forget ``vif``; on a deployed node unplug it first, under the power rule
        (the record stays if that fails)."""

        def work(task: Task) -> None:
            with self.db.transaction() as s:
                deployed, link = vifs.find(s, who, ident, vif)
                if deployed:
                    recovery.set_vif_pending(
                        s, task.uuid, {"op": "detach", "vif": vif, "link": link}
                    )
            if deployed:
                try:
                    flows.hot_plug(task, "unplug", vif, link)
                except DriverError as exc:
                    task.journal(VIF_PENDING, None)
                    task.log(
                        history.NETWORK, f"tenant VIF {vif} not unplugged: {exc.message}", "ERROR"
                    )
                    raise bmc.request_error(exc, f"VIF {vif} could not be unplugged") from None
            with self.db.transaction() as s:
                vifs.forget(s, task.uuid, vif)
                recovery.set_vif_pending(s, task.uuid, None)

        self.with_lock(who, ident, work)

    # --- the ramdisk agent ------------------------------------------------------------------

    def lookup(self, addresses: list[str], node_uuid: str | None) -> dict[str, Any]:
        macs = [ids.normalize_mac(a) for a in addresses if a.strip()]
        if not macs and not node_uuid:
            raise InvalidInput("lookup needs addresses or node_uuid")
        # Retried on a fresh read when the flow wrote the node meanwhile: the agent's
        # lookup must not fail on that race, and the token is handed out only once.
        return self.db.retry(lambda s: self._lookup_in(s, macs, node_uuid))

    def _lookup_in(self, s: Session, macs: list[str], node_uuid: str | None) -> dict[str, Any]:
        if node_uuid:
            node: Node | None = inventory.find(s, ids.parse_uuid(node_uuid, "node_uuid"))
        else:
            node = s.scalars(select(Node).join(Port).where(Port.address.in_(macs))).first()
        if node is None or node.provision_state not in _AGENT_STATES:
            raise NodeNotFound(node_uuid or ",".join(macs))
        info = dict(node.driver_internal_info)
        config: dict[str, Any] = {"heartbeat_timeout": 30}
        if info.get("agent_token") and not info.get("agent_token_given"):
            config["agent_token"] = info["agent_token"]
            node.driver_internal_info = {**info, "agent_token_given": True}
        history.record(
            s, node.id, history.AGENT, "ramdisk agent looked the node up", conductor=self.name
        )
        s.flush()  # a stale revision shows here, before the token leaves
        return {
            "node": {"uuid": node.uuid, "properties": node.properties, "instance_info": {}},
            "config": config,
        }

    def heartbeat(self, ident: str, callback_url: Any, token: Any) -> None:
        try:  # its host and port reach other programs' option strings (deploy/reported.py)
            reported.callback_url(callback_url)
        except DriverError:
            raise InvalidInput(
                "A heartbeat needs callback_url: http(s)://<host>[:<port>]/…"
            ) from None
        self._guard()
        with self.db.transaction() as s:
            node = inventory.find(s, ident, for_update=True)
            expected = node.driver_internal_info.get("agent_token")
            if (
                not isinstance(expected, str)
                or not expected
                or not isinstance(token, str)
                or not hmac.compare_digest(expected.encode(), token.encode())
            ):
                raise NotAuthenticated("Invalid or missing agent_token.")
            if node.provision_state not in machine.WAIT_STATES:
                return  # heartbeats while the conductor works are fine and ignored
            tasks.check(node, Event.RESUME)
            tasks.acquire(s, node, self.name)
            tasks.advance(node, Event.RESUME)
            node.driver_internal_info = {**node.driver_internal_info, "agent_url": callback_url}
            history.record(
                s, node.id, history.AGENT, f"heartbeat from {callback_url}", conductor=self.name
            )
            node_id, state = node.id, node.provision_state
        flow = flows.RESUMED.get(state)
        if flow is None:
            raise DriverError(f"no flow resumes {state}")
        self._submit(node_id, flow)


_AGENT_STATES = frozenset(
    {
        states.DEPLOYING,
        states.DEPLOYWAIT,
        states.CLEANING,
        states.CLEANWAIT,
        states.RESCUING,
        states.RESCUEWAIT,
    }
)


def _describe(flow: Flow, exc: Exception) -> str:
    message = exc.message if isinstance(exc, MetalnicError) else f"internal error: {exc!r}"
    return f"{flow.__name__.replace('_', ' ')} failed: {message}"


def stamp_heartbeat(db: Database, name: str) -> None:
    with db.transaction() as s:
        row = s.scalars(select(ConductorRow).where(ConductorRow.name == name)).first()
        if row is not None:
            row.heartbeat_at = utcnow()
