"""Engine and transactions.

``Database`` owns the engine for one URL.  ``transaction()`` is the only way
business code gets a session: it commits on success, rolls back on any error
and translates SQLAlchemy's errors into metalnic's at this one boundary.

Lost updates: the rows that requests change (nodes, ports, port groups,
networks, network ports, security groups) carry a revision that SQLAlchemy's
``version_id_col`` checks and bumps on every ORM UPDATE and DELETE
(``... WHERE id = ? AND version = <as read>``).  A write whose row moved on
since it was read matches no row: that is ``StaleRevision`` (409), raised here
for every API, and nothing of the request is stored.  This holds without
``SELECT ... FOR UPDATE`` (SQLite) and under READ COMMITTED (PostgreSQL
re-checks the WHERE against the committed row).  Internal writers that must not
fail on such a race (the conductor) use ``retry()``: read again, apply again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from metalnic.errors import Conflict, InvalidInput, StaleRevision, Unavailable

T = TypeVar("T")

# What a table's rows are called in a StaleRevision message.
_NOUNS = {
    "nodes": "node",
    "ports": "port",
    "portgroups": "port group",
    "networks": "network",
    "network_ports": "port",
    "security_groups": "security group",
    "security_group_rules": "security group rule",
}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Default to psycopg 3, the driver metalnic ships with.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError as exc:
            # Checks in the services catch the usual cases with a precise
            # message; this is the race where another request won meanwhile.
            raise Conflict(
                "The request conflicts with a concurrent change (a unique value "
                "was taken meanwhile); retry it."
            ) from exc
        except DataError as exc:
            # Input checks should catch these first; never let one become a 500.
            raise InvalidInput("A value does not fit the database column it is stored in.") from exc
        except StaleDataError as exc:
            raise _stale(exc) from exc
        except OperationalError as exc:
            raise Unavailable("The database is unavailable; retry later.") from exc

    def retry(self, work: Callable[[Session], T], attempts: int = 10) -> T:
        """Run ``work`` in a transaction of its own; when a concurrent write won a
        row it changes (StaleRevision), run it again on a fresh read.  For internal
        writers only: ``work`` must read what it changes inside the transaction."""

        def once() -> T:
            with self.transaction() as s:
                return work(s)

        return retry_stale(once, attempts)

    def dispose(self) -> None:
        self.engine.dispose()


def retry_stale(call: Callable[[], T], attempts: int = 10) -> T:
    """``call()`` again (after a short random pause) while it raises StaleRevision;
    ``call`` must be a whole read-and-write that is safe to repeat."""
    for attempt in range(attempts):
        try:
            return call()
        except StaleRevision:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
    raise AssertionError("unreachable")


def _stale(exc: StaleDataError) -> StaleRevision:
    text = str(exc)
    noun = next((n for t, n in _NOUNS.items() if f"table '{t}'" in text), "resource")
    return StaleRevision(
        f"The {noun} was changed by another request while this one was being applied; "
        "nothing was changed: read it again and retry."
    )
