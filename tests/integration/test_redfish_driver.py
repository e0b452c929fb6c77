"""The Redfish power and management driver against a real BMC emulator.

``sushy-emulator --fake`` applies power changes 0–11 s late (random, not
configurable), so the power tests are few, run in file order on one system
(Off -> On -> reboot -> Off) and each waits up to ``POWER_WAIT``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import (
    BmcCredentialsRefused,
    BmcUnreachable,
    DriverConfigError,
    DriverError,
    DriverUnsupported,
    NodeContext,
)
from metalnic.baremetal.drivers.power.redfish import (
    RedfishManagement,
    RedfishPower,
    parse_info,
)
from tests.bmc.redfish_emulator import (
    PASSWORD,
    TWO_SYSTEMS,
    RedfishEmulator,
    start_redfish_emulator,
)
from tests.support import free_port

pytestmark = pytest.mark.integration

POWER_WAIT = 30.0  # > the emulator's 11 s worst case, with room for a loaded machine
power = RedfishPower()
mgmt = RedfishManagement()


def ctx(driver_info: dict[str, Any]) -> NodeContext:
    return NodeContext(uuid="node-uuid", name="n", driver="redfish", driver_info=driver_info)


def system_json(bmc: RedfishEmulator, index: int = 0) -> dict[str, Any]:
    with bmc.client() as c:
        r = c.get(bmc.system_path(index))
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def bmc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedfishEmulator]:
    """Plain HTTP, basic auth, one system (Off, boot Hdd)."""
    emu = start_redfish_emulator(tmp_path_factory.mktemp("redfish"))
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def tls_bmc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedfishEmulator]:
    """HTTPS with a private CA, basic auth, two systems."""
    emu = start_redfish_emulator(
        tmp_path_factory.mktemp("redfish-tls"), systems=TWO_SYSTEMS, tls=True
    )
    yield emu
    emu.stop()


# --- power (the emulator's random delay applies) ----------------------------


def test_power_on_waits_until_the_bmc_reports_it(bmc: RedfishEmulator) -> None:
    node = ctx(bmc.driver_info())
    assert power.get_power_state(node) == states.POWER_OFF
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)
    # Read straight after: the emulator applies the change 0-11 s late, so a
    # driver that only sent the request would still see "Off" here.
    assert power.get_power_state(node) == states.POWER_ON
    assert system_json(bmc)["PowerState"] == "On"


def test_power_on_when_on_sends_nothing(bmc: RedfishEmulator) -> None:
    node = ctx(bmc.driver_info())
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)  # no-op after the above
    before = bmc.log().count("ComputerSystem.Reset")
    started = time.monotonic()
    power.set_power_state(node, states.POWER_ON, timeout=POWER_WAIT)
    assert time.monotonic() - started < 5
    assert bmc.log().count("ComputerSystem.Reset") == before


def test_reboot_comes_back_on(bmc: RedfishEmulator) -> None:
    node = ctx(bmc.driver_info())
    before = bmc.log().count("ComputerSystem.Reset")
    power.reboot(node, timeout=POWER_WAIT)
    assert bmc.log().count("ComputerSystem.Reset") == before + 1
    assert power.get_power_state(node) == states.POWER_ON


def test_power_off_waits_until_the_bmc_reports_it(bmc: RedfishEmulator) -> None:
    node = ctx(bmc.driver_info())
    power.set_power_state(node, states.POWER_OFF, timeout=POWER_WAIT)
    assert power.get_power_state(node) == states.POWER_OFF
    assert system_json(bmc)["PowerState"] == "Off"


def test_too_short_timeout_names_the_target(tls_bmc: RedfishEmulator) -> None:
    # Uses the second system of the other BMC: the change stays pending there.
    node = ctx(tls_bmc.driver_info(1))
    for target in (states.POWER_ON, states.POWER_OFF):
        try:
            power.set_power_state(node, target, timeout=0)
        except DriverError as exc:
            assert f"did not reach {target} within 0 s" in str(exc)
            assert tls_bmc.url in str(exc)
            return
        # Only acceptable if the BMC really got there before the first poll
        # (the emulator's delay can round down to a few ms, rarely).
        assert power.get_power_state(node) == target
    pytest.fail("a zero timeout never failed")


def test_unknown_power_target_is_a_driver_error(bmc: RedfishEmulator) -> None:
    with pytest.raises(DriverError, match="rebooting"):
        power.set_power_state(ctx(bmc.driver_info()), states.REBOOT, timeout=1)


# --- boot device ----------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "persistent", "redfish"),
    [
        (states.BOOT_PXE, False, "Pxe"),
        (states.BOOT_DISK, True, "Hdd"),
        (states.BOOT_CDROM, False, "Cd"),
        (states.BOOT_PXE, True, "Pxe"),
        (states.BOOT_DISK, False, "Hdd"),
    ],
)
def test_boot_device_set_and_read_back(
    bmc: RedfishEmulator, device: str, persistent: bool, redfish: str
) -> None:
    # Each step changes the device, so reading it back proves the write.
    node = ctx(bmc.driver_info())
    mgmt.set_boot_device(node, device, persistent=persistent)
    assert system_json(bmc)["Boot"]["BootSourceOverrideTarget"] == redfish
    # sushy-tools ignores BootSourceOverrideEnabled and always reports
    # Continuous; the driver returns what the BMC says.
    assert mgmt.get_boot_device(node) == (device, True)


def test_bios_through_the_patch_fallback(bmc: RedfishEmulator) -> None:
    node = ctx(bmc.driver_info())
    boot = system_json(bmc)["Boot"]
    assert "BiosSetup" not in boot["BootSourceOverrideTarget@Redfish.AllowableValues"]
    mgmt.set_boot_device(node, states.BOOT_BIOS)
    assert system_json(bmc)["Boot"]["BootSourceOverrideTarget"] == "BiosSetup"
    assert mgmt.get_boot_device(node) == (states.BOOT_BIOS, True)
    mgmt.set_boot_device(node, states.BOOT_DISK, persistent=True)
    assert mgmt.get_boot_device(node) == (states.BOOT_DISK, True)


@pytest.mark.filterwarnings("error")
def test_bios_over_https_with_a_ca_file(tls_bmc: RedfishEmulator) -> None:
    node = ctx(tls_bmc.driver_info(0))
    mgmt.set_boot_device(node, states.BOOT_BIOS)
    assert mgmt.get_boot_device(node) == (states.BOOT_BIOS, True)
    mgmt.set_boot_device(node, states.BOOT_PXE)
    assert mgmt.get_boot_device(node) == (states.BOOT_PXE, True)


def test_unsupported_boot_device(bmc: RedfishEmulator) -> None:
    with pytest.raises(DriverUnsupported, match="cannot boot from 'safe'") as err:
        mgmt.set_boot_device(ctx(bmc.driver_info()), states.BOOT_SAFE)
    assert err.value.status == 400
    assert set(mgmt.supported_boot_devices(ctx(bmc.driver_info()))) == {
        states.BOOT_PXE, states.BOOT_DISK, states.BOOT_CDROM, states.BOOT_BIOS,
    }  # fmt: skip


# --- failures ---------------------------------------------------------------


def _no_secret(exc: BaseException, secret: str) -> None:
    text = "".join(traceback.format_exception(exc))
    assert secret not in text
    assert secret not in repr(exc.args)


@pytest.mark.parametrize("call", ["power", "boot", "set_power", "set_boot"])
def test_wrong_password_is_refused_without_echoing_it(bmc: RedfishEmulator, call: str) -> None:
    wrong = "Wr0ng-" + PASSWORD[::-1]
    node = ctx(bmc.driver_info(redfish_password=wrong))
    before = bmc.log().count("ComputerSystem.Reset")
    with pytest.raises(DriverError, match="refused the credentials") as err:
        if call == "power":
            power.get_power_state(node)
        elif call == "boot":
            mgmt.get_boot_device(node)
        elif call == "set_power":
            power.set_power_state(node, states.POWER_ON, timeout=5)
        else:
            mgmt.set_boot_device(node, states.BOOT_BIOS)
    assert not isinstance(err.value, DriverConfigError)
    assert isinstance(err.value, BmcCredentialsRefused) and not err.value.retryable
    assert bmc.url in str(err.value)
    _no_secret(err.value, wrong)
    _no_secret(err.value, PASSWORD)
    assert bmc.log().count("ComputerSystem.Reset") == before


@pytest.mark.filterwarnings("error")  # e.g. requests' "Non-string usernames" for None
def test_no_credentials_is_refused(bmc: RedfishEmulator) -> None:
    info = bmc.driver_info()
    del info["redfish_username"], info["redfish_password"]
    with pytest.raises(DriverError, match="refused the credentials"):
        power.get_power_state(ctx(info))


def test_unreachable_bmc(bmc: RedfishEmulator) -> None:
    info = bmc.driver_info(redfish_address=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(DriverError, match="unreachable") as err:
        power.get_power_state(ctx(info))
    assert time.monotonic() - started < 20
    assert isinstance(err.value, BmcUnreachable) and err.value.retryable
    assert err.value.status == 503
    _no_secret(err.value, PASSWORD)
    with pytest.raises(BmcUnreachable, match="unreachable"):
        mgmt.set_boot_device(ctx(info), states.BOOT_PXE)


def test_unknown_system_path(bmc: RedfishEmulator) -> None:
    info = bmc.driver_info(redfish_system_id="/redfish/v1/Systems/no-such-system")
    with pytest.raises(DriverError, match="no-such-system") as err:
        power.get_power_state(ctx(info))
    assert not isinstance(err.value, DriverConfigError)


def test_two_systems_need_a_system_id(tls_bmc: RedfishEmulator) -> None:
    with pytest.raises(DriverConfigError, match="2 systems; set redfish_system_id") as err:
        power.get_power_state(ctx(tls_bmc.driver_info(None)))
    assert err.value.status == 400
    with pytest.raises(DriverConfigError):
        mgmt.get_boot_device(ctx(tls_bmc.driver_info(None)))


def test_one_system_needs_no_system_id(bmc: RedfishEmulator) -> None:
    node = ctx(bmc.driver_info(None))
    assert power.get_power_state(node) in (states.POWER_ON, states.POWER_OFF)
    assert mgmt.get_boot_device(node)[0] in mgmt.supported_boot_devices(node)


# --- TLS --------------------------------------------------------------------


def test_https_verified_with_the_ca_file(tls_bmc: RedfishEmulator) -> None:
    assert tls_bmc.url.startswith("https://")
    assert power.get_power_state(ctx(tls_bmc.driver_info(0))) == states.POWER_OFF


def test_https_default_verification_refuses_a_private_ca(tls_bmc: RedfishEmulator) -> None:
    info = tls_bmc.driver_info(0)
    del info["redfish_verify_ca"]  # default: true, the system's CAs
    with pytest.raises(DriverError, match="TLS") as err:
        power.get_power_state(ctx(info))
    assert "certificate" in str(err.value)
    assert "redfish_verify_ca" in str(err.value)
    _no_secret(err.value, PASSWORD)


def test_https_with_a_wrong_ca_file(tls_bmc: RedfishEmulator, tmp_path: Path) -> None:
    from tests.support import make_ca, pem

    other = tmp_path / "other-ca.pem"
    other.write_text(pem(make_ca("some-other-ca")[0]))
    with pytest.raises(DriverError, match="TLS"):
        power.get_power_state(ctx(tls_bmc.driver_info(0, redfish_verify_ca=str(other))))


@pytest.mark.parametrize("value", [False, "false", "0", "no"])
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_without_verification(tls_bmc: RedfishEmulator, value: object) -> None:
    node = ctx(tls_bmc.driver_info(0, redfish_verify_ca=value))
    assert power.get_power_state(node) == states.POWER_OFF


# --- driver_info ------------------------------------------------------------


@pytest.mark.parametrize("info", [{}, {"redfish_address": ""}, {"redfish_address": 17}])
def test_parse_info_needs_an_address(info: dict[str, Any]) -> None:
    with pytest.raises(DriverConfigError, match="redfish_address"):
        parse_info(info)
    with pytest.raises(DriverConfigError):
        power.validate(ctx(info))
    with pytest.raises(DriverConfigError):
        mgmt.validate(ctx(info))


@pytest.mark.parametrize("value", ["maybe", "/nonexistent/ca.pem", 2, None])
def test_parse_info_bad_verify_value(value: object) -> None:
    info = {"redfish_address": "https://bmc.example", "redfish_verify_ca": value}
    with pytest.raises(DriverConfigError, match="redfish_verify_ca"):
        parse_info(info)


@pytest.mark.parametrize("value", ["node-1", "Systems/1", 7])
def test_parse_info_system_id_must_be_a_path(value: object) -> None:
    info = {"redfish_address": "https://bmc.example", "redfish_system_id": value}
    with pytest.raises(DriverConfigError, match="redfish_system_id"):
        parse_info(info)


def test_parse_info_defaults(tmp_path: Path) -> None:
    info = parse_info({"redfish_address": "bmc.example:8000/"})
    assert info.address == "https://bmc.example:8000"
    assert info.verify is True
    assert info.system_id is None
    assert (info.username, info.password) == (None, None)
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    full = parse_info({
        "redfish_address": "http://10.0.0.5",
        "redfish_system_id": "/redfish/v1/Systems/1",
        "redfish_username": "u",
        "redfish_password": "p",
        "redfish_verify_ca": str(ca),
    })  # fmt: skip
    assert (full.address, full.system_id, full.verify) == (
        "http://10.0.0.5", "/redfish/v1/Systems/1", str(ca),
    )  # fmt: skip
    assert parse_info({"redfish_address": "x", "redfish_verify_ca": "False"}).verify is False


def test_parsed_info_does_not_show_the_password() -> None:
    info = parse_info({"redfish_address": "https://bmc.example", "redfish_password": PASSWORD})
    assert info.password == PASSWORD
    assert PASSWORD not in repr(info)
    assert PASSWORD not in str(info)
