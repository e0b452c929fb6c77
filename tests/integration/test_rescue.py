"""Rescue as Ironic's agent rescue does it, against a real server and a real ramdisk
agent process over HTTP: the password is required and only its hash is kept
(masked, removed once the agent has it or the rescue ends), ``rescue wait`` ends
with the agent's heartbeat, ``rescue.finalize_rescue`` hands it the hash, and the
node moves to the tenant network without a power cycle (the power rule audited);
failures leave the host off and off the rescuing network."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from passlib.hash import sha512_crypt

from metalnic.baremetal import rescuepw
from tests.integration.conductor_helpers import audit_smartnic_order, history, provision, wait_for
from tests.integration.helpers import SMART_LLC, make_node, make_port
from tests.integration.test_conductor import FAST
from tests.support import VENV_BIN, Server, start_server

PASSWORD = "Rescue-me-7f3a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {**FAST, "METALNIC_RESCUE_CALLBACK_TIMEOUT": "6"}
    srv = start_server(tmp_path_factory.mktemp("rescue"), env=env)
    yield srv
    srv.stop()


class RescueRamdisk:
    """Starts the ramdisk agent each time the node boots it (a new "waiting for the
    ramdisk agent" in its history while in ``rescue wait``), as a host would."""

    def __init__(self, server: Server, node: str, mac: str, tmp: Path) -> None:
        self.server, self.node, self.mac, self.tmp = server, node, mac, tmp
        self.shadow = tmp / "shadow"
        self.log = tmp / "agent.log"
        self.agents: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RescueRamdisk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for agent in self.agents:
            if agent.poll() is None:
                agent.terminate()
            agent.wait(timeout=10)

    def _loop(self) -> None:
        booted = 0
        with httpx.Client(base_url=self.server.url, timeout=5) as c, self.log.open("ab") as out:
            while not self._stop.wait(0.1):
                state = c.get(f"/v1/nodes/{self.node}").json()["provision_state"]
                boots = sum(
                    e["event"].startswith("waiting for the ramdisk agent")
                    for e in c.get(f"/v1/nodes/{self.node}/history").json()["history"]
                )
                if state == "rescue wait" and boots != booted:
                    booted = boots
                    cmd = [str(VENV_BIN / "metalnic-ramdisk"), "--api-url", self.server.url,
                           "--mac", self.mac, "--disk", str(self.tmp / "disk"),
                           "--shadow", str(self.shadow), "--interval", "0.2"]  # fmt: skip
                    self.agents.append(subprocess.Popen(cmd, stdout=out, stderr=out))


def rescue_node(
    c: httpx.Client, server: Server, rescue_interface: str = "agent"
) -> tuple[str, str]:
    node = make_node(
        c,
        network_interface="fake",
        deploy_interface="fake",
        rescue_interface=rescue_interface,
        driver_info={"fake_power_delay": "0.05"},
    )
    port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
    server.sqlite_exec("UPDATE nodes SET provision_state='active' WHERE uuid=?", node["uuid"])
    return str(node["uuid"]), str(port["address"])


def stored_instance_info(server: Server, node: str) -> dict[str, object]:
    path = server.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT instance_info FROM nodes WHERE uuid=?", (node,)).fetchone()
    return dict(json.loads(row[0]))


def fault(r: httpx.Response) -> str:
    return str(json.loads(r.json()["error_message"])["faultstring"])


@pytest.mark.parametrize("body", [{}, {"rescue_password": ""}, {"rescue_password": "   "}])
def test_rescue_needs_a_non_empty_password(server: Server, body: dict[str, str]) -> None:
    with server.client() as c:
        node, _mac = rescue_node(c, server)
        r = c.put(f"/v1/nodes/{node}/states/provision", json={"target": "rescue", **body})
        assert r.status_code == 400, r.text
        assert fault(r) == rescuepw.REQUIRED
        shown = c.get(f"/v1/nodes/{node}").json()
    assert shown["provision_state"] == "active" and shown["reservation"] is None
    assert stored_instance_info(server, node) == {}


def test_a_password_is_only_for_rescue(server: Server) -> None:
    with server.client() as c:
        node, _mac = rescue_node(c, server)
        r = c.put(
            f"/v1/nodes/{node}/states/provision",
            json={"target": "deleted", "rescue_password": PASSWORD},
        )
        assert r.status_code == 400, r.text
        assert fault(r) == rescuepw.ONLY_RESCUE
        assert c.get(f"/v1/nodes/{node}").json()["provision_state"] == "active"


def test_rescue_waits_for_the_agent_which_takes_the_hash(server: Server, tmp_path: Path) -> None:
    with server.client() as c:
        node, mac = rescue_node(c, server)
        start = len(history(c, node))
        provision(c, node, "rescue", rescue_password=PASSWORD)
        waiting = wait_for(c, node, "rescue wait")
        # Kept as a salted SHA-512 crypt hash only, shown masked.
        stored = stored_instance_info(server, node)
        hashed = str(stored[rescuepw.HASH_KEY])
        assert hashed.startswith("$6$") and sha512_crypt.verify(PASSWORD, hashed)
        assert PASSWORD not in json.dumps(stored)
        assert waiting["instance_info"] == {rescuepw.HASH_KEY: "******"}
        with RescueRamdisk(server, node, mac, tmp_path) as ramdisk:
            rescued = wait_for(c, node, "rescue", timeout=30)
            ramdisk.agents[0].wait(timeout=10)  # it stops once it has the password
        events = history(c, node)[start:]
    assert ramdisk.agents[0].returncode == 0 and len(ramdisk.agents) == 1
    assert rescued["power_state"] == "power on" and rescued["last_error"] is None
    (line,) = ramdisk.shadow.read_text().splitlines()
    user, shadow_hash, *_ = line.split(":")
    assert user == "rescue" and shadow_hash == hashed
    assert ramdisk.shadow.stat().st_mode & 0o077 == 0
    # The agent has it: the server keeps nothing (Ironic's remove_rescue_password).
    assert rescuepw.HASH_KEY not in stored_instance_info(server, node)
    assert rescued["instance_info"] == {}
    assert rescued["driver_internal_info"].get("agent_token") is None
    texts = [e["event"] for e in events]
    steps = [t.removesuffix(": started") for t in texts if t.endswith(": started")]
    assert steps == [
        "detach tenant network",
        "attach rescuing network",
        "detach rescuing network",
        "attach tenant network",
    ]
    called = texts.index("ramdisk agent called back; handing it the rescue password (hashed)")
    assert "rescue password set by the ramdisk agent (user rescue)" in texts[called:]
    after = texts[called:]
    assert not [t for t in after if t.startswith("power off")]  # no power cycle after the agent
    assert after[-1] == "done: now rescue"
    assert "ports verified ACTIVE on the tenant network" in after
    counts = audit_smartnic_order(events, running=True)
    assert counts["running_network"] == 2 and counts["bios_sessions"] == 1
    # Neither the password nor its hash in a log, the history or an answer.
    for text in (server.log(), ramdisk.log.read_text(), json.dumps(events), json.dumps(rescued)):
        assert PASSWORD not in text and hashed not in text
        assert hashed.split("$")[2] not in text  # not even the salt


def test_unrescue_returns_to_the_instance(server: Server, tmp_path: Path) -> None:
    with server.client() as c:
        node, mac = rescue_node(c, server)
        with RescueRamdisk(server, node, mac, tmp_path):
            provision(c, node, "rescue", rescue_password=PASSWORD)
            wait_for(c, node, "rescue", timeout=30)
        start = len(history(c, node))
        provision(c, node, "unrescue")
        active = wait_for(c, node, "active")
        events = history(c, node)[start:]
    assert active["power_state"] == "power on" and active["last_error"] is None
    texts = [e["event"] for e in events]
    assert "next boot from disk (persistent)" in texts
    assert audit_smartnic_order(events)["boots"] == 1  # the instance's disk


def test_rescue_wait_times_out_off_and_off_the_rescuing_network(server: Server) -> None:
    with server.client() as c:
        node, _mac = rescue_node(c, server)
        provision(c, node, "rescue", rescue_password=PASSWORD)
        wait_for(c, node, "rescue wait")
        failed = wait_for(c, node, "rescue failed", timeout=30)
        events = history(c, node)
    assert "Timed out after 6 s in 'rescue wait'" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert rescuepw.HASH_KEY not in stored_instance_info(server, node)
    texts = [e["event"] for e in events]
    assert texts[-1] == "power off (BMC confirmed)"
    failed_at = max(i for i, t in enumerate(texts) if t.startswith("Timed out"))
    assert "detach rescuing network: done (ports removed)" in texts[failed_at:]
    audit_smartnic_order(events)


def test_abort_in_rescue_wait(server: Server) -> None:
    with server.client() as c:
        node, _mac = rescue_node(c, server)
        provision(c, node, "rescue", rescue_password=PASSWORD)
        wait_for(c, node, "rescue wait")
        provision(c, node, "abort")
        failed = wait_for(c, node, "rescue failed")
        texts = [e["event"] for e in history(c, node)]
    assert "Aborted" in failed["last_error"] and failed["power_state"] == "power off"
    assert rescuepw.HASH_KEY not in stored_instance_info(server, node)
    after = texts[texts.index("aborted: now rescue failed") :]
    assert "detach rescuing network: done (ports removed)" in after


def test_agent_refusing_the_password_fails_the_rescue(server: Server, tmp_path: Path) -> None:
    """The agent cannot write its shadow file: rescue failed, host off, off the rescuing
    network, no password kept; delete from there still works."""
    with server.client() as c:
        node, mac = rescue_node(c, server)
        (tmp_path / "shadow").mkdir()  # a directory: the agent's write fails
        with RescueRamdisk(server, node, mac, tmp_path):
            provision(c, node, "rescue", rescue_password=PASSWORD)
            failed = wait_for(c, node, "rescue failed", timeout=30)
        texts = [e["event"] for e in history(c, node)]
    assert "ramdisk agent failed rescue.finalize_rescue" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert rescuepw.HASH_KEY not in stored_instance_info(server, node)
    assert failed["driver_internal_info"].get("agent_token") is None
    steps = [t for t in texts if t.endswith(": started")]
    assert steps[-1] == "detach rescuing network: started"
    assert "attach tenant network: started" not in steps


def test_no_rescue_interface_refuses_before_anything_moves(server: Server) -> None:
    with server.client() as c:
        node, _mac = rescue_node(c, server, rescue_interface="no-rescue")
        provision(c, node, "rescue", rescue_password=PASSWORD)
        failed = wait_for(c, node, "rescue failed")
        texts = [e["event"] for e in history(c, node)]
    assert "no-rescue rescue interface cannot rescue" in failed["last_error"]
    assert "attach rescuing network: started" not in texts
