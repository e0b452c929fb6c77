"""Engine and transactions.

``Database`` owns the engine for one URL.  ``transaction()`` is the only way
business code gets a session: it commits on success, rolls back on any error
and translates SQLAlchemy's errors into metalnic's at this one boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from metalnic.errors import Conflict, InvalidInput, Unavailable


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
        except OperationalError as exc:
            raise Unavailable("The database is unavailable; retry later.") from exc

    def dispose(self) -> None:
        self.engine.dispose()
