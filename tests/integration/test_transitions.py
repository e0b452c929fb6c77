"""Every verb of the state machine, over real HTTP: no 500 and no lock left behind.

Each row of ``conductor/states.py`` whose event is an API verb is driven on a
fresh fake-hardware smart NIC node, put into the row's state through the
database (as an earlier flow or a crash leaves it).  After the answer and
whatever flow it started have settled, the node must be unlocked in a stable
or waiting state — ``manage`` from ``available`` used to answer 500 and keep
the node reserved for ever.  Writes to a node that a flow holds are 409
``NodeLocked``, for the node and for its ports and port groups.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from metalnic.baremetal import states
from metalnic.baremetal.conductor import states as machine
from tests.integration.conductor_helpers import provision, smartnic_node, wait_for
from tests.integration.helpers import fault
from tests.integration.test_conductor import FAST
from tests.support import Server, start_server

# The API verb for each event (``deploy``/``undeploy`` are aliases of these).
VERB = {event: verb for verb, event in machine.VERBS.items() if verb not in ("deploy", "undeploy")}
ROWS = [r for r in machine.TABLE if r.event not in machine.INTERNAL_EVENTS]
OPTIONS: dict[str, dict[str, Any]] = {
    "clean": {"clean_steps": [{"interface": "deploy", "step": "erase_devices_metadata"}]},
    "rescue": {"rescue_password": "transitions-rescue"},
}
SETTLED = machine.STABLE_STATES | machine.WAIT_STATES
# The target a node waiting for its ramdisk agent has recorded.
WAIT_TARGET = {
    states.INSPECTWAIT: states.MANAGEABLE,
    states.CLEANWAIT: states.MANAGEABLE,
    states.DEPLOYWAIT: states.ACTIVE,
    states.RESCUEWAIT: states.RESCUE,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("transitions"), env=FAST)
    yield srv
    srv.stop()


def put_in(server: Server, node: str, state: str, target: str | None) -> None:
    server.sqlite_exec(
        "UPDATE nodes SET provision_state = ?, target_provision_state = ? WHERE uuid = ?",
        state,
        target,
        node,
    )


def settle(c: httpx.Client, node: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = c.get(f"/v1/nodes/{node}").json()
        if shown["provision_state"] in SETTLED and shown["reservation"] is None:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"node {node} never settled unlocked: {shown}")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.state}--{r.event}")
def test_every_verb_settles_unlocked(server: Server, row: machine.Row) -> None:
    with server.client() as c:
        node = smartnic_node(c, power_delay="0.01")
        put_in(server, node, row.state, WAIT_TARGET.get(row.state))
        r = c.put(
            f"/v1/nodes/{node}/states/provision",
            json={"target": VERB[row.event], **OPTIONS.get(row.event, {})},
        )
        assert r.status_code == 202, r.text
        shown = settle(c, node)
    if row.to in machine.STABLE_STATES:
        assert shown["provision_state"] == row.to  # a direct move: no flow ran
    if shown["provision_state"].endswith("failed") or shown["provision_state"] == states.ERROR:
        assert shown["last_error"], shown
    assert shown["target_provision_state"] is None or shown["provision_state"] in SETTLED
    assert "Traceback" not in server.log()


def test_writes_to_a_node_a_flow_holds_are_409_node_locked(server: Server) -> None:
    with server.client() as c:
        node = smartnic_node(c, power_delay="3")
        port = c.get("/v1/ports", params={"node": node}).json()["ports"][0]["uuid"]
        group = c.post("/v1/portgroups", json={"node_uuid": node}).json()["uuid"]
        put_in(server, node, states.MANAGEABLE, None)
        provision(c, node, "provide")  # cleaning powers off first: that takes 3 s
        assert c.get(f"/v1/nodes/{node}").json()["reservation"]
        extra = [{"op": "add", "path": "/extra/k", "value": "v"}]
        answers = {
            "node patch": c.patch(f"/v1/nodes/{node}", json=extra),
            "port patch": c.patch(f"/v1/ports/{port}", json=extra),
            "port create": c.post(
                "/v1/ports", json={"node_uuid": node, "address": "52:54:00:aa:bb:cc"}
            ),
            "port delete": c.delete(f"/v1/ports/{port}"),
            "portgroup patch": c.patch(f"/v1/portgroups/{group}", json=extra),
            "portgroup create": c.post("/v1/portgroups", json={"node_uuid": node}),
            "portgroup delete": c.delete(f"/v1/portgroups/{group}"),
            "node delete": c.delete(f"/v1/nodes/{node}"),
        }
        held = c.get(f"/v1/nodes/{node}").json()
        wait_for(c, node, "available")
        after = c.patch(f"/v1/nodes/{node}", json=extra)
        ports = c.get("/v1/ports", params={"node": node}).json()["ports"]
        groups = c.get("/v1/portgroups", params={"node": node}).json()["portgroups"]
    assert held["provision_state"] == "cleaning" and held["reservation"]
    for what, r in answers.items():
        assert r.status_code == 409, f"{what}: {r.status_code} {r.text}"
        assert "is locked by" in fault(r), what
    # Nothing was written meanwhile; once the flow is done the same write works.
    assert held["extra"] == {} and [p["uuid"] for p in ports] == [port] and len(groups) == 1
    assert after.status_code == 200 and after.json()["extra"] == {"k": "v"}


def test_a_reservation_naming_no_conductor_is_freed_and_bios_left(server: Server) -> None:
    """A node reserved by a conductor that has no row (it deregistered, or its row
    was lost) is released by the periodic pass; a host its journal says was held in
    BIOS is powered off, and the node says so."""
    with server.client() as c:
        node = smartnic_node(c, power_delay="0.01")
        r = c.put(f"/v1/nodes/{node}/states/power", json={"target": "power on"})
        assert r.status_code == 202, r.text
        wait_for(c, node, "enroll")
    server.sqlite_exec(
        "UPDATE nodes SET reservation = 'gone-host:1:ghost', "
        "driver_internal_info = '{\"bios_window\": true}' WHERE uuid = ?",
        node,
    )
    with server.client() as c:
        deadline = time.monotonic() + 30
        shown = c.get(f"/v1/nodes/{node}").json()
        while shown["reservation"] or "recovery_pending" in shown["driver_internal_info"]:
            assert time.monotonic() < deadline, shown
            time.sleep(0.1)
            shown = c.get(f"/v1/nodes/{node}").json()
    assert "gone-host:1:ghost" in shown["last_error"] and "held in BIOS" in shown["last_error"]
    assert shown["power_state"] == states.POWER_OFF
    assert shown["driver_internal_info"] == {}
