"""The driver error taxonomy end to end: a real server driving a real Redfish BMC
(sushy-emulator) and a real IPMI BMC (metalnic.lab.ipmi_bmc).

* a wrong password is permanent: the flow fails at once, last_error says so, no retry;
* a BMC that is down is retried ``bmc_retries`` times, each retry a history row, then
  the flow fails with the count in last_error; a synchronous call answers 503 at once;
* a BMC that comes back within the retries: the flow succeeds;
* an unsupported boot device is a 400, as Ironic answers it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from metalnic.lab.redfish import RedfishEmulator, start_redfish_emulator
from tests.integration.conductor_helpers import history, provision, wait_for
from tests.integration.helpers import fault, make_node
from tests.integration.test_conductor import FAST
from tests.integration.test_ipmi_driver import PASSWORD, USER, free_udp_port, ipmi_ping
from tests.support import ROOT, Server, start_server

RETRIES = 3
ENV = {
    **FAST,
    "METALNIC_POWER_TIMEOUT": "40",  # the Redfish emulator takes up to 11 s
    "METALNIC_BMC_RETRIES": str(RETRIES),
    "METALNIC_BMC_RETRY_INTERVAL": "2",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("bmc-errors"), env=ENV)
    yield srv
    srv.stop()


def retries(c: httpx.Client, node: str) -> list[str]:
    return [e["event"] for e in history(c, node) if e["event_type"] == "retry"]


def until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.1)


# --- the BMCs, stoppable and restartable on the same port ------------------------------


def restart_redfish(emu: RedfishEmulator) -> None:
    """Start the stopped emulator again, same command and port (``Popen.args``)."""
    with emu.log_path.open("ab") as log:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUSHY_")}
        emu.proc = subprocess.Popen(emu.proc.args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def answers() -> bool:
        try:
            with emu.client() as c:
                return c.get("/redfish/v1/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    until("the Redfish emulator answering again", answers, timeout=30)


@pytest.fixture
def redfish_bmc(tmp_path: Path) -> Iterator[RedfishEmulator]:
    emu = start_redfish_emulator(tmp_path / "rf")
    yield emu
    emu.stop()


@dataclass
class IpmiBmc:
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def info(self, **overrides: Any) -> dict[str, Any]:
        info = {"ipmi_address": "127.0.0.1", "ipmi_port": self.port, "ipmi_username": USER}
        return {**info, "ipmi_password": PASSWORD, **overrides}

    def start(self) -> None:
        cmd = [sys.executable, "-m", "metalnic.lab.ipmi_bmc", "--port", str(self.port),
               "--user", USER, "--power-delay", "0.2"]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "METALNIC_BMC_PASSWORD": PASSWORD},
            )  # fmt: skip
        until("the IPMI BMC answering", lambda: ipmi_ping(self.port), timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def ipmi_bmc(tmp_path: Path) -> Iterator[IpmiBmc]:
    bmc = IpmiBmc(free_udp_port(), tmp_path / "ipmi-bmc.log")
    bmc.start()
    yield bmc
    bmc.stop()


def redfish_node(c: httpx.Client, emu: RedfishEmulator, **info: Any) -> str:
    node = make_node(c, driver="redfish", driver_info=emu.driver_info(**info))
    return str(node["uuid"])


def ipmi_node(c: httpx.Client, bmc: IpmiBmc, **info: Any) -> str:
    return str(make_node(c, driver="ipmi", driver_info=bmc.info(**info))["uuid"])


# --- wrong password: permanent ---------------------------------------------------------


def test_redfish_wrong_password_fails_at_once(server: Server, redfish_bmc: RedfishEmulator) -> None:
    with server.client() as c:
        node = redfish_node(c, redfish_bmc, redfish_password="not-the-password")
        provision(c, node, "manage")
        back = wait_for(c, node, "enroll")
        assert retries(c, node) == []
        r = c.put(f"/v1/nodes/{node}/management/boot_device", json={"boot_device": "pxe"})
    assert "refused the credentials" in back["last_error"]
    assert "gave up" not in back["last_error"]
    assert r.status_code == 500, r.text  # as Ironic answers a refused login
    assert "refused the credentials" in fault(r)


def test_ipmi_wrong_password_fails_at_once(server: Server, ipmi_bmc: IpmiBmc) -> None:
    with server.client() as c:
        node = ipmi_node(c, ipmi_bmc, ipmi_password="Not-the-r1ght-one")
        provision(c, node, "manage")
        back = wait_for(c, node, "enroll")
        assert retries(c, node) == []
    assert "refused the credentials" in back["last_error"]
    assert "Not-the-r1ght-one" not in back["last_error"]


# --- BMC down: retried, then failed --------------------------------------------------


def _down_then_failed(c: httpx.Client, node: str, timeout: float) -> dict[str, Any]:
    provision(c, node, "manage")
    back = wait_for(c, node, "enroll", timeout=timeout)
    rows = retries(c, node)
    assert len(rows) == RETRIES, rows
    for i, row in enumerate(rows, 1):
        assert f"retry {i} of {RETRIES}" in row and "read the power state" in row
    assert f"gave up after {RETRIES} retries" in back["last_error"]
    return back


def test_redfish_down_is_retried_then_fails(server: Server, redfish_bmc: RedfishEmulator) -> None:
    with server.client() as c:
        node = redfish_node(c, redfish_bmc)
        redfish_bmc.stop()
        back = _down_then_failed(c, node, timeout=90)
        assert "unreachable" in back["last_error"]
        before = len(history(c, node))
        r = c.put(f"/v1/nodes/{node}/management/boot_device", json={"boot_device": "pxe"})
        assert r.status_code == 503, r.text  # a synchronous call: at once, no retries
        assert "unreachable" in fault(r)
        assert len(retries(c, node)) == RETRIES  # the request wrote no retry
        assert len(history(c, node)) == before


def test_ipmi_down_is_retried_then_fails(server: Server, ipmi_bmc: IpmiBmc) -> None:
    with server.client() as c:
        node = ipmi_node(c, ipmi_bmc)
        ipmi_bmc.stop()
        back = _down_then_failed(c, node, timeout=120)  # pyghmi gives a login ~5 s
    assert "unreachable" in back["last_error"]
    assert PASSWORD not in back["last_error"]


# --- BMC back within the retries: success --------------------------------------------


def test_redfish_back_within_the_retries(server: Server, redfish_bmc: RedfishEmulator) -> None:
    with server.client() as c:
        node = redfish_node(c, redfish_bmc)
        redfish_bmc.stop()
        provision(c, node, "manage")
        until("a first retry", lambda: len(retries(c, node)) >= 1)
        restart_redfish(redfish_bmc)
        back = wait_for(c, node, "manageable", timeout=60)
        rows = retries(c, node)
    assert back["last_error"] is None
    assert 1 <= len(rows) <= RETRIES


def test_ipmi_back_within_the_retries(server: Server, ipmi_bmc: IpmiBmc) -> None:
    with server.client() as c:
        node = ipmi_node(c, ipmi_bmc)
        ipmi_bmc.stop()
        provision(c, node, "manage")
        until("a first retry", lambda: len(retries(c, node)) >= 1)
        ipmi_bmc.start()
        back = wait_for(c, node, "manageable", timeout=90)
        rows = retries(c, node)
    assert back["last_error"] is None
    assert 1 <= len(rows) <= RETRIES


# --- unsupported: 400 ---------------------------------------------------------------


def test_unsupported_boot_device_is_a_400(server: Server) -> None:
    with server.client() as c:
        node = make_node(c, driver="fake-hardware", driver_info={"fake_no_bios": "true"})["uuid"]
        r = c.put(f"/v1/nodes/{node}/management/boot_device", json={"boot_device": "bios"})
        assert r.status_code == 400, r.text
        assert "does not support boot device bios" in fault(r)
        assert retries(c, node) == []


# --- the fake driver's knobs (for tests without a BMC) ------------------------------


@pytest.mark.parametrize(
    ("knob", "words", "retried"),
    [
        ({"fake_bmc_busy": "always"}, "busy", RETRIES),
        ({"fake_bmc_down": "always"}, "unreachable", RETRIES),
        ({"fake_credentials_refused": "true"}, "refused the credentials", 0),
    ],
)
def test_fake_bmc_failures(server: Server, knob: dict[str, str], words: str, retried: int) -> None:
    with server.client() as c:
        node = make_node(c, driver_info=knob)["uuid"]
        provision(c, node, "manage")
        back = wait_for(c, node, "enroll", timeout=60)
        assert len(retries(c, node)) == retried
    assert words in back["last_error"]
    assert ("gave up" in back["last_error"]) == bool(retried)
