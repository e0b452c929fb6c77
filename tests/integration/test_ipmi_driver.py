"""The IPMI power and management driver against a fake BMC on the real protocol.

The BMC (metalnic/lab/ipmi_bmc.py, the lab's) runs as its own process and applies
every power change ``POWER_DELAY`` seconds late, so a driver that only sent
the request would be caught.  ``ipmitool -I lanplus`` checks that the fake is
a real IPMI endpoint and agrees with what the driver set.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyghmi.ipmi.private import session as ipmi_session

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import (
    BmcCredentialsRefused,
    BmcUnreachable,
    DriverConfigError,
    DriverError,
    DriverUnsupported,
    NodeContext,
)
from metalnic.baremetal.drivers.power.ipmi import IpmiManagement, IpmiPower, parse_info
from tests.support import ROOT, require

pytestmark = pytest.mark.integration

POWER_DELAY = 1.0
POWER_WAIT = 20.0
USER = "metal"
PASSWORD = "Ipmi-s3cret!"  # at most 20 bytes: IPMI 2.0
power = IpmiPower()
mgmt = IpmiManagement()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _checksum(data: bytes) -> int:
    return -sum(data) & 0xFF


def ipmi_ping(port: int, timeout: float = 0.2) -> bool:
    """Whether something answers an IPMI "Get Channel Authentication Capabilities"."""
    header = bytes([0x20, 0x06 << 2])  # BMC address, netfn application
    body = bytes([0x81, 0x00, 0x38, 0x8E, 0x04])  # requester, seq, cmd, channel, admin
    message = header + bytes([_checksum(header)]) + body + bytes([_checksum(body)])
    packet = b"\x06\x00\xff\x07" + b"\x00" + bytes(8) + bytes([len(message)]) + message
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, ("127.0.0.1", port))
            reply, _ = s.recvfrom(512)
        except OSError:  # timeout, or ICMP port unreachable
            return False
    return reply[:4] == b"\x06\x00\xff\x07"


@dataclass
class FakeBmc:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def driver_info(self, **overrides: Any) -> dict[str, Any]:
        info = {
            "ipmi_address": "127.0.0.1",
            "ipmi_port": self.port,
            "ipmi_username": USER,
            "ipmi_password": PASSWORD,
        }
        return {**info, **overrides}

    def ctx(self, **overrides: Any) -> NodeContext:
        return NodeContext(
            uuid="node-uuid", name="n", driver="ipmi", driver_info=self.driver_info(**overrides)
        )

    def ipmitool(self, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        cmd = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(self.port),
               "-U", USER, "-P", password, "-R", "1", "-N", "2", *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def bmc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeBmc]:
    port = free_udp_port()
    log = tmp_path_factory.mktemp("ipmi-bmc") / "bmc.log"
    cmd = [sys.executable, "-m", "metalnic.lab.ipmi_bmc", "--port", str(port),
           "--user", USER, "--power-delay", str(POWER_DELAY)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "METALNIC_BMC_PASSWORD": PASSWORD},
        )
    try:
        deadline = time.monotonic() + 20
        while not ipmi_ping(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the fake IPMI BMC exited early:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError("the fake IPMI BMC did not answer within 20 s")
        yield FakeBmc(port, proc, log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def settle(node: NodeContext, wanted: str) -> None:
    """Wait (bounded) until a change left pending by an earlier test has landed."""
    deadline = time.monotonic() + POWER_WAIT
    while power.get_power_state(node) != wanted:
        assert time.monotonic() < deadline, f"the fake BMC never reached {wanted}"
        time.sleep(0.1)


def timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    started = time.monotonic()
    fn(*args, **kwargs)
    return time.monotonic() - started


# --- power ------------------------------------------------------------------


def test_power_on_waits_until_the_bmc_reports_it(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    power.set_power_state(node, states.POWER_OFF, timeout=POWER_WAIT)
    assert power.get_power_state(node) == states.POWER_OFF
    took = timed(power.set_power_state, node, states.POWER_ON, timeout=POWER_WAIT)
    assert took >= POWER_DELAY
    assert power.get_power_state(node) == states.POWER_ON


@pytest.mark.parametrize("target", [states.POWER_OFF, states.SOFT_POWER_OFF])
def test_power_off_waits_until_the_bmc_reports_it(bmc: FakeBmc, target: str) -> None:
    node = bmc.ctx()
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)
    took = timed(power.set_power_state, node, target, timeout=POWER_WAIT)
    assert took >= POWER_DELAY
    assert power.get_power_state(node) == states.POWER_OFF


def test_reboot_of_a_running_node_waits_until_it_is_on_again(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)
    # The fake drops the power at a reset and restores it POWER_DELAY later.
    assert timed(power.reboot, node, timeout=POWER_WAIT) >= POWER_DELAY
    assert power.get_power_state(node) == states.POWER_ON


def test_reboot_of_a_node_that_is_off_powers_it_on(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    power.set_power_state(node, states.POWER_OFF, timeout=POWER_WAIT)
    assert timed(power.reboot, node, timeout=POWER_WAIT) >= POWER_DELAY
    assert power.get_power_state(node) == states.POWER_ON


def test_soft_reboot_shuts_down_then_powers_on(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)
    # Two changes, each POWER_DELAY late: off (asked of the OS), then on.
    assert timed(power.reboot, node, timeout=POWER_WAIT, soft=True) >= 2 * POWER_DELAY
    assert power.get_power_state(node) == states.POWER_ON


def test_too_short_a_timeout_names_the_bmc_and_the_target(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        power.set_power_state(node, states.POWER_OFF, timeout=0.3)
    assert time.monotonic() - started < POWER_DELAY + 2
    message = str(caught.value)
    assert f"127.0.0.1:{bmc.port}" in message
    assert f"did not reach {states.POWER_OFF} within 0.3 s" in message
    assert "it reports power on" in message
    settle(node, states.POWER_OFF)  # the BMC does get there, late


def test_unknown_power_target_is_refused(bmc: FakeBmc) -> None:
    with pytest.raises(DriverUnsupported, match="cannot set power to 'rebooting'"):
        power.set_power_state(bmc.ctx(), states.REBOOT, timeout=POWER_WAIT)


# --- boot devices ---------------------------------------------------------------


def test_supported_boot_devices(bmc: FakeBmc) -> None:
    assert mgmt.supported_boot_devices(bmc.ctx()) == ["pxe", "disk", "bios", "cdrom", "safe"]


@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("device", list(states.BOOT_DEVICES))
def test_boot_device_is_set_and_read_back(bmc: FakeBmc, device: str, persistent: bool) -> None:
    node = bmc.ctx()
    mgmt.set_boot_device(node, device, persistent=persistent)
    assert mgmt.get_boot_device(node) == (device, persistent)


def test_boot_device_changes_between_devices(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    mgmt.set_boot_device(node, states.BOOT_BIOS, persistent=True)
    mgmt.set_boot_device(node, states.BOOT_PXE)
    assert mgmt.get_boot_device(node) == (states.BOOT_PXE, False)


def test_unknown_boot_device_is_refused(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    mgmt.set_boot_device(node, states.BOOT_DISK)
    with pytest.raises(DriverUnsupported, match="cannot boot from 'floppy'"):
        mgmt.set_boot_device(node, "floppy")
    assert mgmt.get_boot_device(node) == (states.BOOT_DISK, False)


# --- failures -----------------------------------------------------------------------


def _assert_no_secret(exc: BaseException, secret: str) -> None:
    seen: BaseException | None = exc
    while seen is not None:  # the message and everything chained to it
        assert secret not in str(seen) and secret not in repr(seen)
        seen = seen.__cause__ or seen.__context__


def test_wrong_password_is_a_driver_error_without_the_password(bmc: FakeBmc) -> None:
    wrong = "Not-the-r1ght-one"
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        power.get_power_state(bmc.ctx(ipmi_password=wrong))
    assert time.monotonic() - started < 10
    assert isinstance(caught.value, BmcCredentialsRefused) and not caught.value.retryable
    assert "refused the credentials" in str(caught.value)
    assert f"127.0.0.1:{bmc.port}" in str(caught.value)
    _assert_no_secret(caught.value, wrong)
    _assert_no_secret(caught.value, PASSWORD)
    # The same wrong credentials again (pyghmi would hand out its failed
    # session), then the right ones: both behave.
    with pytest.raises(DriverError, match="refused the credentials"):
        mgmt.set_boot_device(bmc.ctx(ipmi_password=wrong), states.BOOT_PXE)
    assert power.get_power_state(bmc.ctx()) in (states.POWER_ON, states.POWER_OFF)


def test_unknown_user_is_a_driver_error(bmc: FakeBmc) -> None:
    with pytest.raises(DriverError, match="refused the credentials") as caught:
        mgmt.get_boot_device(bmc.ctx(ipmi_username="nobody"))
    _assert_no_secret(caught.value, PASSWORD)


def test_unreachable_bmc_fails_within_bounded_time() -> None:
    port = free_udp_port()  # nothing listens there
    node = NodeContext(uuid="u", name=None, driver="ipmi", driver_info={
        "ipmi_address": "127.0.0.1", "ipmi_port": port,
        "ipmi_username": USER, "ipmi_password": PASSWORD,
    })  # fmt: skip
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        power.get_power_state(node)
    # pyghmi retries the login for about 5 s; it has no setting to shorten that.
    assert time.monotonic() - started < 15
    assert f"127.0.0.1:{port} is unreachable" in str(caught.value)
    assert isinstance(caught.value, BmcUnreachable) and caught.value.status == 503
    _assert_no_secret(caught.value, PASSWORD)


def test_unresolvable_host_is_a_driver_error() -> None:
    node = NodeContext(uuid="u", name=None, driver="ipmi", driver_info={
        "ipmi_address": "no-such-bmc.invalid", "ipmi_password": PASSWORD,
    })  # fmt: skip
    with pytest.raises(DriverError, match="no-such-bmc.invalid:623 is unreachable") as caught:
        power.get_power_state(node)
    _assert_no_secret(caught.value, PASSWORD)


# --- sessions -------------------------------------------------------------------------


def test_sessions_are_not_left_behind(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    for _ in range(5):  # the same credentials again and again
        power.get_power_state(node)
        mgmt.get_boot_device(node)
    with pytest.raises(DriverError):
        power.get_power_state(bmc.ctx(ipmi_password="wrong-password"))
    peer = ("::ffff:127.0.0.1", bmc.port, 0, 0)  # how pyghmi files this BMC
    assert peer not in ipmi_session.Session.bmc_handlers
    assert not [s for s in ipmi_session.Session.keepalive_sessions if s.port == bmc.port]
    assert not [s for s in ipmi_session.Session.waiting_sessions if s.port == bmc.port]
    assert not [k for k in ipmi_session.Session.initting_sessions if k[3] == bmc.port]


def test_concurrent_operations_on_one_bmc(bmc: FakeBmc) -> None:
    node = bmc.ctx()
    results: list[str] = []
    errors: list[Exception] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(power.get_power_state(node))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not [t for t in threads if t.is_alive()], "an operation hung"
    assert errors == []
    assert len(results) == 12


# --- ipmitool agrees ----------------------------------------------------------------------


def _need_ipmitool() -> None:
    require(shutil.which("ipmitool") is not None, "ipmitool (Debian package ipmitool)")


def test_ipmitool_sees_the_power_state_the_driver_set(bmc: FakeBmc) -> None:
    _need_ipmitool()
    node = bmc.ctx()
    for target, shown in ((states.POWER_ON, "on"), (states.POWER_OFF, "off")):
        power.set_power_state(node, target, timeout=POWER_WAIT)
        r = bmc.ipmitool("chassis", "power", "status")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"Chassis Power is {shown}"


def test_ipmitool_sees_the_boot_device_the_driver_set(bmc: FakeBmc) -> None:
    _need_ipmitool()
    node = bmc.ctx()
    mgmt.set_boot_device(node, states.BOOT_BIOS, persistent=True)
    r = bmc.ipmitool("chassis", "bootparam", "get", "5")
    assert r.returncode == 0, r.stderr
    assert "Boot Device Selector : Force Boot into BIOS Setup" in r.stdout
    assert "Options apply to all future boots" in r.stdout
    mgmt.set_boot_device(node, states.BOOT_PXE, persistent=False)
    r = bmc.ipmitool("chassis", "bootparam", "get", "5")
    assert "Boot Device Selector : Force PXE" in r.stdout
    assert "Options apply to only next boot" in r.stdout


def test_driver_sees_what_ipmitool_set(bmc: FakeBmc) -> None:
    _need_ipmitool()
    node = bmc.ctx()
    r = bmc.ipmitool("chassis", "bootdev", "cdrom")
    assert r.returncode == 0, r.stderr
    assert mgmt.get_boot_device(node) == (states.BOOT_CDROM, False)
    r = bmc.ipmitool("chassis", "bootdev", "disk", "options=persistent")
    assert r.returncode == 0, r.stderr
    assert mgmt.get_boot_device(node) == (states.BOOT_DISK, True)
    power.set_power_state(node, states.POWER_OFF, timeout=POWER_WAIT)
    assert bmc.ipmitool("chassis", "power", "on").returncode == 0
    settle(node, states.POWER_ON)


def test_ipmitool_with_a_wrong_password_is_refused(bmc: FakeBmc) -> None:
    _need_ipmitool()
    r = bmc.ipmitool("chassis", "power", "status", password="not-it")
    assert r.returncode != 0
    assert "Chassis Power" not in r.stdout


# --- driver_info ------------------------------------------------------------------------


def test_parse_info_defaults() -> None:
    info = parse_info({"ipmi_address": " 10.0.0.5 "})
    assert (info.address, info.port, info.username, info.password) == ("10.0.0.5", 623, "", "")
    info = parse_info({"ipmi_address": "bmc-7", "ipmi_port": "6230",
                       "ipmi_username": "admin", "ipmi_password": PASSWORD})  # fmt: skip
    assert (info.address, info.port, info.username) == ("bmc-7", 6230, "admin")
    assert PASSWORD not in repr(info)


@pytest.mark.parametrize(
    ("driver_info", "fragment"),
    [
        ({}, "needs ipmi_address"),
        ({"ipmi_address": ""}, "needs ipmi_address"),
        ({"ipmi_address": 10}, "needs ipmi_address"),
        ({"ipmi_address": "bmc 7"}, "is not an IP address or host name"),
        ({"ipmi_address": "bmc", "ipmi_port": 0}, "ipmi_port 0 is not a UDP port"),
        ({"ipmi_address": "bmc", "ipmi_port": 70000}, "ipmi_port 70000 is not a UDP port"),
        ({"ipmi_address": "bmc", "ipmi_port": "abc"}, "ipmi_port 'abc' is not a UDP port"),
        ({"ipmi_address": "bmc", "ipmi_port": True}, "ipmi_port True is not a UDP port"),
        ({"ipmi_address": "bmc", "ipmi_port": 623.5}, "ipmi_port 623.5 is not a UDP port"),
        ({"ipmi_address": "bmc", "ipmi_username": 7}, "ipmi_username must be a string"),
        ({"ipmi_address": "bmc", "ipmi_username": "u" * 17}, "longer than 16 bytes"),
    ],
)
def test_parse_info_errors(driver_info: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DriverConfigError, match=fragment):
        parse_info(driver_info)
    with pytest.raises(DriverConfigError):
        power.validate(NodeContext(uuid="u", name=None, driver="ipmi", driver_info=driver_info))


def test_parse_info_error_for_a_long_password_does_not_show_it() -> None:
    secret = "x" * 15 + "-too-long-secret"
    with pytest.raises(DriverConfigError, match="ipmi_password is longer than 20 bytes") as caught:
        parse_info({"ipmi_address": "bmc", "ipmi_password": secret})
    assert secret not in str(caught.value)
    with pytest.raises(DriverConfigError, match="ipmi_password must be a string"):
        mgmt.validate(
            NodeContext(
                uuid="u",
                name=None,
                driver="ipmi",
                driver_info={"ipmi_address": "bmc", "ipmi_password": 1234},
            )
        )
