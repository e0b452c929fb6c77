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
from sqlalchemy import (
    CompoundSelect,
    Engine,
    Select,
    String,
    literal,
    select,
    text,
    union,
)
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
    """Bump the revision of every host in ``hosts`` (a few, named by the caller)."""
    if hosts:
        named = [select(literal(h, String).label("host")) for h in sorted(hosts)]
        bump_selected(session, named[0] if len(named) == 1 else union(*named))


def bump_selected(session: Session, hosts: Select[str] | CompoundSelect[str]) -> set[str]:
    """Bump the revision of every host ``hosts`` selects, in one statement in the
    database, whatever their number; returns the hosts bumped.

    An upsert: a host without a row gets revision 1, the others ``revision + 1``
    computed by the database — two transactions bumping at once under READ
    COMMITTED both count (read, add and write in Python would lose one, and an
    agent would miss that change), and the rows are visited in host order, one
    lock order for every writer.  The watchers of one security group are hundreds
    of hosts: sending each to the database as a bound parameter, twice, cost more
    than the rest of a port create (docs/benchmarks.md)."""
    named = hosts.subquery()
    host = named.c[0]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # SQLite parses "SELECT ... ON CONFLICT" only after a WHERE clause.
    rows = select(host, literal(1), literal(0)).distinct().where(host.is_not(None)).order_by(host)
    stmt = insert(FeedRevision).from_select(["host", "revision", "applied"], rows)
    # Core, not the ORM: the ORM's handling of an INSERT it did not build (bulk
    # persistence, a row object per RETURNING row) cost more than the statement.
    bumped = set(
        session.connection()
        .execute(
            stmt.on_conflict_do_update(
                index_elements=["host"], set_={"revision": FeedRevision.revision + 1}
            ).returning(FeedRevision.host)
        )
        .scalars()
    )
    # Rows this session already holds are stale now: read them again when asked.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, FeedRevision):
            session.expire(obj)
    if bumped:
        announce(session)
    return bumped


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
