"""The lab BMCs' fault knob (``lab.bmcfaults``): "this BMC refuses BIOS set-up".

Both real emulators — sushy-tools through ``python -m metalnic.lab.bmcfaults`` and
the lab's pyghmi IPMI BMC with ``--faults-dir`` — driven by metalnic's own drivers:
with the knob file present, setting BIOS set-up fails with a permanent error and
changes nothing on the BMC; every other boot device still works; without the file
BIOS set-up works again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import DriverError, NodeContext
from metalnic.baremetal.drivers.power.ipmi import IpmiManagement
from metalnic.baremetal.drivers.power.redfish import RedfishManagement
from metalnic.lab.bmcfaults import refuse_bios_setup
from metalnic.lab.redfish import RedfishEmulator, System, start_redfish_emulator
from tests.integration.test_ipmi_driver import PASSWORD, USER, free_udp_port, ipmi_ping
from tests.support import ROOT

pytestmark = pytest.mark.integration

SYSTEMS: tuple[System, ...] = (
    {"uuid": "5b0c7f0e-3d1a-4a55-9d39-7c1e2f4a6b01", "name": "host1"},
    {"uuid": "5b0c7f0e-3d1a-4a55-9d39-7c1e2f4a6b02", "name": "host2"},
)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hosts")


@pytest.fixture(scope="module")
def redfish(tmp_path_factory: pytest.TempPathFactory, faults: Path) -> Iterator[RedfishEmulator]:
    emu = start_redfish_emulator(tmp_path_factory.mktemp("redfish"), SYSTEMS, faults_dir=faults)
    yield emu
    emu.stop()


def _redfish_ctx(bmc: RedfishEmulator, index: int) -> NodeContext:
    return NodeContext(f"n{index}", f"n{index}", "redfish", bmc.driver_info(index))


def _target(bmc: RedfishEmulator, index: int) -> str:
    with bmc.client() as c:
        return str(c.get(bmc.system_path(index)).json()["Boot"]["BootSourceOverrideTarget"])


def test_a_redfish_system_with_the_knob_refuses_bios_setup(
    redfish: RedfishEmulator, faults: Path
) -> None:
    mgmt = RedfishManagement()
    host1, host2 = _redfish_ctx(redfish, 0), _redfish_ctx(redfish, 1)
    mgmt.set_boot_device(host1, states.BOOT_DISK, persistent=True)
    refuse_bios_setup(faults / "host1", True)
    try:
        with pytest.raises(DriverError, match="400") as caught:
            mgmt.set_boot_device(host1, states.BOOT_BIOS)
        assert not caught.value.retryable
        assert _target(redfish, 0) == "Hdd"  # nothing stored
        with redfish.client() as c:  # the raw answer: a Redfish error body
            r = c.patch(
                redfish.system_path(0), json={"Boot": {"BootSourceOverrideTarget": "BiosSetup"}}
            )
        assert r.status_code == 400
        assert "BiosSetup is refused" in r.json()["error"]["message"]
        mgmt.set_boot_device(host1, states.BOOT_PXE)  # other devices: as usual
        assert _target(redfish, 0) == "Pxe"
        mgmt.set_boot_device(host2, states.BOOT_BIOS)  # the other system: as usual
        assert _target(redfish, 1) == "BiosSetup"
    finally:
        refuse_bios_setup(faults / "host1", False)
    mgmt.set_boot_device(host1, states.BOOT_BIOS)
    assert _target(redfish, 0) == "BiosSetup"


def test_the_ipmi_bmc_with_the_knob_refuses_bios_setup(tmp_path: Path, faults: Path) -> None:
    port = free_udp_port()
    cmd = [sys.executable, "-m", "metalnic.lab.ipmi_bmc", "--port", str(port), "--user", USER,
           "--host", "ipmi-host", "--faults-dir", str(faults)]  # fmt: skip
    log = tmp_path / "bmc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "METALNIC_BMC_PASSWORD": PASSWORD},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not ipmi_ping(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the fake IPMI BMC did not answer"
        info = {"ipmi_address": "127.0.0.1", "ipmi_port": port,
                "ipmi_username": USER, "ipmi_password": PASSWORD}  # fmt: skip
        node = NodeContext("n", "n", "ipmi", info)
        mgmt = IpmiManagement()
        mgmt.set_boot_device(node, states.BOOT_DISK, persistent=True)
        refuse_bios_setup(faults / "ipmi-host", True)
        with pytest.raises(DriverError) as caught:
            mgmt.set_boot_device(node, states.BOOT_BIOS)
        assert not caught.value.retryable
        assert mgmt.get_boot_device(node) == (states.BOOT_DISK, True)  # flags kept
        mgmt.set_boot_device(node, states.BOOT_PXE)
        assert mgmt.get_boot_device(node)[0] == states.BOOT_PXE
        refuse_bios_setup(faults / "ipmi-host", False)
        mgmt.set_boot_device(node, states.BOOT_BIOS)
        assert mgmt.get_boot_device(node)[0] == states.BOOT_BIOS
        assert "refused boot device BIOS set-up" in log.read_text()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
