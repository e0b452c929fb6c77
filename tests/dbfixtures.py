"""A migrated database per test, on SQLite and (marked ``postgres``) on PostgreSQL —
for tests of the service layer that must hold on both.  Import ``db`` and
``postgres`` into a test module to use them (one PostgreSQL server per module)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.db import migrate
from metalnic.db.session import Database
from tests.support import Postgres, start_postgres

_names = itertools.count(1)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_database(f"db{next(_names)}")
    else:
        url = f"sqlite:///{tmp_path}/db.sqlite"
    database = Database(url)
    migrate.upgrade(database.engine)
    yield database
    database.engine.dispose()
