"""One QEMU host through the whole stack (issue 14, the first end-to-end slice): the
server with the ``ipxe`` boot interface and the ramdisk built from Debian packages,
the smart NIC agent, the DHCP agent; the VM cleans (its firmware network-boots iPXE,
the ramdisk over HTTP from /boot, heartbeats through its NIC) and deploys (the
ramdisk writes the instance image and the config drive, the VM reboots from disk and
its OS leases its tenant address — the address of its VIF port)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.lab import datacentre, vm
from metalnic.lab.scenario import Stack
from tests.ovslab import require_ovs
from tests.support import free_port, require


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_ovs()
    require(vm.available(), f"{vm.QEMU} (Debian: qemu-system-x86 seabios ipxe-qemu)")
    tmp = tmp_path_factory.mktemp("vmdeploy")
    spec = datacentre.LabSpec(
        f"vmd{tmp.name[-3:]}", 1, 0, provisioning_subnet="10.93.0.0/24",
        api_port=free_port(), hosts="vm",
    )  # fmt: skip
    lab_dir = tmp / "lab"
    running: Stack | None = None
    try:
        lab = datacentre.up(spec, lab_dir)
        running = Stack(lab, tmp / "state", say=lambda line: print(line, flush=True),
                        env={"METALNIC_PORT_ACTIVE_TIMEOUT": "30"})  # fmt: skip
        running.start()
        running.enroll()
        yield running
    finally:
        if running is not None:
            running.stop()
        for log in lab_dir.glob("hosts/*/*.log"):
            target = tmp / "lab-logs" / log.relative_to(lab_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target)
        datacentre.teardown(spec.prefix, lab_dir)


def test_a_vm_cleans_and_deploys_through_its_nic(stack: Stack) -> None:
    host = stack.lab["hosts"][0]["name"]
    stack.make_available([host], timeout=420)
    stack.deploy([host], timeout=420)
    console = Path(stack.lab["hosts"][0]["vm"]["console"]).read_text(errors="replace")
    # The ramdisk ran: leased on the provisioning network, looked up, heartbeat.
    assert "metalnic-ramdisk:" in console and "heartbeat accepted" in console
    # The instance booted from the disk the ramdisk wrote, and leased its VIF's address.
    leases = stack.leases(host)
    tenant = [cidr for _, state, cidr in leases if state == "disk"]
    assert tenant and tenant[-1] == f"{stack.tenant_ip(host)}/24", leases
    provisioning = [cidr for _, state, cidr in leases if state == "pxe"]
    assert provisioning and all(c.startswith("10.93.0.") for c in provisioning), leases
    assert "metalnic-instance:" in console
