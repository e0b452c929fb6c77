"""The conductor's periodic pass: liveness, dead workers, stuck waits, power sync.

Level-triggered: each pass looks at the database as it is, so a pass that is
missed or crashes is repaired by the next one.

* stamps this conductor's heartbeat;
* finds conductors that stopped (heartbeat older than ``conductor_dead_after``,
  a process on this host that no longer exists, or a reservation naming no
  registered conductor): their locks are released and what they left is put
  in a clear state by ``recovery.orphan`` (flows failed, hosts powered off and
  unplugged, half-done VIF changes undone), so that a server restart never
  leaves a node stuck, locked, sitting in BIOS or bound to a network;
* retries clean-ups after a conductor stop that failed before;
* fails nodes that waited for a ramdisk agent longer than
  ``deploy_callback_timeout`` (``rescue_callback_timeout`` in ``rescue wait``,
  as Ironic's two options);
* reads the power state of idle nodes from their BMCs.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from metalnic.baremetal import states
from metalnic.baremetal.conductor import history, recovery
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.conductor import task as tasks
from metalnic.baremetal.conductor.flows import wind_down_quietly
from metalnic.baremetal.conductor.service import Conductor, stamp_heartbeat
from metalnic.baremetal.conductor.states import Event
from metalnic.baremetal.conductor.task import Drivers, Task
from metalnic.baremetal.drivers.base import NodeContext
from metalnic.baremetal.models import Conductor as ConductorRow
from metalnic.baremetal.models import Node
from metalnic.db.base import utcnow
from metalnic.errors import NodeLocked

log = logging.getLogger(__name__)
# BMCs read at once by a power sync pass (each read may take seconds).
SYNC_WORKERS = 8


def _pid_gone(name: str, hostname: str, local: str) -> bool:
    host, _sep, rest = name.partition(":")
    if host != local or hostname != local:
        return False
    pid = rest.split(":", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _gone_conductors(c: Conductor) -> list[str]:
    """Conductors that stopped: a stale heartbeat, a dead process on this host, or no
    row at all any more (a node reserved by a name nobody registered)."""
    cutoff = utcnow() - dt.timedelta(seconds=c.settings.conductor_dead_after)
    with c.db.transaction() as s:
        rows = s.scalars(select(ConductorRow).where(ConductorRow.name != c.name)).all()
        dead = [
            r.name
            for r in rows
            if r.heartbeat_at < cutoff or _pid_gone(r.name, r.hostname, c.hostname)
        ]
        known = {r.name for r in rows} | {c.name}
        holders = s.scalars(select(Node.reservation).where(Node.reservation.is_not(None)))
        dead += sorted({h for h in holders if h is not None and h not in known})
    return dead


def reap_dead_conductors(c: Conductor) -> list[str]:
    """Release what stopped conductors held; fail the flows they left. Returns the reaped."""
    dead = _gone_conductors(c)
    for name in dead:
        # Retried on a fresh read when a request changed one of the nodes meanwhile.
        work = c.db.retry(functools.partial(_release_dead, c, name=name))
        for node_id, job in work:
            if job is not None:
                _locked_side_flow(c, node_id, job, locked=True)
        log.warning(
            "reaped stopped conductor %s (%d node(s) released, %d to clean up)",
            name,
            len(work),
            sum(job is not None for _, job in work),
        )
    return dead


def _release_dead(c: Conductor, s: Session, *, name: str) -> list[tuple[int, recovery.Work | None]]:
    """Take over what conductor ``name`` held (``recovery.orphan``); each node's work."""
    left = s.scalars(select(Node).where(Node.reservation == name)).all()
    work = [(n.id, recovery.orphan(s, n, name, c.name)) for n in left]
    row = s.scalars(select(ConductorRow).where(ConductorRow.name == name)).first()
    if row is not None:
        s.delete(row)
    return work


def _locked_side_flow(
    c: Conductor, node_id: int, work: Callable[[Task], None], locked: bool = False
) -> None:
    """Run ``work`` under the node's lock — taken here, or already (``locked``) in the
    transaction that failed the node, so that nobody sees it failed but not yet off."""
    if not locked:
        with c.db.transaction() as s:
            node = s.get_one(Node, node_id)
            try:
                tasks.acquire(s, node, c.name)
            except NodeLocked:
                return

    def run(task: Task) -> None:
        work(task)
        return None

    c.submit_side(node_id, run)


def _wait_timeout(c: Conductor, state: str) -> float:
    if state == states.RESCUEWAIT:
        return c.settings.rescue_callback_timeout
    return c.settings.deploy_callback_timeout


def fail_stale_waits(c: Conductor) -> None:
    now = utcnow()
    shortest = min(c.settings.deploy_callback_timeout, c.settings.rescue_callback_timeout)

    def fail(s: Session) -> list[int]:
        stale = s.scalars(
            select(Node).where(
                Node.provision_state.in_(machine.WAIT_STATES),
                Node.provision_updated_at < now - dt.timedelta(seconds=shortest),
                Node.reservation.is_(None),
            )
        ).all()
        failed: list[int] = []
        for node in stale:
            state = node.provision_state
            timeout = _wait_timeout(c, state)
            since = node.provision_updated_at
            if since is None or since >= now - dt.timedelta(seconds=timeout):
                continue
            try:
                tasks.acquire(s, node, c.name)  # held until powered off
            except NodeLocked:
                continue
            failed.append(node.id)
            tasks.advance(node, Event.FAIL)
            node.last_error = (
                f"Timed out after {timeout:.0f} s in '{state}': "
                "the ramdisk agent never called back."
            )
            history.record(
                s, node.id, history.ERROR, node.last_error, severity="ERROR", conductor=c.name
            )
        return failed

    # Retried on a fresh read when a request changed one of the nodes meanwhile.
    ids = c.db.retry(fail)
    for node_id in ids:
        _locked_side_flow(c, node_id, wind_down_quietly, locked=True)


def sync_power(c: Conductor) -> None:
    """Read idle nodes' power from their BMCs without locking them (a sync must
    never make a user's request fail with NodeLocked); write only if the node
    is still unlocked."""
    with c.db.transaction() as s:
        idle = s.scalars(
            select(Node).where(
                Node.reservation.is_(None),
                Node.maintenance.is_(False),
                Node.provision_state.in_(machine.STABLE_STATES | machine.WAIT_STATES),
            )
        ).all()
        work = [
            (n.id, n.power_state, tasks.snapshot(s, n), tasks.drivers_for(c.registry, n))
            for n in idle
        ]

    def read(item: tuple[int, str | None, NodeContext, Drivers]) -> tuple[int, str | None, str]:
        node_id, old, ctx, drivers = item
        return node_id, old, drivers.power.get_power_state(ctx)

    with ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="power-sync") as pool:
        futures = [pool.submit(read, item) for item in work]
    for future, item in zip(futures, work, strict=True):
        try:
            node_id, old, new = future.result()
        except Exception as exc:  # a BMC being down must not stop the pass
            log.info("power sync of node %s: %s", item[2].uuid, exc)
            continue
        if new == old:
            continue
        with c.db.transaction() as s:
            changed = s.execute(
                update(Node)
                .where(
                    Node.id == node_id,
                    Node.reservation.is_(None),
                    Node.power_state.is_not_distinct_from(old),
                )
                .values(power_state=new)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount == 1:  # type: ignore[attr-defined]
                history.record(
                    s,
                    node_id,
                    history.POWER,
                    f"power state read from the BMC: {new} (was {old})",
                    conductor=c.name,
                )


def retry_clean_ups(c: Conductor) -> None:
    """Clean-ups after a conductor stop that failed before (e.g. the NIC agents had not
    reconnected yet) are tried again, on unlocked nodes still where they were left."""
    now = time.time()
    with c.db.transaction() as s:
        # Plain rows of the three columns the check reads, not ORM nodes: this runs
        # every pass over every idle node, and a mapped object costs ten times more.
        rows = s.execute(
            select(
                Node.id, Node.reservation, Node.provision_state, Node.driver_internal_info
            ).where(Node.reservation.is_(None))
        ).all()
        due = [row.id for row in rows if recovery.due(row, now)]
    for node_id in due:
        _locked_side_flow(c, node_id, recovery.attempt)


def recover(c: Conductor) -> None:
    stamp_heartbeat(c.db, c.name)
    reap_dead_conductors(c)
    fail_stale_waits(c)
    retry_clean_ups(c)


def run_once(c: Conductor) -> None:
    if c.stopping:  # winding down: stay alive for the others, start nothing new
        stamp_heartbeat(c.db, c.name)
        return
    recover(c)
    sync_power(c)


class PeriodicLoop:
    def __init__(self, conductor: Conductor) -> None:
        self.conductor = conductor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="periodic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.conductor.settings.periodic_interval):
            try:
                run_once(self.conductor)
            except Exception:  # the loop's top: log and try again next time
                log.exception("periodic pass failed")
