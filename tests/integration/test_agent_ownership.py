"""Who serves a NIC host, over real HTTP: grants, one live holder, takeover, races.

Agent users claim NIC hosts by naming them in heartbeats.  A claim outside the
caller's grant (users file ``nic_hosts`` or the admin-only agent-grants API) is
403; a claim of a host another live agent holds is 409 naming the holder; a
granted agent takes a host over only once its holder has been silent for
``agent_down_time``.  Racing claimants: exactly one holder, on SQLite and on
PostgreSQL.  A remote NIC's port never binds to a local-mode agent (nor the
reverse).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from metalnic.contract import agent as ac
from tests.support import (
    Postgres,
    Server,
    User,
    module_server,
    network_client,
    remote_llc,
    start_postgres,
    start_with_users,
)

DOWN_TIME = 5.0
ADMIN = ("admin", "admin-pw-1")
PW = {
    "rack1": "rack1-pw-2",  # granted GRANTS["rack1"] in the users file
    "rack2": "rack2-pw-3",  # granted GRANTS["rack2"] in the users file
    "rogue": "rogue-pw-4",  # an agent user with no grant
    "alice": "alice-pw-5",  # a member
}
GRANTS = {
    "rack1": ("nic-a", "nic-b", "nic-race", "nic-fresh"),
    "rack2": ("nic-a", "nic-race", "nic-fresh"),
}


def _start(tmp: Path, database_url: str | None = None) -> Server:
    users = [User(*ADMIN, "admin", "ops")]
    for name in ("rack1", "rack2", "rogue"):
        users.append(User(name, PW[name], "agent", nic_hosts=GRANTS.get(name, ())))
    users.append(User("alice", PW["alice"], "member", "project-a"))
    env = {"METALNIC_AGENT_DOWN_TIME": str(DOWN_TIME)}
    return start_with_users(tmp, users, database_url, env)


server = module_server(_start, "ownership")


def client(server: Server, user: str) -> httpx.Client:
    return network_client(server, ADMIN if user == "admin" else (user, PW[user]))


def beat(c: httpx.Client, host: str, nic_hosts: list[str], mode: str = "local") -> httpx.Response:
    config = {"mode": mode, "smartnic": True, "nic_hosts": nic_hosts}
    return c.post("/metalnic/agents/heartbeat", json={"host": host, "configurations": config})


def neutron_error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    return dict(body["NeutronError"])


def holder_of(server: Server, nic_host: str) -> str | None:
    """The agent host the server hands ``nic_host``'s ports to (from a bound port)."""
    with client(server, "admin") as c:
        net = c.post("/networks", json={"network": {"name": f"probe-{nic_host}"}})
        assert net.status_code == 201, net.text
        port = _port(c, net.json()["network"]["id"], nic_host, {"port_id": "probe"})
        c.delete(f"/ports/{port['id']}")
        c.delete(f"/networks/{net.json()['network']['id']}")
    details = port["binding:vif_details"]
    return str(details["agent_host"]) if port["binding:vif_type"] == "ovs" else None


def _port(c: httpx.Client, net_id: str, nic_host: str, link: dict[str, Any]) -> dict[str, Any]:
    body = {
        "network_id": net_id,
        "binding:vnic_type": "smart-nic",
        "binding:host_id": nic_host,
        "binding:profile": {"local_link_information": [{"hostname": nic_host, **link}]},
    }
    r = c.post("/ports", json={"port": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["port"])


def test_a_claim_outside_the_grant_is_refused(server: Server) -> None:
    with client(server, "rogue") as rogue, client(server, "rack2") as rack2:
        r = beat(rogue, "agent-rogue", ["nic-b"])
        assert r.status_code == 403, r.text
        assert "not granted NIC host(s) nic-b" in neutron_error(r)["message"]
        # rack2 is granted nic-a but not nic-b: the heartbeat as a whole is refused.
        r = beat(rack2, "agent-r2-b", ["nic-a", "nic-b"])
        assert r.status_code == 403 and "nic-b" in neutron_error(r)["message"]
        # The default claim is the agent's own host name: not granted either.
        r = rogue.post("/metalnic/agents/heartbeat", json={"host": "nic-x", "configurations": {}})
        assert r.status_code == 403
        assert rogue.get("/metalnic/hosts/nic-b/desired").status_code == 403
    with client(server, "admin") as admin:
        hosts = {a["host"] for a in admin.get("/agents").json()["agents"]}
    assert not hosts & {"agent-rogue", "agent-r2-b", "nic-x"}  # nothing was written


def test_a_second_live_claim_is_409_naming_the_holder(server: Server) -> None:
    with client(server, "rack1") as rack1, client(server, "rack2") as rack2:
        assert beat(rack1, "agent-r1-b", ["nic-b"]).status_code == 200
        assert beat(rack1, "agent-r1-a", ["nic-a"]).status_code == 200
        r = beat(rack2, "agent-r2-a", ["nic-a"])
        assert r.status_code == 409, r.text
        error = neutron_error(r)
        assert error["type"] == "NicHostInUse"
        assert "agent agent-r1-a (user rack1)" in error["message"]
        # The loser may not read the host's ports; the holder may.
        assert rack2.get("/metalnic/hosts/nic-a/desired").status_code == 403
        assert rack1.get("/metalnic/hosts/nic-a/desired").status_code == 200
        # Another agent process of the same user does not steal it either.
        assert beat(rack1, "agent-r1-other", ["nic-a"]).status_code == 409
        # An admin needs no grant, but obeys the one-holder rule.
        with client(server, "admin") as admin:
            assert beat(admin, "agent-admin", ["nic-a"]).status_code == 409
    assert holder_of(server, "nic-a") == "agent-r1-a"


def test_takeover_only_after_the_holder_is_dead(server: Server) -> None:
    with client(server, "rack1") as rack1, client(server, "rack2") as rack2:
        assert beat(rack1, "agent-r1-t", ["nic-race"]).status_code == 200
        assert beat(rack2, "agent-r2-t", ["nic-race"]).status_code == 409
        assert holder_of(server, "nic-race") == "agent-r1-t"
        time.sleep(DOWN_TIME + 0.5)  # rack1's agent stops heartbeating: dead
        assert holder_of(server, "nic-race") is None  # no live agent serves it
        with client(server, "rogue") as rogue:  # dead holder or not: no grant, no host
            assert beat(rogue, "agent-rogue-t", ["nic-race"]).status_code == 403
        r = beat(rack2, "agent-r2-t", ["nic-race"])
        assert r.status_code == 200, r.text
        assert holder_of(server, "nic-race") == "agent-r2-t"
        # The old holder comes back: now it is the one refused, and cut off.
        r = beat(rack1, "agent-r1-t", ["nic-race"])
        assert r.status_code == 409 and "agent-r2-t (user rack2)" in neutron_error(r)["message"]
        assert rack1.get("/metalnic/hosts/nic-race/desired").status_code == 403
        assert rack2.get("/metalnic/hosts/nic-race/desired").status_code == 200
        # Letting go: a heartbeat without the host releases it.
        assert beat(rack2, "agent-r2-t", []).status_code == 200
    assert holder_of(server, "nic-race") is None


def race(server: Server, nic_host: str, tries: int = 20) -> None:
    """``tries`` heartbeats at once, alternating between two granted agents: exactly
    one agent holds the host, every other claim is 409 naming it."""
    clients = {u: client(server, u) for u in ("rack1", "rack2")}
    try:
        jobs = [("rack1", "agent-r1-" + nic_host), ("rack2", "agent-r2-" + nic_host)] * (tries // 2)
        for user, host in jobs[:2]:  # both agents registered, holding nothing yet
            assert beat(clients[user], host, []).status_code == 200
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(lambda j: (j[1], beat(clients[j[0]], j[1], [nic_host])), jobs))
    finally:
        for c in clients.values():
            c.close()
    codes = sorted({r.status_code for _, r in answers})
    assert set(codes) <= {200, 409}, [(h, r.status_code, r.text) for h, r in answers]
    winners = {host for host, r in answers if r.status_code == 200}
    assert len(winners) == 1, winners
    (winner,) = winners
    for _host, r in answers:
        if r.status_code == 409:
            assert f"agent {winner} " in neutron_error(r)["message"]
    assert holder_of(server, nic_host) == winner


def test_racing_claims_have_one_winner(server: Server) -> None:
    race(server, "nic-fresh")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.mark.postgres
def test_racing_claims_have_one_winner_on_postgres(postgres: Postgres, tmp_path: Path) -> None:
    srv = _start(tmp_path, postgres.create_database("claims"))
    try:
        race(srv, "nic-race")  # nobody holds it: racing inserts
        time.sleep(DOWN_TIME + 0.5)
        race(srv, "nic-race")  # its holder is dead: racing takeovers (and the holder's return)
        with client(srv, "admin") as admin:  # deleting the agents frees the host
            for agent in admin.get("/agents").json()["agents"]:
                assert admin.delete(f"/agents/{agent['id']}").status_code == 204
        race(srv, "nic-race")
    finally:
        srv.stop()


def test_remote_and_local_mismatch_fails_binding(server: Server) -> None:
    with client(server, "rack1") as rack1, client(server, "admin") as admin:
        net = admin.post("/networks", json={"network": {"name": "mismatch"}}).json()["network"]
        llc = remote_llc("nic-b", "pf0hpf")
        remote_link = {k: llc[k] for k in ("port_id", "ovsdb_cert", "ovsdb_ca_cert")}
        assert beat(rack1, "agent-r1-b", ["nic-b"], mode="local").status_code == 200
        port = _port(admin, net["id"], "nic-b", remote_link)
        assert port["binding:vif_type"] == "binding_failed"
        reason = str(port["binding:vif_details"])
        assert "remote NIC" in reason and "local mode" in reason, reason
        local = _port(admin, net["id"], "nic-b", {"port_id": "p1"})
        assert local["binding:vif_type"] == "ovs"
        # The same NIC host served in remote mode: now the remote port binds, the local fails.
        assert beat(rack1, "agent-r1-b", ["nic-b"], mode="remote").status_code == 200
        assert admin.get(f"/ports/{port['id']}").json()["port"]["binding:vif_type"] == "ovs"
        local = admin.get(f"/ports/{local['id']}").json()["port"]
        assert local["binding:vif_type"] == "binding_failed"
        assert "local NIC" in str(local["binding:vif_details"])


def test_the_grant_api_is_admin_only_and_grants(server: Server) -> None:
    body = {"agent_grant": {"nic_hosts": ["nic-g1", "nic-g2"]}}
    for user in ("rogue", "alice", "rack1"):
        with client(server, user) as c:
            for r in (
                c.get("/metalnic/agent-grants"),
                c.get("/metalnic/agent-grants/rogue"),
                c.put("/metalnic/agent-grants/rogue", json=body),
                c.delete("/metalnic/agent-grants/rogue"),
            ):
                assert r.status_code == 403, (user, r.text)
                assert neutron_error(r)["type"] == "PolicyNotAuthorized"
    with client(server, "rogue") as rogue, client(server, "admin") as admin:
        assert beat(rogue, "agent-rogue-g", ["nic-g1"]).status_code == 403
        assert admin.get("/metalnic/agent-grants/rogue").status_code == 404
        for bad in ({"agent_grant": {"nic_hosts": "nic-g1"}}, {"nic_hosts": []}):
            r = admin.put("/metalnic/agent-grants/rogue", json=bad)
            assert r.status_code == 400 and neutron_error(r)["type"] == "HTTPBadRequest"
        r = admin.put("/metalnic/agent-grants/alice", json=body)  # not an agent user
        assert r.status_code == 400, r.text
        r = admin.put("/metalnic/agent-grants/rogue", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["agent_grant"] == {"user": "rogue", "nic_hosts": ["nic-g1", "nic-g2"]}
        listed = admin.get("/metalnic/agent-grants").json()["agent_grants"]
        assert {"user": "rogue", "nic_hosts": ["nic-g1", "nic-g2"]} in listed
        assert beat(rogue, "agent-rogue-g", ["nic-g1", "nic-g2"]).status_code == 200
        assert rogue.get("/metalnic/hosts/nic-g1/desired").status_code == 200
        # Revoked: released at once, cut off at once, refused on the next heartbeat.
        r = admin.put(
            "/metalnic/agent-grants/rogue", json={"agent_grant": {"nic_hosts": ["nic-g2"]}}
        )
        assert r.status_code == 200
        assert holder_of(server, "nic-g1") is None
        assert rogue.get("/metalnic/hosts/nic-g1/desired").status_code == 403
        assert beat(rogue, "agent-rogue-g", ["nic-g1", "nic-g2"]).status_code == 403
        assert admin.delete("/metalnic/agent-grants/rogue").status_code == 204
        assert beat(rogue, "agent-rogue-g", ["nic-g2"]).status_code == 403
        assert admin.delete("/metalnic/agent-grants/rogue").status_code == 404


def assert_follows_the_contract(state: dict[str, Any]) -> None:
    """The desired state has exactly the contract's fields, at every level."""

    def same(model: type[BaseModel], value: dict[str, Any]) -> None:
        assert set(value) == set(model.model_fields), (model.__name__, set(value))

    same(ac.DesiredState, state)
    assert state["ports"] and state["security_groups"]
    for port in state["ports"]:
        same(ac.DesiredPort, port)
    for rules in state["security_groups"].values():
        for rule in rules:
            same(ac.SecurityGroupRule, rule)
    for question in state["verify"]:
        same(ac.VerifyRequest, question)
    ac.DesiredState.model_validate(state)


def test_another_contract_version_is_refused_before_anything_is_written(server: Server) -> None:
    """Every contract call names the version it speaks; another one is a 400 naming both."""
    other = {"Metalnic-Agent-Contract": "99"}
    with client(server, "admin") as rack1:
        config = {"mode": "local", "smartnic": True, "nic_hosts": ["nic-v1"]}
        body = {"host": "agent-v99", "configurations": config}
        r = rack1.post("/metalnic/agents/heartbeat", json=body, headers=other)
        assert r.status_code == 400, r.text
        message = neutron_error(r)["message"]
        assert "speaks version 1" in message and "version 99" in message
        for method, path in (("GET", "desired"), ("POST", "report")):
            r = rack1.request(method, f"/metalnic/hosts/nic-v1/{path}", json={}, headers=other)
            assert r.status_code == 400 and "version 99" in neutron_error(r)["message"]
        # The same calls of this version: accepted, and answered with the version.
        now = {"Metalnic-Agent-Contract": "1"}
        r = rack1.post("/metalnic/agents/heartbeat", json=body | {"host": "agent-v1"}, headers=now)
        assert r.status_code == 200 and r.headers["Metalnic-Agent-Contract"] == "1"
        net = rack1.post("/networks", json={"network": {"name": "contract"}}).json()["network"]
        bound = _port(rack1, net["id"], "nic-v1", {"port_id": "pfb", "switch_info": "x"})
        assert bound["binding:vif_type"] == "ovs", bound
        r = rack1.get("/metalnic/hosts/nic-v1/desired", headers=now)
        assert r.status_code == 200 and r.headers["Metalnic-Agent-Contract"] == "1"
        # The server's answer is the contract's model exactly: no field missing or extra.
        state = r.json()
        assert_follows_the_contract(state)
        assert [p["id"] for p in state["ports"]] == [bound["id"]]
        rack1.delete(f"/ports/{bound['id']}")
        rack1.delete(f"/networks/{net['id']}")
    with client(server, "admin") as admin:
        hosts = {a["host"] for a in admin.get("/agents").json()["agents"]}
    assert "agent-v99" not in hosts and "agent-v1" in hosts
