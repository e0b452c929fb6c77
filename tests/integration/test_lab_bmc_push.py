"""The lab's BMCs tell their host before they answer: a host is dark when "off" is confirmed.

A real host stops sending the instant its power drops.  The lab's host
simulator (``metalnic.lab.hosts``) learns of power changes from its BMC, so
both BMCs push every change to it and answer the request that caused it only
once that push has been answered (see ``lab.ipmi_bmc`` and ``lab.redfish``).
Here a stand-in for the simulator takes ``HOLD`` seconds to answer each push;
metalnic's own drivers — the conductor's code — must not see a power change
before that answer was given.  No root needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import DriverError, NodeContext
from metalnic.baremetal.drivers.power.ipmi import IpmiManagement, IpmiPower
from metalnic.baremetal.drivers.power.redfish import RedfishPower
from metalnic.lab.redfish import start_redfish_emulator
from tests.integration.test_ipmi_driver import free_udp_port, ipmi_ping
from tests.support import ROOT

pytestmark = pytest.mark.integration

HOLD = 0.6  # seconds the stand-in host takes to go dark
USER, PASSWORD = "lab", "Push-s3cret-1"


@dataclass
class StandInHost:
    """Records every push (time answered, body); answers after HOLD, or 500 when failing."""

    url: str = ""
    pushes: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    failing: bool = False

    def last(self) -> tuple[float, dict[str, Any]]:
        assert self.pushes, "the BMC pushed nothing"
        return self.pushes[-1]


@pytest.fixture
def host() -> Iterator[StandInHost]:
    stand_in = StandInHost()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(HOLD)
            if stand_in.failing:
                self.send_response(500)
            else:
                stand_in.pushes.append((time.time(), body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, fmt: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in.url = f"http://127.0.0.1:{httpd.server_address[1]}/power"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield stand_in
    finally:
        httpd.shutdown()


@pytest.fixture
def ipmi(host: StandInHost, tmp_path: Path) -> Iterator[NodeContext]:
    port = free_udp_port()
    cmd = [sys.executable, "-m", "metalnic.lab.ipmi_bmc", "--port", str(port), "--user", USER,
           "--notify-url", host.url, "--host", "host9"]  # fmt: skip
    with (tmp_path / "bmc.log").open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "METALNIC_BMC_PASSWORD": PASSWORD},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not ipmi_ping(port):
            assert proc.poll() is None and time.monotonic() < deadline, "the IPMI BMC did not start"
        info = {"ipmi_address": "127.0.0.1", "ipmi_port": port,
                "ipmi_username": USER, "ipmi_password": PASSWORD}  # fmt: skip
        yield NodeContext("node-uuid", "host9", "ipmi", info)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_ipmi_confirms_off_only_after_the_host_went_dark(
    ipmi: NodeContext, host: StandInHost
) -> None:
    power, mgmt = IpmiPower(), IpmiManagement()
    mgmt.set_boot_device(ipmi, states.BOOT_PXE)
    assert host.last()[1] == {"name": "host9", "power_state": "Off", "boot_device": "Pxe"}
    power.set_power_state(ipmi, states.POWER_ON, 20)
    assert host.last()[1]["power_state"] == "On"
    power.set_power_state(ipmi, states.POWER_OFF, 20)
    answered, body = host.last()
    confirmed = time.time()
    assert body["power_state"] == "Off"
    assert answered <= confirmed and power.get_power_state(ipmi) == states.POWER_OFF


def test_ipmi_reset_is_pushed_as_off_then_on(ipmi: NodeContext, host: StandInHost) -> None:
    power = IpmiPower()
    power.set_power_state(ipmi, states.POWER_ON, 20)
    before = len(host.pushes)
    power.reboot(ipmi, 20)
    seen = [b["power_state"] for _, b in host.pushes[before:]]
    # (a client that gave up waiting for the slow answer may have sent its reset again)
    assert seen[:2] == ["Off", "On"] and seen == ["Off", "On"] * (len(seen) // 2), seen


def test_ipmi_refuses_a_change_its_host_was_not_told(ipmi: NodeContext, host: StandInHost) -> None:
    power = IpmiPower()
    power.set_power_state(ipmi, states.POWER_ON, 20)
    host.failing = True
    with pytest.raises(DriverError):
        power.set_power_state(ipmi, states.POWER_OFF, 5)


def test_redfish_shows_off_only_after_the_host_went_dark(host: StandInHost, tmp_path: Path) -> None:
    system = {"uuid": "6a1c7e52-6a43-4c59-9d3e-3f5b7e0d2c11", "name": "host8", "power_state": "On"}
    emu = start_redfish_emulator(tmp_path / "rf", (system,), notify_url=host.url)
    try:
        ctx = NodeContext("node-uuid", "host8", "redfish", emu.driver_info())
        RedfishPower().set_power_state(ctx, states.POWER_OFF, 30)  # lands 1-11 s later
        confirmed = time.time()
        offs = [(t, b) for t, b in host.pushes if b["power_state"] == "Off"]
        assert offs, host.pushes
        answered, body = offs[0]
        assert body["name"] == "host8" and answered <= confirmed
    finally:
        emu.stop()
