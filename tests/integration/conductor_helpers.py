"""Helpers for conductor tests: waiting for states and auditing the event log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.helpers import SMART_LLC, make_node, make_port


def smartnic_node(c: httpx.Client, power_delay: str = "0.05", **driver_info: object) -> str:
    """A fake-hardware node (fake network and deploy interfaces) with one smart NIC port."""
    node = make_node(
        c,
        network_interface="fake",
        deploy_interface="fake",
        driver_info={"fake_power_delay": power_delay, **driver_info},
    )
    make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
    return str(node["uuid"])


MIB = 1 << 20


def image_node(
    c: httpx.Client, deploy_interface: str, image_url: str, checksum: str
) -> tuple[str, str]:
    """A node (fake network interface) that deploys ``image_url`` with
    ``deploy_interface``, and its one smart NIC port: (node uuid, port MAC)."""
    node = make_node(
        c,
        network_interface="fake",
        deploy_interface=deploy_interface,
        instance_info={"image_source": image_url, "image_os_hash_value": checksum},
    )
    port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
    return str(node["uuid"]), str(port["address"])


def a_disk(tmp_path: Path) -> Path:
    """A 4 MiB disk file that holds something other than zeros."""
    disk = tmp_path / "disk"
    disk.write_bytes((b"OLD-CONTENT" * (4 * MIB // 11 + 1))[: 4 * MIB])
    return disk


def wait_for(c: httpx.Client, node: str, state: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = c.get(f"/v1/nodes/{node}").json()
        if shown["provision_state"] == state and shown["reservation"] is None:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"node {node} not {state} (unlocked) within {timeout}s: {shown}")


def provision(c: httpx.Client, node: str, verb: str, **extra: Any) -> None:
    r = c.put(f"/v1/nodes/{node}/states/provision", json={"target": verb, **extra})
    assert r.status_code == 202, r.text


def history(c: httpx.Client, node: str) -> list[dict[str, Any]]:
    r = c.get(f"/v1/nodes/{node}/history")
    assert r.status_code == 200, r.text
    return list(r.json()["history"])


def kept_off_tenant_networks(events: list[dict[str, Any]]) -> None:
    """After a failed deploy step: the power rule held throughout, and the host's ports
    were never on a tenant network after they left it (as in Ironic, they stay on the
    phase network the step failed on until the next flow moves them)."""
    audit_smartnic_order(events)
    done = [e["event"] for e in events if e["event_type"] == "network" and ": done" in e["event"]]
    tenant = [text for text in done if " tenant network" in text]
    assert not tenant or tenant[-1].startswith("detach tenant network"), done
    assert not any("plugged on" in e["event"] for e in events), done


def audit_smartnic_order(events: list[dict[str, Any]], running: bool = False) -> dict[str, int]:
    """Check the spec's rule over a whole log; return counts of what was checked.

    * every network step happens while the host is powered on with BIOS as its
      boot device (set before the power-on that preceded it) — or, with
      ``running``, while it runs what a gated boot started (the rescue ramdisk
      moving to the tenant network: the spec's rule keeps a powered host as it
      is); those steps are counted as ``running_network``;
    * every boot into something else (pxe/disk) is preceded by a boot-gate
      check after that boot device was set;
    * every BIOS session ends with the host powered off again (restored).
    """
    powered = False
    device: str | None = None
    bios_session = False
    gate_since_device = False
    counts = {"network": 0, "boots": 0, "bios_sessions": 0, "running_network": 0}
    booted = False  # powered on into something a boot gate checked (not BIOS)
    for e in events:
        text, kind = e["event"], e["event_type"]
        if kind == "boot_device":
            device = text.split("next boot from ")[1].split()[0]
            gate_since_device = False
        elif kind == "boot_gate":
            gate_since_device = True
        elif kind == "power" and text.startswith("power on (BMC confirmed)"):
            powered = True
            if device == "bios":
                bios_session = True
                counts["bios_sessions"] += 1
            else:
                assert gate_since_device, f"booted {device} without a boot gate: {e}"
                counts["boots"] += 1
                booted = True
        elif kind == "power" and text.startswith("power off (BMC confirmed)"):
            powered = False
            bios_session = False
            booted = False
        elif kind == "power" and text.startswith("rebooting requested"):
            assert device != "bios" and gate_since_device, f"reboot without gate: {e}"
            counts["boots"] += 1
            booted = True
        elif kind == "network" and text.endswith("started"):
            if running and powered and booted and not bios_session:
                counts["running_network"] += 1
            else:
                assert powered and bios_session, f"network step outside the BIOS: {e}"
            counts["network"] += 1
    return counts
