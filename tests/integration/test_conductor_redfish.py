"""The conductor driving a real Redfish BMC (sushy-emulator) through the API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.bmc.redfish_emulator import PASSWORD, RedfishEmulator, start_redfish_emulator
from tests.integration.conductor_helpers import audit_smartnic_order, history, provision, wait_for
from tests.integration.helpers import SMART_LLC, make_node, make_port
from tests.integration.test_conductor import FAST
from tests.support import Server, start_server

SLOW_BMC = {**FAST, "METALNIC_POWER_TIMEOUT": "40"}  # the emulator takes up to 11 s


@pytest.fixture(scope="module")
def bmc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedfishEmulator]:
    emu = start_redfish_emulator(tmp_path_factory.mktemp("rf-conductor"))
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("rf-server"), env=SLOW_BMC)
    yield srv
    srv.stop()


def redfish_node(c: httpx.Client, bmc: RedfishEmulator, **info: str) -> str:
    node = make_node(
        c,
        driver="redfish",
        driver_info=bmc.driver_info(**info),
        network_interface="fake",
        deploy_interface="ramdisk",
    )
    return str(node["uuid"])


def test_wrong_credentials_fail_manage_without_leaking(
    server: Server, bmc: RedfishEmulator
) -> None:
    with server.client() as c:
        node = redfish_node(c, bmc, redfish_password="not-the-password")
        provision(c, node, "manage")
        back = wait_for(c, node, "enroll")
        events = c.get(f"/v1/nodes/{node}/history").text
    assert "credentials" in back["last_error"]
    assert "not-the-password" not in back["last_error"] + events
    assert "not-the-password" not in server.log()


def test_unreachable_bmc_fails_manage_cleanly(server: Server) -> None:
    with server.client() as c:
        node = make_node(
            c,
            driver="redfish",
            driver_info={
                "redfish_address": "http://127.0.0.1:9",
                "redfish_password": "pw-unreachable",
            },
        )
        provision(c, node["uuid"], "manage")
        back = wait_for(c, node["uuid"], "enroll", timeout=60)
    assert "unreachable" in back["last_error"]
    assert "pw-unreachable" not in back["last_error"]
    assert back["reservation"] is None


def test_smartnic_cleaning_on_a_real_bmc(server: Server, bmc: RedfishEmulator) -> None:
    with server.client() as c:
        node = redfish_node(c, bmc)
        make_port(c, node, is_smartnic=True, local_link_connection=SMART_LLC)
        provision(c, node, "manage")
        assert wait_for(c, node, "manageable")["power_state"] == "power off"
        provision(c, node, "provide")
        done = wait_for(c, node, "available", timeout=240)
        events = history(c, node)
    assert done["power_state"] == "power off"
    assert done["last_error"] is None
    counts = audit_smartnic_order(events)
    assert counts == {"network": 2, "boots": 0, "bios_sessions": 2, "running_network": 0}
    with bmc.client() as raw:
        system = raw.get(bmc.system_path()).json()
    # BiosSetup is not advertised by this BMC: the driver PATCHed it and read it back.
    assert system["Boot"]["BootSourceOverrideTarget"] == "BiosSetup"
    assert system["PowerState"] == "Off"
    assert PASSWORD not in server.log()


def test_power_and_boot_device_through_the_api(server: Server, bmc: RedfishEmulator) -> None:
    with server.client() as c:
        node = redfish_node(c, bmc)
        r = c.put(f"/v1/nodes/{node}/management/boot_device", json={"boot_device": "pxe"})
        assert r.status_code == 204, r.text
        assert c.get(f"/v1/nodes/{node}/management/boot_device").json()["boot_device"] == "pxe"
        assert (
            c.put(f"/v1/nodes/{node}/states/power", json={"target": "power on"}).status_code == 202
        )
        shown = wait_for(c, node, "enroll", timeout=60)
        assert shown["power_state"] == "power on"
        assert (
            c.put(f"/v1/nodes/{node}/states/power", json={"target": "power off"}).status_code == 202
        )
        assert wait_for(c, node, "enroll", timeout=60)["power_state"] == "power off"


def test_power_changed_behind_our_back_is_noticed(server: Server, bmc: RedfishEmulator) -> None:
    with server.client() as c:
        node = redfish_node(c, bmc, redfish_system_id=bmc.system_path())
        provision(c, node, "manage")
        assert wait_for(c, node, "manageable")["power_state"] == "power off"
        with bmc.client() as raw:
            r = raw.post(
                bmc.system_path() + "/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
            )
            assert r.status_code < 300, r.text
        deadline = time.monotonic() + 40
        shown = {}
        while time.monotonic() < deadline:
            shown = c.get(f"/v1/nodes/{node}").json()
            if shown["power_state"] == "power on":
                break
            time.sleep(0.5)
        assert shown["power_state"] == "power on"
        texts = [e["event"] for e in history(c, node)]
    assert "power state read from the BMC: power on (was power off)" in texts
