"""Every inventory request of /v1 is one database transaction, the failed ones too.

The routes hold no session (import-linter enforces that); what it cannot see is a
route that calls the inventory twice, which would split one request into two
commits (a check in the first, a write in the second: a race between them) or
render in a second transaction what the first one wrote.  In-process: the real app
on a real SQLite file, each transaction counted by an SQLAlchemy engine event; the
app's lifespan (and so the conductor's periodic loop, which opens transactions of
its own) is not started.  Verbs that go to the conductor (provision, power, VIF
attach) are not here: a flow is several transactions by design.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.server import create_app
from metalnic.settings import Settings

HEADERS = {"X-OpenStack-Ironic-API-Version": "1.53"}


class Counted:
    """A client that records, per request, how many transactions the server began."""

    def __init__(self, client: TestClient, begins: list[object]) -> None:
        self.client, self.begins = client, begins
        self.wrong: list[str] = []

    def call(self, method: str, path: str, status: int, body: Any = None) -> Any:
        self.begins.clear()
        r = self.client.request(method, path, json=body, headers=HEADERS)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        if len(self.begins) != 1:
            self.wrong.append(f"{method} {path} ({status}): {len(self.begins)} transactions")
        return r.json() if r.content else None


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Counted]:
    settings = Settings(state_dir=tmp_path)
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db.engine)
    begins: list[object] = []
    event.listen(db.engine, "begin", begins.append)
    yield Counted(TestClient(create_app(settings, db)), begins)
    db.dispose()


def test_each_inventory_request_is_one_transaction(api: Counted) -> None:
    node = api.call("POST", "/v1/nodes", 201, {"driver": "fake-hardware", "name": "n1"})["uuid"]
    api.call("POST", "/v1/nodes", 409, {"driver": "fake-hardware", "name": "n1"})
    for path in ("", "/detail", f"/{node}", f"/{node}/states", f"/{node}/vifs"):
        api.call("GET", f"/v1/nodes{path}", 200)
    api.call("GET", f"/v1/nodes/{node}/history", 200)
    api.call("GET", "/v1/nodes/nope", 404)
    api.call("PATCH", f"/v1/nodes/{node}", 200, [{"op": "add", "path": "/extra/a", "value": 1}])
    api.call("PUT", f"/v1/nodes/{node}/maintenance", 202, {"reason": "r"})
    api.call("DELETE", f"/v1/nodes/{node}/maintenance", 202)

    group = api.call("POST", "/v1/portgroups", 201, {"node_uuid": node, "name": "g1"})["uuid"]
    port_body = {"node_uuid": node, "address": "52:54:00:00:00:01", "portgroup_uuid": group}
    port = api.call("POST", "/v1/ports", 201, port_body)["uuid"]
    api.call("POST", "/v1/ports", 409, port_body)
    for path in (
        "/v1/ports",
        "/v1/ports/detail",
        f"/v1/ports/{port}",
        f"/v1/nodes/{node}/ports",
        f"/v1/nodes/{node}/portgroups",
        "/v1/portgroups",
        "/v1/portgroups/detail",
        f"/v1/portgroups/{group}",
        f"/v1/portgroups/{group}/ports",
        f"/v1/portgroups/{group}/ports/detail",
    ):
        api.call("GET", path, 200)
    extra = [{"op": "add", "path": "/extra/a", "value": 1}]
    api.call("PATCH", f"/v1/ports/{port}", 200, extra)
    api.call("PATCH", f"/v1/portgroups/{group}", 200, extra)
    api.call("DELETE", f"/v1/ports/{port}", 204)
    api.call("DELETE", f"/v1/portgroups/{group}", 204)
    api.call("DELETE", f"/v1/nodes/{node}", 204)
    assert api.wrong == []


def test_the_count_sees_a_second_transaction(api: Counted) -> None:
    """The counter itself: a request that needs two transactions is reported."""
    api.call("POST", "/v1/nodes", 201, {"driver": "fake-hardware", "name": "n1"})
    api.begins.clear()
    api.client.get("/v1/nodes", headers=HEADERS)
    api.client.get("/v1/nodes", headers=HEADERS)
    assert len(api.begins) == 2
