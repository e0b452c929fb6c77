"""Every list of the network API costs the same number of SQL statements for 1 item
as for 50: no list may query once per row (a lazy load per port made listing 500
ports cost 500 extra queries).  In-process: the real app on a real SQLite file,
every statement counted by an SQLAlchemy engine event; the app's lifespan (and so
the conductor's periodic loop, which queries on its own) is not started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.server import create_app
from metalnic.settings import Settings

API = "/network/v2.0"


class Counted:
    def __init__(self, client: TestClient, statements: list[str]) -> None:
        self.client, self.statements = client, statements
        self.network: str | None = None  # the ports' network, made with the first port

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(API + path, json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def count(self, path: str) -> tuple[int, int]:
        """(statements, items) of one GET of a list."""
        self.statements.clear()
        r = self.client.get(API + path)
        assert r.status_code == 200, r.text
        (items,) = r.json().values()
        return len(self.statements), len(items)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Counted]:
    settings = Settings(state_dir=tmp_path)
    db = Database(settings.resolved_database_url())
    app = create_app(settings, db)
    engine = db.engine
    migrate.upgrade(engine)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield Counted(TestClient(app), statements)
    db.dispose()


def _network(api: Counted) -> str:
    return str(api.post("/networks", {"network": {"name": "n"}})["network"]["id"])


def add_ports(api: Counted, i: int) -> None:
    api.network = api.network or _network(api)
    group = api.post("/security-groups", {"security_group": {"name": f"g{i}"}})
    host = f"nic-{i}"
    api.post(
        "/ports",
        {
            "port": {
                "network_id": api.network,
                "binding:vnic_type": "smart-nic",
                "binding:host_id": host,
                "binding:profile": {
                    "local_link_information": [{"hostname": host, "port_id": "pf0hpf"}]
                },
                # Ports differ in how many groups they have: one, or two.
                "security_groups": [group["security_group"]["id"]] * (1 + i % 2),
            }
        },
    )


def add_networks(api: Counted, i: int) -> None:
    _network(api)


def add_groups(api: Counted, i: int) -> None:
    group = api.post("/security-groups", {"security_group": {"name": f"g{i}"}})
    gid = group["security_group"]["id"]
    body = {"security_group_id": gid, "direction": "ingress", "protocol": "tcp"}
    api.post("/security-group-rules", {"security_group_rule": body})


def add_agents(api: Counted, i: int) -> None:
    body = {"host": f"agent-{i}", "configurations": {"nic_hosts": [f"nic-{i}"]}}
    api.post("/metalnic/agents/heartbeat", body)


LISTS: dict[str, tuple[Callable[[Counted, int], None], str, int]] = {
    # name: (add the i-th item, list path, items listed per item added)
    "ports": (add_ports, "/ports", 1),
    "networks": (add_networks, "/networks", 1),
    "security-groups": (add_groups, "/security-groups", 1),
    "security-group-rules": (add_groups, "/security-group-rules", 3),  # + 2 default egress
    "agents": (add_agents, "/agents", 1),
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_a_list_of_50_costs_the_statements_of_a_list_of_1(api: Counted, name: str) -> None:
    add, path, per_item = LISTS[name]
    add(api, 0)
    one, listed_one = api.count(path)
    for i in range(1, 50):
        add(api, i)
    fifty, listed_fifty = api.count(path)
    assert listed_fifty - listed_one == 49 * per_item, (listed_one, listed_fifty)
    assert fifty == one, f"{path}: {one} statements for {listed_one}, {fifty} for {listed_fifty}"


def test_a_port_create_costs_the_same_with_1_or_50_ports_in_its_group(api: Counted) -> None:
    """A new member of the default group (rule: ingress from members) changes what
    every member's NIC allows: their feeds are bumped in one statement, not one each."""
    net = _network(api)

    def create(i: int) -> int:
        host = f"nic-{i}"
        body = {"network_id": net, "binding:host_id": host, "binding:vnic_type": "smart-nic"}
        api.statements.clear()
        api.post("/ports", {"port": body})
        return len(api.statements)

    create(0)  # makes the project's default group
    second = create(1)
    for i in range(2, 50):
        create(i)
    assert create(50) == second
