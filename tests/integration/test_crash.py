"""Crash tests: SIGKILL and SIGTERM of a real `metalnic serve` in the middle of a
deploy, a cleaning and a VIF attach, then a restart on the same database.

The host is a fake IPMI BMC in its own process (metalnic/lab/ipmi_bmc.py), so
its power state outlives the server; its smart NIC is a fake agent process
(tests/fake_agent.py) that also outlives it and reconnects.  The agent is made
slow (``--delay-file``) right before the step to interrupt, and the server is
stopped once the network API shows that step under way.  Afterwards — for a
graceful stop already before the restart — no node may stay reserved, the node
is in a clear state with a last_error that says what happened, the host is
powered off (not left in its BIOS), and no network port is left bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import NodeContext
from metalnic.baremetal.drivers.power.ipmi import IpmiPower
from tests.integration.conductor_helpers import provision, wait_for
from tests.integration.helpers import make_node, make_port
from tests.integration.test_ipmi_driver import PASSWORD, USER, free_udp_port, ipmi_ping
from tests.support import ROOT, Server, free_port, start_server

pytestmark = pytest.mark.integration

HOST = "nic-crash"
SLOW = 4.0  # seconds the agent takes to ack once slowed down
ENV = {
    "METALNIC_PERIODIC_INTERVAL": "0.3",
    "METALNIC_CONDUCTOR_DEAD_AFTER": "5",
    "METALNIC_POWER_TIMEOUT": "10",
    "METALNIC_PORT_ACTIVE_TIMEOUT": "15",
    "METALNIC_PORT_REMOVED_TIMEOUT": "15",
    "METALNIC_AGENT_DOWN_TIME": "3",
}


@dataclass
class Bmc:
    port: int

    def info(self) -> dict[str, Any]:
        return {
            "ipmi_address": "127.0.0.1",
            "ipmi_port": self.port,
            "ipmi_username": USER,
            "ipmi_password": PASSWORD,
        }

    def power(self) -> str:
        ctx = NodeContext(uuid="crash", name=None, driver="ipmi", driver_info=self.info())
        return IpmiPower().get_power_state(ctx)


@pytest.fixture
def bmc(tmp_path: Path) -> Iterator[Bmc]:
    port = free_udp_port()
    cmd = [sys.executable, "-m", "metalnic.lab.ipmi_bmc", "--port", str(port),
           "--user", USER, "--power-delay", "0.2"]  # fmt: skip
    with (tmp_path / "bmc.log").open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "METALNIC_BMC_PASSWORD": PASSWORD},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ipmi_ping(port):
            assert proc.poll() is None and time.monotonic() < deadline, "no IPMI BMC"
        yield Bmc(port)
    finally:
        proc.kill()
        proc.wait(timeout=10)


class Lab:
    """One server (restartable on the same port and database) and one NIC agent."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, free_port()
        self.db = f"sqlite:///{tmp / 'metalnic.sqlite'}"
        self.runs = 0
        self.server = self.start()
        self.delay_file = tmp / "agent-delay"
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_agent", "--url", self.server.url,
             "--host", HOST, "--delay-file", str(self.delay_file)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> Server:
        self.runs += 1
        run = self.tmp / f"run{self.runs}"
        return start_server(run, database_url=self.db, port=self.port, env=ENV)

    def stop(self, how: signal.Signals) -> float:
        """Stop the server with ``how``; the seconds it took to exit."""
        started = time.monotonic()
        self.server.proc.send_signal(how)
        self.server.proc.wait(timeout=60)
        return time.monotonic() - started

    def slow_agent(self, seconds: float) -> None:
        self.delay_file.write_text(str(seconds))

    def close(self) -> None:
        self.agent.kill()
        self.agent.wait(timeout=10)
        self.server.stop()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    try:
        with made.server.client() as c:
            for name in ("provisioning", "tenant"):
                r = c.post("/network/v2.0/networks", json={"network": {"name": name}})
                assert r.status_code == 201, r.text
            wait_agent(c)
        yield made
    finally:
        made.close()


def wait_agent(c: httpx.Client) -> None:
    for _ in range(300):
        agents = c.get("/network/v2.0/agents").json()["agents"]
        if any(a["host"] == HOST and a["alive"] for a in agents):
            return
        time.sleep(0.1)
    raise AssertionError("the NIC agent never became alive")


def new_vif(c: httpx.Client) -> str:
    net = c.get("/network/v2.0/networks", params={"name": "tenant"}).json()["networks"][0]
    r = c.post("/network/v2.0/ports", json={"port": {"network_id": net["id"]}})
    assert r.status_code == 201, r.text
    return str(r.json()["port"]["id"])


def smartnic_node(c: httpx.Client, bmc: Bmc, ports: int = 1) -> tuple[str, str]:
    """An IPMI node with smart NIC ports and a tenant VIF, made manageable."""
    node = make_node(
        c,
        driver="ipmi",
        driver_info=bmc.info(),
        network_interface="smartnic",
        deploy_interface="ramdisk",
    )["uuid"]
    for i in range(ports):
        llc = {"hostname": HOST, "port_id": f"p{i}"}
        make_port(c, node, is_smartnic=True, local_link_connection=llc)
    vif = new_vif(c)
    assert c.post(f"/v1/nodes/{node}/vifs", json={"id": vif}).status_code == 204
    provision(c, node, "manage")
    wait_for(c, node, "manageable", timeout=30)
    return node, vif


def until(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.05)


def network_port(c: httpx.Client, port: str) -> dict[str, Any]:
    return dict(c.get(f"/network/v2.0/ports/{port}").json()["port"])


def phase_ports(c: httpx.Client, node: str) -> list[str]:
    ports = c.get("/network/v2.0/ports", params={"device_id": node}).json()["ports"]
    return [p["name"] for p in ports if p["name"].startswith("metalnic-")]


def settled(lab: Lab, node: str, state: str) -> dict[str, Any]:
    """After the restart: the node in ``state``, unlocked, its clean-up done."""
    with lab.server.client() as c:
        deadline = time.monotonic() + 30
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = c.get(f"/v1/nodes/{node}").json()
            if (
                shown["provision_state"] == state
                and shown["reservation"] is None
                and "recovery_pending" not in shown["driver_internal_info"]
                and "bios_window" not in shown["driver_internal_info"]
            ):
                return shown
            time.sleep(0.1)
    raise AssertionError(f"node not settled in {state}: {shown}")


def held_after_graceful_stop(lab: Lab) -> list[Any]:
    """What the stopped server left in the database: reserved nodes, its conductor row."""
    path = lab.db.removeprefix("sqlite:///")
    import sqlite3

    with sqlite3.connect(path) as conn:
        reserved = conn.execute("SELECT uuid FROM nodes WHERE reservation IS NOT NULL").fetchall()
        conductors = conn.execute("SELECT name FROM conductors").fetchall()
    return [*reserved, *conductors]


def interrupt(lab: Lab, how: signal.Signals) -> None:
    took = lab.stop(how)
    if how == signal.SIGTERM:
        assert took < 45, f"a graceful stop took {took:.1f} s"
        assert held_after_graceful_stop(lab) == []  # released before it exited
    lab.slow_agent(0)
    lab.server = lab.start()


SIGNALS = pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])


@SIGNALS
def test_stop_during_cleaning(lab: Lab, bmc: Bmc, how: signal.Signals) -> None:
    with lab.server.client() as c:
        node, vif = smartnic_node(c, bmc)
        lab.slow_agent(SLOW)
        provision(c, node, "provide")
        until("the cleaning port", lambda: bool(phase_ports(c, node)))
    interrupt(lab, how)
    shown = settled(lab, node, "clean failed")
    with lab.server.client() as c:
        left, tenant = phase_ports(c, node), network_port(c, vif)
    assert "stopp" in shown["last_error"] and "cleaning" in shown["last_error"], shown
    assert bmc.power() == states.POWER_OFF and shown["power_state"] == states.POWER_OFF
    assert left == [] and tenant["binding:host_id"] == ""


@SIGNALS
def test_stop_during_deploy(lab: Lab, bmc: Bmc, how: signal.Signals) -> None:
    with lab.server.client() as c:
        node, vif = smartnic_node(c, bmc)
        provision(c, node, "provide")
        wait_for(c, node, "available", timeout=30)
        lab.slow_agent(SLOW)
        provision(c, node, "active")
        until("the tenant VIF bound", lambda: network_port(c, vif)["binding:host_id"] == HOST)
    interrupt(lab, how)
    shown = settled(lab, node, "deploy failed")
    with lab.server.client() as c:
        left, tenant = phase_ports(c, node), network_port(c, vif)
    assert "stopp" in shown["last_error"] and "deploy" in shown["last_error"], shown
    assert bmc.power() == states.POWER_OFF
    assert left == [] and tenant["binding:host_id"] == ""


@SIGNALS
def test_stop_during_vif_attach(lab: Lab, bmc: Bmc, how: signal.Signals) -> None:
    """A deployed host that is off: the attach holds it in BIOS while the NIC plugs."""
    with lab.server.client() as c:
        node, first = smartnic_node(c, bmc, ports=2)  # a free port for the second VIF
        provision(c, node, "provide")
        wait_for(c, node, "available", timeout=30)
        provision(c, node, "active")
        wait_for(c, node, "active", timeout=30)
        r = c.put(f"/v1/nodes/{node}/states/power", json={"target": "power off"})
        assert r.status_code == 202, r.text
        until("power off", lambda: c.get(f"/v1/nodes/{node}").json()["reservation"] is None)
        second = new_vif(c)
        lab.slow_agent(SLOW)
        answers: list[int] = []

        def attach() -> None:
            with lab.server.client() as own:
                try:
                    answers.append(
                        own.post(f"/v1/nodes/{node}/vifs", json={"id": second}).status_code
                    )
                except httpx.HTTPError:
                    answers.append(0)  # the server died under the request

        caller = threading.Thread(target=attach)
        caller.start()
        until("the VIF bound", lambda: network_port(c, second)["binding:host_id"] == HOST)
    interrupt(lab, how)
    caller.join(timeout=30)
    shown = settled(lab, node, "active")
    with lab.server.client() as c:
        vifs = [v["id"] for v in c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]]
        kept, added = network_port(c, first), network_port(c, second)
    assert bmc.power() == states.POWER_OFF  # not left in BIOS
    assert kept["binding:host_id"] == HOST  # the instance's own VIF is untouched
    if how == signal.SIGKILL:  # undone: neither recorded nor bound
        assert answers == [0]
        assert "stopped during the attach" in shown["last_error"], shown
        assert vifs == [first] and added["binding:host_id"] == ""
    else:  # a graceful stop lets the request finish: attached, plugged, answered
        assert answers == [204]
        assert shown["last_error"] is None
        assert sorted(vifs) == sorted([first, second]) and added["status"] == "ACTIVE"
