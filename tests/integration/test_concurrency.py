"""Racing clients: no concurrent write is lost, on SQLite and on PostgreSQL.

Over real HTTP against a real ``metalnic serve``: many clients change one
resource at the same moment (a barrier releases them together).  Every write
must be either applied (2xx, and still visible afterwards) or refused with 409
in the API's own error format — never answered 2xx and then silently
overwritten by a neighbour.  Racing provision verbs get exactly one winner per
transition and leave the node in a clear state with no reservation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.conductor_helpers import wait_for
from tests.integration.helpers import make_node, make_port
from tests.support import Postgres, Server, start_postgres, start_server

RACERS = 50
STALE = "was changed by another request"
ENV = {"METALNIC_NETWORK_VLAN_RANGES": '["physnet1:100:199"]', "METALNIC_PERIODIC_INTERVAL": "0.3"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def racing_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"race-{request.param}")
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_database("race")
    srv = start_server(tmp, database_url=url, env=ENV)
    yield srv
    srv.stop()


def race(server: Server, n: int, send: Callable[[httpx.Client, int], httpx.Response]) -> list[Any]:
    """Run ``send(client, i)`` for i in 0..n-1 at once, each on its own connection."""
    barrier = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        # Connect after the start line: a connection opened before it could sit idle
        # past the server's keep-alive timeout on a loaded machine and be dropped.
        with server.client() as c:
            barrier.wait(timeout=120)
            return send(c, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def ironic_conflict(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) == {"error_message"}, body
    fault = json.loads(body["error_message"])
    assert set(fault) == {"faultcode", "faultstring", "debuginfo"}
    assert fault["faultcode"] == "Client"
    return str(fault["faultstring"])


def neutron_conflict(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    assert body["NeutronError"]["type"] == "HTTPConflict"
    return str(body["NeutronError"]["message"])


def check_extra_race(server: Server, path: str) -> None:
    """50 PATCHes add /extra/k<i>: each 200's key survives, each 409 left nothing."""
    answers = race(
        server,
        RACERS,
        lambda c, i: c.patch(path, json=[{"op": "add", "path": f"/extra/k{i}", "value": i}]),
    )
    applied = {f"k{i}" for i, r in enumerate(answers) if r.status_code == 200}
    refused = {f"k{i}" for i, r in enumerate(answers) if r.status_code == 409}
    assert len(applied) + len(refused) == RACERS, [r.text for r in answers]
    assert applied, "no PATCH was applied at all"
    for r in answers:
        if r.status_code == 409:
            assert STALE in ironic_conflict(r)
    with server.client() as c:
        extra = c.get(path).json()["extra"]
    assert set(extra) == applied  # nothing lost, nothing half-written
    assert all(extra[k] == int(k[1:]) for k in extra)


def test_parallel_node_patches_lose_nothing(racing_server: Server) -> None:
    with racing_server.client() as c:
        node = make_node(c)
    check_extra_race(racing_server, f"/v1/nodes/{node['uuid']}")


def test_parallel_port_patches_lose_nothing(racing_server: Server) -> None:
    with racing_server.client() as c:
        port = make_port(c, make_node(c)["uuid"])
    check_extra_race(racing_server, f"/v1/ports/{port['uuid']}")


def test_parallel_portgroup_patches_lose_nothing(racing_server: Server) -> None:
    with racing_server.client() as c:
        node = make_node(c)
        r = c.post("/v1/portgroups", json={"node_uuid": node["uuid"]})
        assert r.status_code == 201, r.text
    check_extra_race(racing_server, f"/v1/portgroups/{r.json()['uuid']}")


def check_neutron_race(server: Server, path: str, key: str) -> None:
    """50 PUTs of a description: every applied one is one revision (two writes from
    the same read would share one and leave the count short), refusals are 409."""
    net = f"{server.url}/network/v2.0"
    with httpx.Client(base_url=net, timeout=30) as c:
        start = c.get(path).json()[key]["revision_number"]
    answers = race(
        server,
        RACERS,
        lambda c, i: c.put(f"{net}{path}", json={key: {"description": f"d{i}"}}),
    )
    applied = [i for i, r in enumerate(answers) if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 409]
    assert len(applied) + len(refused) == RACERS, [r.text for r in answers]
    assert applied
    for r in refused:
        assert STALE in neutron_conflict(r)
    with httpx.Client(base_url=net, timeout=30) as c:
        end = c.get(path).json()[key]
    assert end["revision_number"] - start == len(applied)
    assert end["description"] in {f"d{i}" for i in applied}


def test_parallel_network_updates_lose_nothing(racing_server: Server) -> None:
    with httpx.Client(base_url=racing_server.url + "/network/v2.0", timeout=30) as c:
        r = c.post("/networks", json={"network": {"name": "race"}})
        assert r.status_code == 201, r.text
    check_neutron_race(racing_server, f"/networks/{r.json()['network']['id']}", "network")


def test_parallel_network_port_updates_lose_nothing(racing_server: Server) -> None:
    with httpx.Client(base_url=racing_server.url + "/network/v2.0", timeout=30) as c:
        r = c.post("/networks", json={"network": {"name": "race-ports"}})
        assert r.status_code == 201, r.text
        r = c.post("/ports", json={"port": {"network_id": r.json()["network"]["id"]}})
        assert r.status_code == 201, r.text
    check_neutron_race(racing_server, f"/ports/{r.json()['port']['id']}", "port")


def test_parallel_security_group_updates_lose_nothing(racing_server: Server) -> None:
    with httpx.Client(base_url=racing_server.url + "/network/v2.0", timeout=30) as c:
        r = c.post("/security-groups", json={"security_group": {"name": "race"}})
        assert r.status_code == 201, r.text
    check_neutron_race(
        racing_server, f"/security-groups/{r.json()['security_group']['id']}", "security_group"
    )


def test_if_match_revision_number(racing_server: Server) -> None:
    """Neutron's compare-and-swap: If-Match: revision_number=N applies only at N (else 412)."""
    with httpx.Client(base_url=racing_server.url + "/network/v2.0", timeout=30) as c:
        net = c.post("/networks", json={"network": {"name": "cas"}}).json()["network"]
        rev = net["revision_number"]
        path = f"/networks/{net['id']}"
        answers = race(
            racing_server,
            10,
            lambda c2, i: c2.put(
                f"{racing_server.url}/network/v2.0{path}",
                json={"network": {"name": f"cas-{i}"}},
                headers={"If-Match": f"revision_number={rev}"},
            ),
        )
        codes = sorted(r.status_code for r in answers)
        # One wins; the others see another revision (412) or lose the write race (409).
        assert codes.count(200) == 1, codes
        assert set(codes) <= {200, 409, 412}, codes
        for r in answers:
            if r.status_code == 412:
                assert r.json()["NeutronError"]["type"] == "RevisionNumberConstraintFailed"
        shown = c.get(path).json()["network"]
        assert shown["revision_number"] == rev + 1
        stale = c.delete(path, headers={"If-Match": f"revision_number={rev}"})
        assert stale.status_code == 412, stale.text
        bad = c.delete(path, headers={"If-Match": "revision_number=x"})
        assert bad.status_code == 400, bad.text
        assert c.get(path).status_code == 200  # neither deleted it
        ok = c.delete(path, headers={"If-Match": f"revision_number={rev + 1}"})
        assert ok.status_code == 204, ok.text


def test_racing_provision_verbs_take_turns(racing_server: Server) -> None:
    """10 parallel `manage` (enroll), then 10 parallel `provide` (manageable): the
    refused get NodeLocked (409) or not-allowed-in-this-state (400) in Ironic's
    format; the accepted ones ran one at a time (the event log never shows a verb
    accepted while another one's flow ran); `provide` has exactly one winner (it is
    not allowed from `available`), while a `manage` that arrives after the first
    one finished is a new, valid re-verification (manageable → verifying).  The
    node ends where the verbs took it, unlocked, without an error."""
    with racing_server.client() as c:
        node = make_node(
            c,
            network_interface="fake",
            deploy_interface="fake",
            driver_info={"fake_power_delay": "0.05"},
        )["uuid"]
    for verb, state in (("manage", "manageable"), ("provide", "available")):
        answers = race(
            racing_server,
            10,
            lambda c, i, verb=verb: c.put(  # type: ignore[misc]
                f"/v1/nodes/{node}/states/provision", json={"target": verb}
            ),
        )
        codes = sorted(r.status_code for r in answers)
        assert set(codes) <= {202, 400, 409}, codes
        assert codes.count(202) == 1 if verb == "provide" else codes.count(202) >= 1, codes
        for r in answers:
            if r.status_code != 202:
                ironic_conflict(r)  # Ironic's format, whichever refusal
        with racing_server.client() as c:
            shown = wait_for(c, node, state)
            events = c.get(f"/v1/nodes/{node}/history").json()["history"]
        assert shown["last_error"] is None
        steps = [str(e["event"]) for e in events if e["event_type"] == "provision"]
        requested = [e for e in steps if e.startswith(f"{verb} requested")]
        assert len(requested) == codes.count(202), steps
        # Strictly alternating: every accepted verb's flow ended before the next began.
        for first, second in zip(steps, steps[1:], strict=False):
            assert not (" requested" in first and " requested" in second), steps


def test_patches_racing_a_flow_neither_fail_it_nor_get_lost(racing_server: Server) -> None:
    """The conductor writes the node all through a flow (power state, internal info,
    the final transition); users PATCHing it meanwhile must not make the flow fail,
    and their applied changes must survive the flow's writes."""
    with racing_server.client() as c:
        node = make_node(
            c,
            network_interface="fake",
            deploy_interface="fake",
            driver_info={"fake_power_delay": "0.3"},
        )["uuid"]
    applied: set[str] = set()
    for round_, (verb, state) in enumerate((("manage", "manageable"), ("provide", "available"))):

        def send(c: httpx.Client, i: int, round_: int = round_, verb: str = verb) -> Any:
            if i == 0:  # the verb, released with the PATCHes
                return c.put(f"/v1/nodes/{node}/states/provision", json={"target": verb})
            return c.patch(
                f"/v1/nodes/{node}",
                json=[{"op": "add", "path": f"/extra/r{round_}k{i}", "value": i}],
            )

        answers = race(racing_server, 21, send)
        assert answers[0].status_code == 202, answers[0].text
        for i, r in enumerate(answers[1:], start=1):
            if r.status_code == 200:
                applied.add(f"r{round_}k{i}")
            else:
                assert r.status_code == 409, r.text  # a lost race or NodeLocked
                ironic_conflict(r)
        with racing_server.client() as c:
            shown = wait_for(c, node, state)
        assert shown["last_error"] is None
    assert set(shown["extra"]) == applied


def new_network_port(c: httpx.Client, name: str) -> str:
    r = c.post("/network/v2.0/networks", json={"network": {"name": name}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]["id"]
    r = c.post("/network/v2.0/ports", json={"port": {"network_id": net}})
    assert r.status_code == 201, r.text
    return str(r.json()["port"]["id"])


def check_one_attach_wins(server: Server, targets: list[str], vif: str) -> None:
    """Attach ``vif`` to every node in ``targets`` at once (a node may repeat):
    exactly one attach is applied, every other one is refused with 409 in Ironic's
    format, and the VIF is recorded exactly once, on the winner's node."""
    answers = race(
        server, len(targets), lambda c, i: c.post(f"/v1/nodes/{targets[i]}/vifs", json={"id": vif})
    )
    codes = [r.status_code for r in answers]
    assert sorted(codes) == [204] + [409] * (len(targets) - 1), [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            ironic_conflict(r)
    winner = targets[codes.index(204)]
    with server.client() as c:
        held = {
            node: [v["id"] for v in c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]]
            for node in set(targets)
        }
        assert {n: v for n, v in held.items() if v} == {winner: [vif]}, held
        # The claim follows the record: detached, the VIF can go to another node.
        assert c.delete(f"/v1/nodes/{winner}/vifs/{vif}").status_code == 204
        other = next((n for n in targets if n != winner), None)
        if other is not None:
            r = c.post(f"/v1/nodes/{other}/vifs", json={"id": vif})
            assert r.status_code == 204, r.text
            assert c.delete(f"/v1/nodes/{other}/vifs/{vif}").status_code == 204


def test_one_vif_raced_onto_many_nodes_lands_on_one(racing_server: Server) -> None:
    """10 nodes, each with a free port, race to attach the same network port."""
    with racing_server.client() as c:
        nodes = [make_node(c)["uuid"] for _ in range(10)]
        for node in nodes:
            make_port(c, node)
        vif = new_network_port(c, "vif-race")
    check_one_attach_wins(racing_server, nodes, vif)


def test_one_vif_raced_twice_onto_one_node_lands_once(racing_server: Server) -> None:
    """One node with 3 free ports; 10 attaches of the same VIF race onto it."""
    with racing_server.client() as c:
        node = make_node(c)["uuid"]
        for _ in range(3):
            make_port(c, node)
        vif = new_network_port(c, "vif-race-one")
    check_one_attach_wins(racing_server, [node] * 10, vif)


def test_vif_claim_goes_with_its_port(racing_server: Server) -> None:
    """Deleting the port that carries a VIF frees the VIF for another node."""
    with racing_server.client() as c:
        first, second = make_node(c)["uuid"], make_node(c)["uuid"]
        port = make_port(c, first)["uuid"]
        make_port(c, second)
        vif = new_network_port(c, "vif-free")
        assert c.post(f"/v1/nodes/{first}/vifs", json={"id": vif}).status_code == 204
        r = c.post(f"/v1/nodes/{second}/vifs", json={"id": vif})
        assert r.status_code == 409, r.text
        assert c.delete(f"/v1/ports/{port}").status_code == 204
        r = c.post(f"/v1/nodes/{second}/vifs", json={"id": vif})
        assert r.status_code == 204, r.text


def test_no_stale_write_left_a_trace_in_the_log(racing_server: Server) -> None:
    """The refusals above are answers, not crashes: no traceback in the server log."""
    assert "Traceback" not in racing_server.log()
