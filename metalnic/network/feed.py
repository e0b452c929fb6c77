"""Change notification between the network service, its agents and the bare-metal side.

Every change an agent must see bumps its NIC host's revision (in the same
transaction as the change); after the commit, ``notify`` wakes whoever waits:
agents long-polling the feed (asyncio) and conductor threads waiting for a
port to become ACTIVE or to be gone from its NIC (threading).

Several server processes on one PostgreSQL database: every feed change also
sends ``NOTIFY metalnic_feed`` (delivered at commit), and each process runs a
``PostgresListener`` that turns it into a local ``notify``, so an agent
long-polling one server is woken by a change committed through another.
Waiters still re-check the database on a slow timer, so a lost notification
(a listener reconnecting) costs latency, never correctness.  Threads and
asyncio tasks wait by the same rule (``Notifier``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from metalnic.network.models import FeedRevision

log = logging.getLogger(__name__)
CHANNEL = "metalnic_feed"


def bump(session: Session, host: str) -> int:
    """Bump ``host``'s revision; returns the value this transaction wrote."""
    bump_all(session, {host})
    return session.execute(
        select(FeedRevision.revision).where(FeedRevision.host == host)
    ).scalar_one()


def bump_all(session: Session, hosts: set[str]) -> None:
    """Bump the revision of every host in ``hosts`` in at most three statements, however
    many: missing rows are inserted (a concurrent insert of the same host is no error),
    then ``revision = revision + 1`` in the database itself — two transactions
    bumping at once under READ COMMITTED both count (read, add and write in Python
    would lose one, and an agent would miss that change)."""
    if not hosts:
        return
    ordered = sorted(hosts)  # one lock order for every writer
    # Most hosts have their row already (a group's watchers are hundreds of hosts):
    # reading which is far cheaper than inserting all of them again.
    known = set(session.scalars(select(FeedRevision.host).where(FeedRevision.host.in_(ordered))))
    missing = [h for h in ordered if h not in known]
    if missing:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(FeedRevision).on_conflict_do_nothing(index_elements=["host"]),
            [{"host": h, "revision": 0, "applied": 0} for h in missing],
        )
    # "evaluate": rows this session holds are updated in Python, no read-back query.
    session.execute(
        update(FeedRevision)
        .where(FeedRevision.host.in_(ordered))
        .values(revision=FeedRevision.revision + 1)
        .execution_options(synchronize_session="evaluate")
    )
    announce(session)


def announce(session: Session) -> None:
    """Tell the other server processes that a feed changed (sent when the transaction
    commits; PostgreSQL folds repeats within one transaction).  SQLite: one process."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


def revisions(session: Session, host: str) -> tuple[int, int]:
    row = session.get(FeedRevision, host)
    return (row.revision, row.applied) if row else (0, 0)


class Notifier:
    """Wakes whoever waits for a change: conductor threads and the agents' long polls
    (asyncio tasks) alike, by one rule.  A waiter subscribes *before* it checks, so a
    change committed between its check and its sleep still wakes it; it checks again
    on every notification, and at least every ``recheck`` seconds (a change made by
    another server process whose notification was lost)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[Callable[[], None]] = set()

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for wake in waiters:
            wake()

    @contextmanager
    def _subscribed(self, wake: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            self._waiters.add(wake)
        try:
            yield
        finally:
            with self._lock:
                self._waiters.discard(wake)

    def wait_for(self, check: Callable[[], bool], timeout: float, recheck: float = 1.0) -> bool:
        """Block until ``check()`` is true (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while True:
            woken = threading.Event()
            with self._subscribed(woken.set):
                if check():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                woken.wait(min(remaining, recheck))

    async def wait_for_async(
        self, check: Callable[[], bool], timeout: float, recheck: float = 1.0
    ) -> bool:
        """``wait_for`` for a coroutine: the same rule; ``check`` (it reads the
        database) runs in a worker thread, the wait itself holds no thread."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            woken = asyncio.Event()

            def wake(event: asyncio.Event = woken) -> None:
                loop.call_soon_threadsafe(event.set)

            with self._subscribed(wake):
                if await anyio.to_thread.run_sync(check):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(remaining, recheck))


class PostgresListener:
    """A thread that LISTENs on its own connection and wakes this process's waiters."""

    def __init__(self, engine: Engine, notifier: Notifier, poll: float = 1.0) -> None:
        self.engine, self.notifier, self.poll = engine, notifier, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self.listening = threading.Event()  # set while LISTEN is active (tests, logs)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll + 5)

    def _connect(self) -> Any:
        raw = self.engine.raw_connection()
        conn: Any = raw.driver_connection
        raw.detach()  # a connection of its own for the process's life, not the pool's
        if conn.info.transaction_status != conn.info.transaction_status.IDLE:
            conn.rollback()  # the pool's pre-ping may have opened a transaction
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:  # the database may be restarting: retry
                log.warning("feed listener cannot connect (%s); retrying", type(exc).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            self.listening.set()
            # Changes may have been missed while (re)connecting: let waiters re-check.
            self.notifier.notify()
            try:
                while not self._stop.is_set():
                    if any(True for _ in conn.notifies(timeout=self.poll)):
                        self.notifier.notify()
            except Exception as exc:
                log.warning("feed listener lost its connection (%s)", type(exc).__name__)
            finally:
                self.listening.clear()
                try:
                    conn.close()
                except Exception:
                    log.debug("closing the feed listener connection failed", exc_info=True)
