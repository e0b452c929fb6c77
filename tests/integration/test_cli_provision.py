"""`metalnic node <verb> --wait`, `node power` and `node history` against a real server
(fake-hardware nodes: the conductor runs its real flows, the BMC is the fake one)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.integration.conductor_helpers import smartnic_node
from tests.integration.helpers import SMART_LLC, make_node, make_port
from tests.integration.test_conductor import FAST
from tests.support import VENV_BIN, Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("cli-provision"), env=FAST)
    yield srv
    srv.stop()


def metalnic(
    server: Server, *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "--url", server.url, "-f", "json", *args],
        capture_output=True, text=True, input=stdin, timeout=timeout,
    )  # fmt: skip


def settled(run: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout))


def test_the_lifecycle_with_wait_shows_states_and_events_as_they_happen(server: Server) -> None:
    with server.client() as c:
        node = smartnic_node(c)
    manage = metalnic(server, "node", "manage", node, "--wait", "60")
    assert settled(manage)["provision_state"] == "manageable"
    assert "manage requested: now verifying" in manage.stderr
    assert "provision     enroll → " in manage.stderr  # the state change, as it happened
    provide = metalnic(server, "node", "provide", node, "--wait", "60")
    assert settled(provide)["provision_state"] == "available"
    lines = provide.stderr.splitlines()
    assert any("power on (BMC confirmed)" in line for line in lines), provide.stderr
    assert not any("manage requested" in line for line in lines)  # only what this verb did
    deploy = metalnic(server, "node", "deploy", node, "--wait")
    assert settled(deploy) | {"last_error": None} == {
        "provision_state": "active", "target_provision_state": None,
        "power_state": "power on", "target_power_state": None, "last_error": None,
    }  # fmt: skip
    off = metalnic(server, "node", "power", "off", node, "--wait", "30")
    assert settled(off)["power_state"] == "power off"
    assert "power         power on → power off" in off.stderr
    undeploy = metalnic(server, "node", "undeploy", node, "--wait", "60")
    assert settled(undeploy)["provision_state"] == "available"
    events = json.loads(metalnic(server, "node", "history", node).stdout)
    texts = [e["event"] for e in events]
    assert "active requested: now deploying" in texts and "deleted requested: now deleting" in texts
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_a_failed_flow_exits_1_with_the_nodes_error(server: Server) -> None:
    with server.client() as c:
        node = smartnic_node(c, fake_power_fail="power on")
    assert settled(metalnic(server, "node", "manage", node, "--wait", "60"))
    provide = metalnic(server, "node", "provide", node, "--wait", "60")
    assert provide.returncode == 1, provide.stderr
    assert json.loads(provide.stdout)["provision_state"] == "clean failed"
    assert "error: the node is clean failed, not available:" in provide.stderr


def test_wait_gives_up_after_its_timeout_and_without_wait_nothing_is_followed(
    server: Server,
) -> None:
    with server.client() as c:
        node = smartnic_node(c, power_delay="3")
    assert settled(metalnic(server, "node", "manage", node, "--wait", "60"))
    slow = metalnic(server, "node", "provide", node, "--wait", "0.5")
    assert slow.returncode == 2 and "after 0.5 s" in slow.stderr, slow.stderr
    with server.client() as c:
        other = smartnic_node(c)
    quick = metalnic(server, "node", "manage", other)
    assert quick.returncode == 0 and quick.stdout == "", quick
    assert f"node {other}: manage requested" in quick.stderr


def test_rescue_reads_its_password_from_stdin_and_never_shows_it(server: Server) -> None:
    with server.client() as c:
        node = make_node(
            c, network_interface="fake", deploy_interface="fake", rescue_interface="fake"
        )["uuid"]
        make_port(c, node, is_smartnic=True, local_link_connection=SMART_LLC)
    for verb in ("manage", "provide", "deploy"):
        settled(metalnic(server, "node", verb, node, "--wait", "60"))
    rescue = metalnic(server, "node", "rescue", node, "--wait", "60", stdin="pw-Secret-42\n")
    assert settled(rescue)["provision_state"] == "rescue"
    history = metalnic(server, "node", "history", node)
    assert "pw-Secret-42" not in rescue.stdout + rescue.stderr + history.stdout
    empty = metalnic(server, "node", "unrescue", node, "--wait", "60")
    assert settled(empty)["provision_state"] == "active"
    refused = metalnic(server, "node", "rescue", node, stdin="")
    assert refused.returncode != 0 and "rescue needs a password" in refused.stderr
    bad = metalnic(server, "node", "clean", node, "--clean-steps", "[not json")
    assert bad.returncode != 0 and "--clean-steps is not JSON" in bad.stderr
