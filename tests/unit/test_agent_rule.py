"""The one rule of who serves a NIC host (network/agents.py) and the pure bind decision.

The rule runs against a real SQLite database (migrated, no mocks); time passes
by moving a claim's ``renewed_at`` back, as a silent holder's would be.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from metalnic.auth import Principal
from metalnic.db import migrate
from metalnic.db.base import utcnow
from metalnic.db.session import Database
from metalnic.errors import Forbidden, NicHostHeld
from metalnic.network import agents
from metalnic.network.binding import bind_decision
from metalnic.network.models import Agent, Network, NetworkPort, NicHostClaim

DOWN = 15.0
RACK1 = Principal("rack1", frozenset({"agent"}), None, frozenset({"nic1", "nic2"}))
RACK2 = Principal("rack2", frozenset({"agent"}), None, frozenset({"nic1"}))
ADMIN = Principal("admin", frozenset({"admin"}), "ops")
MEMBER = Principal("alice", frozenset({"member"}), "a")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'rule.sqlite'}")
    migrate.upgrade(database.engine)
    with database.transaction() as s:
        for name, user in (("agent-1", "rack1"), ("agent-2", "rack2"), ("agent-3", "rack1")):
            s.add(
                Agent(
                    id=name, agent_type="Open vSwitch agent", binary="b", host=name,
                    configurations={}, registered_by=user,
                )
            )  # fmt: skip
    yield database
    database.dispose()


def _claim(db: Database, agent_id: str, hosts: list[str]) -> set[str]:
    with db.transaction() as s:
        return agents.claim(s, s.get_one(Agent, agent_id), hosts, DOWN)


def _silence(db: Database, agent_id: str) -> None:
    """The agent stops heartbeating for longer than the down time."""
    past = utcnow() - dt.timedelta(seconds=DOWN + 1)
    with db.transaction() as s:
        s.execute(
            update(NicHostClaim).where(NicHostClaim.agent_id == agent_id).values(renewed_at=past)
        )
        s.execute(update(Agent).where(Agent.id == agent_id).values(heartbeat_timestamp=past))


def _holder(db: Database, host: str) -> str | None:
    with db.transaction() as s:
        agent = agents.holder(s, host)
        return agent.host if agent else None


def test_grants_come_from_the_users_file_and_the_api(db: Database) -> None:
    with db.transaction() as s:
        assert agents.not_granted(s, RACK1, ["nic1", "nic2"]) == []
        assert agents.not_granted(s, RACK2, ["nic1", "nic2", "nic3"]) == ["nic2", "nic3"]
        assert agents.not_granted(s, ADMIN, ["anything"]) == []  # admins need no grant
        assert agents.not_granted(s, MEMBER, ["nic1"]) == ["nic1"]  # not an agent at all
        agents.set_grants(s, "rack2", ["nic2"], frozenset())
    with db.transaction() as s:
        assert agents.not_granted(s, RACK2, ["nic1", "nic2", "nic3"]) == ["nic3"]
        assert agents.grants(s) == {"rack2": ["nic2"]}


def test_one_holder_and_takeover_only_after_death(db: Database) -> None:
    assert _claim(db, "agent-1", ["nic1"]) == {"nic1"}
    with pytest.raises(NicHostHeld, match="agent agent-1 \\(user rack1\\)"):
        _claim(db, "agent-2", ["nic1"])
    assert _claim(db, "agent-1", ["nic1"]) == set()  # renewing changes nothing
    _silence(db, "agent-1")
    with db.transaction() as s:
        assert agents.serving(s, "nic1", DOWN) is None  # dead holders serve nothing
    assert _claim(db, "agent-2", ["nic1"]) == {"nic1"}
    assert _holder(db, "nic1") == "agent-2"
    with pytest.raises(NicHostHeld, match="agent-2"):
        _claim(db, "agent-1", ["nic1"])  # the old holder is back: too late


def test_a_claim_is_all_or_nothing_and_dropping_releases(db: Database) -> None:
    _claim(db, "agent-2", ["nic2"])
    with pytest.raises(NicHostHeld):
        _claim(db, "agent-1", ["nic1", "nic2"])  # the transaction rolls back
    assert _holder(db, "nic1") is None
    assert _claim(db, "agent-2", ["nic1"]) == {"nic1", "nic2"}  # gained nic1, let nic2 go
    assert _holder(db, "nic2") is None


def test_a_disabled_holder_can_be_taken_over(db: Database) -> None:
    _claim(db, "agent-1", ["nic1"])
    with db.transaction() as s:
        s.get_one(Agent, "agent-1").admin_state_up = False
    assert _claim(db, "agent-2", ["nic1"]) == {"nic1"}


def test_speaks_for_needs_the_holder_user_and_a_grant(db: Database) -> None:
    _claim(db, "agent-3", ["nic2"])  # rack1's second agent process
    with db.transaction() as s:
        agents.speaks_for(s, RACK1, "nic2")
        agents.speaks_for(s, ADMIN, "nic2")
        for who in (RACK2, MEMBER):
            with pytest.raises(Forbidden):
                agents.speaks_for(s, who, "nic2")
        revoked = Principal("rack1", frozenset({"agent"}), None, frozenset({"nic1"}))
        with pytest.raises(Forbidden):
            agents.speaks_for(s, revoked, "nic2")  # holder, but no longer granted


def test_revoking_an_api_grant_releases_the_claim(db: Database) -> None:
    with db.transaction() as s:
        agents.set_grants(s, "rack2", ["nic5", "nic6"], frozenset())
    _claim(db, "agent-2", ["nic5", "nic6"])
    with db.transaction() as s:
        assert agents.set_grants(s, "rack2", ["nic6"], frozenset()) == {"nic5"}
    assert _holder(db, "nic5") is None and _holder(db, "nic6") == "agent-2"
    with db.transaction() as s:  # still granted by the users file: kept
        assert agents.set_grants(s, "rack2", [], frozenset({"nic6"})) == set()
    assert _holder(db, "nic6") == "agent-2"


# --- bind_decision (pure) ----------------------------------------------------------------


def _agent(mode: str = "local", **config: Any) -> Agent:
    return Agent(id="a", host="agent-x", configurations={"mode": mode, "smartnic": True, **config})


def _port(*links: dict[str, Any]) -> NetworkPort:
    profile = {"local_link_information": [{"hostname": "nic1", **x} for x in links]}
    return NetworkPort(id="p", host_id="nic1", vnic_type="smart-nic", profile=profile)


NET = Network(id="n", physical_network="physnet1")
CERT = {"ovsdb_cert": "-----BEGIN CERTIFICATE-----..."}


@pytest.mark.parametrize(
    ("port", "agent", "vif", "reason"),
    [
        (_port({"port_id": "p0"}), None, "binding_failed", "no live Open vSwitch agent"),
        (_port({"port_id": "p0"}), _agent(), "ovs", None),
        (_port({"port_id": "p0", **CERT}), _agent("remote"), "ovs", None),
        (_port({"port_id": "p0", **CERT}), _agent(), "binding_failed", "remote NIC"),
        (_port({"port_id": "p0"}), _agent("remote"), "binding_failed", "local NIC"),
        (
            _port({"port_id": "p0", **CERT}, {"port_id": "p1"}),
            _agent("remote"),
            "binding_failed",
            "mixes remote",
        ),
        (_port({"port_id": "p0"}), _agent(smartnic=False), "binding_failed", "smart NIC support"),
        (
            _port({"port_id": "p0"}),
            _agent(bridge_mappings={"other": "br"}),
            "binding_failed",
            "no bridge for physical network physnet1",
        ),
    ],
)
def test_bind_decision(
    port: NetworkPort, agent: Agent | None, vif: str, reason: str | None
) -> None:
    decision = bind_decision(port, NET, agent)
    assert decision.vif_type == vif
    if reason is None:
        assert decision.reason is None
        assert decision.vif_details["remote_nic"] is (
            "ovsdb_cert" in port.profile["local_link_information"][0]
        )
    else:
        assert decision.reason is not None and reason in decision.reason, decision.reason
