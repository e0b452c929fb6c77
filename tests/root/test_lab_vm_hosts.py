"""``metalnic lab up --hosts vm``: QEMU hosts that follow the lab's own BMCs.

A lab of two local NICs whose hosts are VMs (TCG): host1 behind the Redfish BMC
(driven with sushy), host2 behind the IPMI BMC (driven with ipmitool), every
frame watched on port B — the persistent tap that *is* the VM's NIC.  Proven:
held in BIOS set-up a VM sends nothing (10 s); in PXE its firmware's
DHCPDISCOVER is on port B (nobody answers: no DHCP server here); when a BMC
confirms "off", qemu is already gone; the tap, its ifindex and its OVS ofport
survive a power cycle (a new qemu per power-on); ``lab down`` stops a VM that
is still on.  Two firmware runs in all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import sushy
from scapy.all import DHCP, rdpcap

from metalnic.lab import netns
from metalnic.lab.capture import Capture, read_pcap
from metalnic.lab.datacentre import LabSpec, alive_pid
from tests.ovslab import require_ovs, wait_until
from tests.root.test_lab_cli import lab, root_links
from tests.support import require

SUBNET = "10.94.0.0/24"  # this test's provisioning subnet (no other lab uses it)


def test_vm_hosts_follow_their_bmcs() -> None:
    require_ovs()
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 (qemu-system-x86)")
    require(shutil.which("tcpdump") is not None, "tcpdump")
    name = f"hvm{os.getpid() % 100000}"
    prefix = LabSpec(name).prefix
    directory = Path(tempfile.mkdtemp(prefix="hvm-")) / name
    where = ["--name", name, "--dir", str(directory)]
    qemus: list[int] = []
    try:
        r = lab(
            "up", *where, "--hosts", "vm", "--local-nics", "2", "--remote-nics", "0",
            "--provisioning-subnet", SUBNET, "--json",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        desc = json.loads(r.stdout)
        assert [h["kind"] for h in desc["hosts"]] == ["vm", "vm"]
        assert [h["bmc"] for h in desc["hosts"]] == ["redfish", "ipmi"]
        qemus += _ipmi_host(directory, desc, desc["hosts"][1])
        qemus += _redfish_host(directory, desc, desc["hosts"][0])
        console = lab("console", "host2", *where)
        assert console.returncode == 0, console.stderr
        assert "iPXE" in console.stdout and "power on: bios" in console.stdout
    finally:
        down = lab("down", *where)
    assert down.returncode == 0, down.stderr
    assert netns.list_ns(f"{prefix}-") == [] and root_links(prefix) == []
    assert qemus and not any(alive_pid(pid) for pid in qemus)
    assert not directory.exists()


def _events(directory: Path, host: str) -> list[str]:
    path = directory / "hosts" / host / "events.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split(" ", 1)[1] for line in lines]


def _last(directory: Path, host: str) -> str:
    events = _events(directory, host)
    return events[-1] if events else ""


def _qemu_pid(directory: Path, host: str) -> int:
    return int((directory / "hosts" / host / "qemu.pid").read_text())


def _frames_from(path: Path, mac: str) -> int:
    return sum(1 for f in read_pcap(path) if f.src == mac)


def _discovers(path: Path, mac: str) -> list[Any]:
    """The DHCPDISCOVERs from ``mac`` in a capture (scapy reads the whole packet)."""
    return [
        p
        for p in rdpcap(str(path))
        if p.src == mac and DHCP in p and ("message-type", 1) in p[DHCP].options
    ]


def _port_b(desc: dict[str, Any], host: dict[str, Any]) -> tuple[str, int, int]:
    """(namespace, ifindex of the tap, its ofport on br-int)."""
    nic = next(n for n in desc["nics"] if n["name"] == host["nic"])
    ns, tap = nic["netns"], host["port_b"]
    ifindex = int(netns.run(netns.in_ns(ns, "cat", f"/sys/class/net/{tap}/ifindex")))
    ofport = netns.run(["ovs-vsctl", f"--db={nic['ovsdb']}", "get", "Interface", tap, "ofport"])
    return ns, ifindex, int(ofport)


def _ipmi_host(directory: Path, desc: dict[str, Any], host: dict[str, Any]) -> list[int]:
    """BIOS (silent) → PXE while on (reset into it: DHCPDISCOVER) → off (qemu gone when
    ipmitool returns) → on again: a new qemu, the same tap and ofport."""
    bmc, name, mac = desc["bmc"], host["name"], host["mac"]
    nic = next(n for n in desc["nics"] if n["name"] == host["nic"])
    # Plugged as the NIC agent plugs port B (a port on br-int by its name).
    netns.run(["ovs-vsctl", f"--db={nic['ovsdb']}", "add-port", "br-int", host["port_b"]])
    ns, ifindex, ofport = _port_b(desc, host)
    assert ofport > 0

    def ipmitool(*cmd: str) -> None:
        subprocess.run(
            ["ipmitool", "-I", "lanplus", "-H", host["ipmi_address"], "-p",
             str(host["ipmi_port"]), "-U", bmc["username"], "-f", bmc["password_file"], *cmd],
            capture_output=True, check=True, timeout=30,
        )  # fmt: skip

    wait_until(lambda: _last(directory, name) == "off powered off", 10, "host2 seen off")
    pcap = directory.parent / "host2.pcap"
    capture = Capture(ns, host["port_b"], pcap).start()
    try:
        ipmitool("chassis", "bootdev", "bios")
        ipmitool("chassis", "power", "on")
        assert _last(directory, name).startswith("bios in BIOS set-up"), _events(directory, name)
        first = _qemu_pid(directory, name)
        assert alive_pid(first)
        time.sleep(10)
        assert _frames_from(pcap, mac) == 0, "a VM held in BIOS set-up sent frames"
        started = time.time()
        ipmitool("chassis", "bootdev", "pxe")  # while on: the VM resets into PXE
        assert _last(directory, name).startswith("pxe firmware PXE"), _events(directory, name)
        wait_until(lambda: _frames_from(pcap, mac) > 0, 30, "the firmware's first frame")
    finally:
        capture.stop()
    discovers = _discovers(pcap, mac)
    assert discovers, "no DHCPDISCOVER from the VM's firmware on port B"
    assert float(discovers[0].time) - started < 30
    assert _qemu_pid(directory, name) == first  # a reset, not a new process
    # The console's milestones are events of the boot they belong to.
    wait_until(
        lambda: "pxe console: firmware: iPXE asks DHCP" in _events(directory, name),
        10, "the firmware's DHCP on the console", show=lambda: _events(directory, name),
    )  # fmt: skip
    ipmitool("chassis", "power", "off")
    # Dark by the time the BMC answered: the push contract.
    assert not alive_pid(first), "qemu still running when the BMC confirmed off"
    assert _last(directory, name).startswith("off powered off")
    ipmitool("chassis", "bootdev", "bios")
    ipmitool("chassis", "power", "on")
    second = _qemu_pid(directory, name)
    assert second != first and alive_pid(second)
    assert _port_b(desc, host) == (ns, ifindex, ofport)  # the same tap, the same ofport
    return [first, second]  # the second one is still on (in BIOS): `lab down` stops it


def _redfish_host(directory: Path, desc: dict[str, Any], host: dict[str, Any]) -> list[int]:
    """PXE and power on through sushy: DHCPDISCOVER on port B; ForceOff: qemu is gone
    when the BMC first reads back Off (sushy-tools applies it 1–11 s later, on a read)."""
    bmc, name, mac = desc["bmc"], host["name"], host["mac"]
    password = Path(bmc["password_file"]).read_text().strip()
    conn = sushy.Sushy(bmc["url"] + "/redfish/v1", username=bmc["username"], password=password)
    system = conn.get_system(host["redfish_system_id"])
    nic = next(n for n in desc["nics"] if n["name"] == host["nic"])
    pcap = directory.parent / "host1.pcap"
    capture = Capture(nic["netns"], host["port_b"], pcap).start()
    try:
        system.set_system_boot_options(
            sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.CONTINUOUS
        )
        system.reset_system(sushy.ResetType.ON)
        wait_until(lambda: _last(directory, name).startswith("pxe"), 20, "host1 in PXE")
        pid = _qemu_pid(directory, name)
        wait_until(lambda: _frames_from(pcap, mac) > 0, 30, "host1's firmware's first frame")
    finally:
        capture.stop()
    assert _discovers(pcap, mac), "no DHCPDISCOVER from host1's firmware on port B"
    system.reset_system(sushy.ResetType.FORCE_OFF)
    deadline = time.monotonic() + 20
    while True:
        system.refresh()
        if system.power_state == sushy.PowerState.OFF:
            break
        assert time.monotonic() < deadline, "the Redfish BMC never read back Off"
        time.sleep(0.2)
    assert not alive_pid(pid), "qemu still running when the Redfish BMC said Off"
    return [pid]
