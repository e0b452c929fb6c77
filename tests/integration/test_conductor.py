"""The conductor through the real API: verbs, flows, locks, the smart NIC power rule."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.baremetal.api.states import VALIDATED
from tests.integration.conductor_helpers import (
    audit_smartnic_order,
    history,
    provision,
    smartnic_node,
    wait_for,
)
from tests.integration.helpers import SMART_LLC, fault, make_node, make_port
from tests.support import Server, openstack_cli, start_server

FAST = {
    "METALNIC_PERIODIC_INTERVAL": "0.3",
    "METALNIC_CONDUCTOR_DEAD_AFTER": "5",
    "METALNIC_DEPLOY_CALLBACK_TIMEOUT": "8",
    "METALNIC_POWER_TIMEOUT": "10",
}


@pytest.fixture(scope="module")
def conductor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("conductor"), env=FAST)
    yield srv
    srv.stop()


def network_steps(events: list[dict[str, object]]) -> list[str]:
    return [
        str(e["event"]).removesuffix(": started")
        for e in events
        if e["event_type"] == "network" and str(e["event"]).endswith("started")
    ]


def test_lifecycle_keeps_every_network_step_in_bios(conductor: Server) -> None:
    with conductor.client() as c:
        node = smartnic_node(c)
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        wait_for(c, node, "available")
        provision(c, node, "active")
        active = wait_for(c, node, "active")
        assert active["power_state"] == "power on"
        assert active["last_error"] is None
        provision(c, node, "deleted")
        done = wait_for(c, node, "available")
        assert done["power_state"] == "power off"
        events = history(c, node)
    assert network_steps(events) == [
        "attach cleaning network",
        "detach cleaning network",  # provide
        "detach tenant network",
        "attach provisioning network",  # deploy: prepare
        "detach provisioning network",
        "attach tenant network",  # reboot_and_finish
        "detach tenant network",
        "detach rescuing network",  # undeploy: tear_down
        "attach cleaning network",
        "detach cleaning network",  # automated clean
    ]
    counts = audit_smartnic_order(events)
    assert counts["network"] == 10
    assert counts["bios_sessions"] == 7  # one per network_power block
    assert counts["boots"] >= 1


def test_network_failure_restores_power_and_fails_cleanly(conductor: Server) -> None:
    with conductor.client() as c:
        node = smartnic_node(c, fake_network_fail="attach:tenant")
        for verb, state in (("manage", "manageable"), ("provide", "available")):
            provision(c, node, verb)
            wait_for(c, node, state)
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed")
        events = history(c, node)
    assert failed["power_state"] == "power off"
    assert failed["reservation"] is None
    assert "attach the tenant network" in failed["last_error"]
    assert failed["last_error"].startswith("deploy failed")
    # The failing step ran in BIOS, and the host was powered off right after it.
    failing = max(i for i, e in enumerate(events) if e["event"] == "attach tenant network: started")
    after = [e["event"] for e in events[failing:] if e["event_type"] == "power"]
    assert after[:2] == ["power off requested", "power off (BMC confirmed)"]
    audit_smartnic_order(events)
    assert any(e["severity"] == "ERROR" for e in events)


def test_bios_refused_fails_before_any_network_step(conductor: Server) -> None:
    with conductor.client() as c:
        node = smartnic_node(c, fake_no_bios="true")
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")
        failed = wait_for(c, node, "clean failed")
        events = history(c, node)
    assert "bios" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert network_steps(events) == []


def test_ramdisk_deploy_boots_the_ramdisk_on_the_tenant_network(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c, network_interface="fake", deploy_interface="ramdisk")["uuid"]
        make_port(c, node, is_smartnic=True, local_link_connection=SMART_LLC)
        conductor.sqlite_exec("UPDATE nodes SET provision_state='available' WHERE uuid=?", node)
        provision(c, node, "active")
        active = wait_for(c, node, "active")
        events = history(c, node)
    assert active["power_state"] == "power on"
    assert network_steps(events) == ["detach tenant network", "attach tenant network"]
    texts = [e["event"] for e in events]
    boot = texts.index("next boot from pxe")
    assert texts[boot + 1] == "ports verified ACTIVE on the tenant network"
    assert audit_smartnic_order(events)["boots"] == 1


def test_manual_clean_runs_the_requested_steps(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c)["uuid"]
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        r = c.put(f"/v1/nodes/{node}/states/provision", json={"target": "clean"})
        assert r.status_code == 400
        assert "clean_steps" in fault(r)
        assert c.get(f"/v1/nodes/{node}").json()["reservation"] is None
        steps = [
            {"interface": "deploy", "step": "erase_devices_metadata"},
            {"interface": "raid", "step": "delete_configuration"},
        ]
        provision(c, node, "clean", clean_steps=steps)
        wait_for(c, node, "manageable")
        texts = [e["event"] for e in history(c, node)]
    assert any("clean step deploy.erase_devices_metadata" in t for t in texts)
    assert any("clean step raid.delete_configuration" in t for t in texts)


def test_rebuild_rescue_unrescue_and_adopt(conductor: Server) -> None:
    with conductor.client() as c:
        node = smartnic_node(c)
        conductor.sqlite_exec("UPDATE nodes SET provision_state='available' WHERE uuid=?", node)
        provision(c, node, "active")
        wait_for(c, node, "active")
        start = len(history(c, node))
        provision(c, node, "rebuild")
        wait_for(c, node, "active")
        rebuild = history(c, node)[start:]
        assert rebuild[0]["event"].startswith("rebuild requested")
        assert network_steps(rebuild) == [
            "detach tenant network",
            "attach provisioning network",
            "detach provisioning network",
            "attach tenant network",
        ]
        # The running instance was powered off before its network was touched.
        first_network = next(i for i, e in enumerate(rebuild) if e["event_type"] == "network")
        powers = [e["event"] for e in rebuild[:first_network] if e["event_type"] == "power"]
        assert powers[:2] == ["power off requested", "power off (BMC confirmed)"]
        start = len(history(c, node))
        provision(c, node, "rescue", rescue_password="s3cret-rescue")
        assert wait_for(c, node, "rescue")["power_state"] == "power on"
        provision(c, node, "unrescue")
        wait_for(c, node, "active")
        events = history(c, node)
        assert network_steps(events[start:]) == [
            "detach tenant network",
            "attach rescuing network",
            "detach rescuing network",
            "attach tenant network",
        ]
        audit_smartnic_order(events)
        assert "s3cret-rescue" not in c.get(f"/v1/nodes/{node}").text

        adopted = make_node(c)["uuid"]
        provision(c, adopted, "manage")
        wait_for(c, adopted, "manageable")
        provision(c, adopted, "adopt")
        assert wait_for(c, adopted, "active")["last_error"] is None


def test_maintenance_blocks_provisioning(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c)["uuid"]
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        assert c.put(f"/v1/nodes/{node}/maintenance", json={"reason": "x"}).status_code == 202
        r = c.put(f"/v1/nodes/{node}/states/provision", json={"target": "provide"})
        assert r.status_code == 400
        assert "maintenance" in fault(r)


def test_invalid_transitions_name_the_allowed_verbs(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c)
        r = c.put(f"/v1/nodes/{node['uuid']}/states/provision", json={"target": "active"})
        assert r.status_code == 400
        assert "'enroll'" in fault(r) and "manage" in fault(r)
        r = c.put(f"/v1/nodes/{node['uuid']}/states/provision", json={"target": "fly"})
        assert r.status_code == 400
        assert "provide" in fault(r)
        r = c.put(
            f"/v1/nodes/{node['uuid']}/states/provision", json={"target": "manage", "colour": "red"}
        )
        assert r.status_code == 400
        assert c.get(f"/v1/nodes/{node['uuid']}").json()["provision_state"] == "enroll"


def test_locked_node_is_409(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c)
        conductor.sqlite_exec("UPDATE nodes SET reservation='other:1:x' WHERE uuid=?", node["uuid"])
        r = c.put(f"/v1/nodes/{node['uuid']}/states/provision", json={"target": "manage"})
        assert r.status_code == 409
        assert "locked by other:1:x" in fault(r)
        conductor.sqlite_exec("UPDATE nodes SET reservation=NULL WHERE uuid=?", node["uuid"])


def test_power_and_boot_device_api(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c)["uuid"]
        r = c.put(f"/v1/nodes/{node}/states/power", json={"target": "power on"})
        assert r.status_code == 202
        deadline = c.get(f"/v1/nodes/{node}")
        for _ in range(100):
            deadline = c.get(f"/v1/nodes/{node}")
            if deadline.json()["power_state"] == "power on" and not deadline.json()["reservation"]:
                break
        assert deadline.json()["power_state"] == "power on"
        r = c.put(
            f"/v1/nodes/{node}/management/boot_device",
            json={"boot_device": "bios", "persistent": True},
        )
        assert r.status_code == 204, r.text
        assert c.get(f"/v1/nodes/{node}/management/boot_device").json() == {
            "boot_device": "bios",
            "persistent": True,
        }
        supported = c.get(f"/v1/nodes/{node}/management/boot_device/supported").json()
        assert "bios" in supported["supported_boot_devices"]
        r = c.put(f"/v1/nodes/{node}/management/boot_device", json={"boot_device": "floppy"})
        assert r.status_code == 400
        r = c.put(f"/v1/nodes/{node}/states/power", json={"target": "explode"})
        assert r.status_code == 400
        result = c.get(f"/v1/nodes/{node}/validate").json()
        assert result["power"] == {"result": True}  # Ironic's shape: a reason only on failure
        assert result["deploy"]["result"] is True


def test_validate_reports_every_interface_as_ironic(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(
            c, bios_interface="no-bios", console_interface="fake", rescue_interface="no-rescue"
        )["uuid"]
        result = c.get(f"/v1/nodes/{node}/validate").json()
    assert sorted(result) == sorted(VALIDATED)
    assert result["bios"] == {
        "result": False,
        "reason": "Driver fake-hardware does not support bios (disabled or not implemented).",
    }
    assert result["console"] == {"result": True}
    assert result["storage"] == {"result": True}  # noop
    assert result["rescue"]["result"] is False
    assert "no-rescue rescue interface cannot rescue" in result["rescue"]["reason"]


def test_validate_reports_what_a_deploy_interface_lacks(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c, deploy_interface="ansible")["uuid"]
        result = c.get(f"/v1/nodes/{node}/validate").json()
        assert result["deploy"]["result"] is False
        assert "ansible deploy needs instance_info image_source" in result["deploy"]["reason"]
        node = make_node(c, deploy_interface="iscsi")["uuid"]  # no image named
        result = c.get(f"/v1/nodes/{node}/validate").json()
        assert result["deploy"]["result"] is False
        assert "iscsi deploy needs instance_info image_source" in result["deploy"]["reason"]


def test_dead_conductor_is_reaped_and_its_node_failed(conductor: Server) -> None:
    with conductor.client() as c:
        node = make_node(c)["uuid"]
    host = socket.gethostname()
    dead = f"{host}:999999:dead00"
    conductor.sqlite_exec(
        "INSERT INTO conductors (name, hostname, started_at, heartbeat_at) "
        "VALUES (?, ?, datetime('now'), datetime('now'))",
        dead,
        host,
    )
    conductor.sqlite_exec(
        "UPDATE nodes SET provision_state='deploying', target_provision_state='active', "
        "reservation=? WHERE uuid=?",
        dead,
        node,
    )
    with conductor.client() as c:
        failed = wait_for(c, node, "deploy failed", timeout=15)
    assert dead in failed["last_error"] and "stopped" in failed["last_error"]
    assert conductor.sqlite_count("conductors") == 1


def test_restart_mid_flow_leaves_no_node_stuck(tmp_path: Path) -> None:
    server = start_server(tmp_path, env=FAST)
    try:
        with server.client() as c:
            node = make_node(c)["uuid"]
            provision(c, node, "manage")
            wait_for(c, node, "manageable")
            r = c.patch(
                f"/v1/nodes/{node}",
                json=[{"op": "add", "path": "/driver_info/fake_power_delay", "value": "5"}],
            )
            assert r.status_code == 200
            provision(c, node, "provide")  # cleaning powers off: that takes 5 s
            shown = c.get(f"/v1/nodes/{node}").json()
            assert shown["provision_state"] == "cleaning" and shown["reservation"]
    finally:
        os.kill(server.proc.pid, signal.SIGKILL)  # no clean shutdown
        server.proc.wait()
    restarted = start_server(tmp_path, env=FAST)
    try:
        with restarted.client() as c:
            shown = wait_for(c, node, "clean failed", timeout=15)
        assert "stopped while the node was cleaning" in shown["last_error"]
    finally:
        restarted.stop()


def test_openstack_cli_drives_the_lifecycle(conductor: Server) -> None:
    with conductor.client() as c:
        node = smartnic_node(c)
    url = conductor.url
    for verb in ("manage", "provide", "deploy", "undeploy"):
        r = openstack_cli(url, "baremetal", "node", verb, node, "--wait", "60")
        assert r.returncode == 0, f"{verb}: {r.stderr}"
    shown = openstack_cli(
        url, "baremetal", "node", "show", node, "-f", "value", "-c", "provision_state"
    )
    assert shown.stdout.strip() == "available"
    refused = openstack_cli(url, "baremetal", "node", "undeploy", node)
    assert refused.returncode != 0
    assert "available" in refused.stderr


def test_openstack_cli_and_sdk_read_every_interface_of_validate(conductor: Server) -> None:
    import openstack

    with conductor.client() as c:
        node = make_node(c, bios_interface="no-bios")["uuid"]
    r = openstack_cli(conductor.url, "baremetal", "node", "validate", node, "-f", "json")
    assert r.returncode == 0, r.stderr
    rows = {row["Interface"]: row for row in json.loads(r.stdout)}
    assert sorted(rows) == sorted(VALIDATED)
    assert rows["bios"]["Result"] is False and "does not support bios" in rows["bios"]["Reason"]
    conn = openstack.connect(
        auth_type="none", baremetal_endpoint_override=conductor.url,
        load_yaml_config=False, load_envvars=False,
    )  # fmt: skip
    checked = conn.baremetal.validate_node(node, required=())
    assert checked["boot"].result is True  # what a user's code reads
    assert checked["bios"].result is False
