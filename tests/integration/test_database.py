"""Migrations and backends: SQLite by default, a real PostgreSQL when given its URL."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import metalnic.baremetal.models  # noqa: F401  (registers the tables)
import metalnic.network.models  # noqa: F401
from metalnic.db import migrate
from metalnic.db.base import Base
from metalnic.db.session import Database
from tests.integration.helpers import SMART_LLC, make_node, make_port
from tests.support import VENV_BIN, Postgres, start_postgres, start_server


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = start_postgres()
    yield pg
    pg.stop()


def _assert_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_head_constant_matches_alembic(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert migrate.head_revision(db.engine) == migrate.HEAD


def test_sqlite_upgrade_from_empty_via_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    r = subprocess.run(
        [str(VENV_BIN / "metalnic"), "db", "upgrade", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert f"revision {migrate.HEAD}" in r.stdout
    db = Database(url)
    assert {"nodes", "ports", "alembic_version"} <= set(inspect(db.engine).get_table_names())
    _assert_models_match_migrations(db)
    # Running it again is a no-op.
    again = subprocess.run(
        [str(VENV_BIN / "metalnic"), "db", "upgrade", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0


def test_serve_creates_sqlite_file_on_first_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = start_server(state)
    try:
        assert (state / "metalnic.sqlite").exists()
        with server.client() as c:
            assert c.get("/v1/nodes").json() == {"nodes": []}
    finally:
        server.stop()


def test_postgres_upgrade_and_models_match(postgres: Postgres) -> None:
    db = Database(postgres.create_database("migrations"))
    migrate.upgrade(db.engine)
    assert migrate.current_revision(db.engine) == migrate.HEAD
    _assert_models_match_migrations(db)
    db.dispose()


def test_api_on_postgres(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.create_database("api")
    server = start_server(tmp_path, database_url=url)
    try:
        with server.client() as c:
            node = make_node(c, name="pg-node")
            port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
            dup = c.post("/v1/ports", json={"node_uuid": node["uuid"], "address": port["address"]})
            assert dup.status_code == 409
            listed = c.get("/v1/ports", params={"detail": True}).json()["ports"]
            assert [p["uuid"] for p in listed] == [port["uuid"]]
            # PATCH and DELETE lock the port and its node (SELECT … FOR UPDATE with a join).
            r = c.patch(
                f"/v1/ports/{port['uuid']}",
                json=[{"op": "replace", "path": "/local_link_connection/port_id", "value": "pf1"}],
            )
            assert r.status_code == 200, r.text
            other = make_port(c, node["uuid"])
            assert c.delete(f"/v1/ports/{other['uuid']}").status_code == 204
            r = c.patch(
                f"/v1/nodes/{node['uuid']}", json=[{"op": "add", "path": "/extra/a", "value": 1}]
            )
            assert r.status_code == 200, r.text
            assert c.delete(f"/v1/nodes/{node['uuid']}").status_code == 204
            assert c.get("/v1/ports").json()["ports"] == []
    finally:
        server.stop()


def test_two_servers_share_the_feed(postgres: Postgres, tmp_path: Path) -> None:
    """Scale-out: an agent long-polling server A is woken at once by a port bound
    through server B (PostgreSQL NOTIFY), not by A's 1 s safety-net re-check; a
    conductor-side wait on B sees A's agent report the same way."""
    url = postgres.create_database("fanout")
    a = start_server(tmp_path / "a", database_url=url)
    b = start_server(tmp_path / "b", database_url=url)
    try:
        with a.client(None) as ca, b.client(None) as cb:
            heartbeat = {"host": "nic-fan", "configurations": {"smartnic": True}}
            r = ca.post("/network/v2.0/metalnic/agents/heartbeat", json=heartbeat)
            assert r.status_code in (200, 201), r.text
            start = ca.get("/network/v2.0/metalnic/hosts/nic-fan/desired").json()["revision"]
            net = cb.post("/network/v2.0/networks", json={"network": {"name": "fan"}}).json()
            port = {
                "network_id": net["network"]["id"],
                "binding:vnic_type": "smart-nic",
                "binding:host_id": "nic-fan",
                "binding:profile": {
                    "local_link_information": [{"hostname": "nic-fan", "port_id": "p0"}]
                },
            }
            delays = []
            made: dict[str, float] = {}

            def change() -> None:
                made["at"] = time.monotonic()
                cb.post("/network/v2.0/ports", json={"port": dict(port)})

            for _ in range(3):  # several rounds: one fast wake could be luck
                timer = threading.Timer(0.1, change)
                timer.start()
                r = ca.get(
                    "/network/v2.0/metalnic/hosts/nic-fan/desired",
                    params={"since": start, "wait": 20},
                )
                woke = time.monotonic()
                timer.join()
                assert r.json()["revision"] > start
                start = r.json()["revision"]
                delays.append(woke - made["at"])
                port["mac_address"] = f"fa:16:3e:00:00:{len(delays):02x}"
        # Without the fan-out each wake would take ~0.9 s (the re-check timer).
        assert max(delays) < 0.6, delays
    finally:
        a.stop()
        b.stop()
