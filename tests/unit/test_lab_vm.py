"""The VM hosts' pieces without QEMU or root: the command line per boot device, the QMP
client against a stand-in QMP server on a unix socket, and the follower's seam (a BMC's
push reaches the machine once per change of state, and is an event)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from metalnic.lab import hosts, vm
from metalnic.lab.description import Host, LabDescription
from metalnic.lab.machine import BIOS, DISK, OFF, PXE, HostLog, observed_state
from metalnic.lab.qmp import QmpClient, QmpError
from metalnic.lab.vm import ConsoleWatch, QemuMachine, boot_indices, make_disk, qemu_command


def _device(cmd: list[str], prefix: str) -> str:
    return next(a for a in cmd if a.startswith(prefix))


@pytest.mark.parametrize(
    ("state", "nic", "disk"),
    [(PXE, ",bootindex=1", ",bootindex=2"), (DISK, "", ",bootindex=1"), (BIOS, "", ",bootindex=1")],
)
def test_qemu_command_per_boot_device(tmp_path: Path, state: str, nic: str, disk: str) -> None:
    cmd = qemu_command("p-host1", "p-host1b", "52:54:00:aa:01:01", tmp_path, state)
    assert _device(cmd, "virtio-net-pci").endswith(f"mac=52:54:00:aa:01:01{nic}")
    assert _device(cmd, "virtio-blk-pci").endswith(f"drive=drive0{disk}")
    # Always created stopped (BIOS stays so), TCG, strict boot order, the tap as is.
    assert "-S" in cmd and cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-boot") + 1] == "strict=on,reboot-timeout=5000"
    assert _device(cmd, "tap,") == (
        "tap,id=net0,ifname=p-host1b,script=no,downscript=no,vnet_hdr=off"
    )
    assert f"path={tmp_path / 'console.log'},append=on" in _device(cmd, "file,id=console")


def test_boot_indices_never_share_an_index() -> None:
    for state in (PXE, DISK, BIOS):
        used = [i for i in boot_indices(state).values() if i > 0]
        assert len(used) == len(set(used)) and used


def test_make_disk_keeps_what_is_there(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    make_disk(disk, 1 << 20)
    assert disk.stat().st_size == 1 << 20
    disk.write_bytes(b"deployed")
    make_disk(disk, 1 << 20)
    assert disk.read_bytes() == b"deployed"


def test_console_milestones_once_per_line_also_while_it_is_written() -> None:
    watch = ConsoleWatch()
    assert watch.feed("\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\n\r\n") == ["firmware: SeaBIOS"]
    assert watch.feed("Configuring (net0 52:54:00:aa:01:01)...") == ["firmware: iPXE asks DHCP"]
    assert watch.feed("......") == []  # the same line, still being written
    assert watch.feed(" ok\r\nmetalnic-ramdisk: lease 10.99.0.11/24\n") == [
        "metalnic-ramdisk: lease 10.99.0.11/24"
    ]
    assert watch.feed("net0: 10.99.0.11/255.255.255.0\r\n") == [
        "firmware: iPXE leased 10.99.0.11/255.255.255.0"
    ]
    assert watch.feed("http://10.99.0.1:6385/boot/boot.ipxe... ok\r\n") == [
        "firmware: iPXE loaded http://10.99.0.1:6385/boot/boot.ipxe"
    ]
    kernel = "http://10.99.0.1:6385/boot/images/deploy/kernel... "
    assert watch.feed(kernel + "22%     98%  ") == []  # still loading
    assert watch.feed("   ok\r\n") == [f"firmware: iPXE loaded {kernel[:-4]}"]
    assert watch.feed("No bootable device.") == ["firmware: no bootable device"]
    assert watch.feed("\nConfiguring (net0 x)\n") == ["firmware: iPXE asks DHCP"]  # a new line


def test_own_lines_behind_a_kernel_message_are_milestones() -> None:
    """A kernel message printed on the same serial line first does not hide them."""
    watch = ConsoleWatch()
    line = "[   12.345678] random: crng init done\tmetalnic-ramdisk: disk metadata erased\n"
    assert watch.feed(line) == ["metalnic-ramdisk: disk metadata erased"]
    assert watch.feed("[metalnic lab 2026-12-03T12:00:00Z] power off\n") == []


def test_a_power_off_keeps_the_last_console_lines(tmp_path: Path) -> None:
    """What the VM wrote just before its power-off (not read yet by the 0.2 s reader)
    is still an event of that boot, before the power-off's own event."""
    life = HostLog("host1", tmp_path)
    lab = cast(LabDescription, {"prefix": "t"})
    host = cast(Host, {"name": "host1"})
    machine = QemuMachine(lab, host, life)
    (tmp_path / "console.log").write_text("earlier boot\n")
    with life.lock:
        machine.state = PXE
        machine.proc = subprocess.Popen(["sleep", "30"])  # a qemu that does not quit by itself
        machine.console = vm._ConsoleTail(tmp_path / "console.log", len("earlier boot\n"))
    with (tmp_path / "console.log").open("a") as out:
        out.write("metalnic-ramdisk: heartbeat accepted\nmetalnic-ramdisk: disk metadata erased\n")
    with life.lock:
        assert machine.boot(OFF).startswith("powered off")
        life.event(OFF, "powered off")
    events = [line.split(" ", 1)[1] for line in (tmp_path / "events.log").read_text().splitlines()]
    assert events == [
        "pxe console: metalnic-ramdisk: heartbeat accepted",
        "pxe console: metalnic-ramdisk: disk metadata erased",
        "off powered off",
    ]
    assert machine.console is None and machine.state == OFF


def test_observed_state() -> None:
    assert observed_state("Off", "Pxe") == OFF
    assert observed_state("On", "BiosSetup") == BIOS
    assert observed_state("On", "Pxe") == PXE
    assert observed_state("On", None) == DISK


class StandInQmp:
    """A QMP server that greets, answers each command, and emits an event first."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.received: list[dict[str, Any]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rwb") as io:
            io.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            io.flush()
            for line in io:
                request = json.loads(line)
                self.received.append(request)
                if request["execute"] == "cont":
                    io.write(b'{"event": "RESUME", "timestamp": {}}\n')
                if request["execute"] == "qom-set" and request["arguments"]["value"] == 7:
                    io.write(b'{"error": {"class": "GenericError", "desc": "in use"}}\n')
                else:
                    io.write(b'{"return": {}}\n')
                io.flush()


@pytest.fixture
def qmp_server(tmp_path: Path) -> Iterator[tuple[StandInQmp, Path]]:
    path = tmp_path / "qmp.sock"
    stand_in = StandInQmp(path)
    yield stand_in, path
    stand_in.server.close()


def test_qmp_client_negotiates_runs_and_keeps_events(
    qmp_server: tuple[StandInQmp, Path],
) -> None:
    stand_in, path = qmp_server
    client = QmpClient(path).connect()
    assert client.greeting["QMP"]["capabilities"] == []
    assert client.execute("cont") == {}
    assert [e["event"] for e in client.events] == ["RESUME"]
    path_arg = "/machine/peripheral/nic0"
    client.execute("qom-set", path=path_arg, property="bootindex", value=1)
    with pytest.raises(QmpError, match="GenericError: in use"):
        client.execute("qom-set", path=path_arg, property="bootindex", value=7)
    client.close()
    assert [r["execute"] for r in stand_in.received] == [
        "qmp_capabilities", "cont", "qom-set", "qom-set",
    ]  # fmt: skip
    assert stand_in.received[2]["arguments"] == {
        "path": path_arg, "property": "bootindex", "value": 1,
    }  # fmt: skip


def test_qmp_client_says_when_nobody_listens(tmp_path: Path) -> None:
    with pytest.raises(QmpError, match="cannot connect"):
        QmpClient(tmp_path / "none.sock").connect(wait=0)
    with pytest.raises(QmpError, match="longer than"):
        QmpClient(tmp_path / ("x" * 120))


class FakeMachine:
    def __init__(self) -> None:
        self.boots: list[str] = []
        self.cut = 0

    def boot(self, state: str) -> str:
        self.boots.append(state)
        if state == DISK:
            raise RuntimeError("no disk")
        return f"now {state}"

    def power_cut(self) -> None:
        self.cut += 1


def test_follower_drives_its_machine_once_per_change(tmp_path: Path) -> None:
    host: Host = {
        "name": "host1", "nic": "nic1", "mac": "52:54:00:aa:01:01", "port_a": "p-host1a",
        "port_b": "p-host1b", "netns": "p-host1", "bmc": "redfish",
        "redfish_system_id": "/redfish/v1/Systems/x",
    }  # fmt: skip
    lab: LabDescription = {
        "name": "t", "prefix": "p", "dir": str(tmp_path), "tenant_vlans": [101, 199],
        "provisioning": {"vlan": 100, "subnet": "10.9.0.0/24", "server_ip": "10.9.0.1",
                         "prefix": 24, "pool": ["10.9.0.10", "10.9.0.254"], "leg": "p-pv"},
        "nics": [], "hosts": [host],
        "bmc": {"kind": "redfish", "url": "http://127.0.0.1:1", "username": "u",
                "password_file": "/nonexistent"},
    }  # fmt: skip
    follower = hosts.HostFollower(lab, host, "pw")
    machine = FakeMachine()
    follower.machine = machine
    follower.pushed_state("On", "BiosSetup")
    follower.pushed_state("On", "BiosSetup")  # no change: nothing to do
    follower.pushed_state("On", "Pxe")
    follower.pushed_state("On", "Hdd")
    follower.pushed_state("Off", "Hdd")
    assert machine.boots == [BIOS, PXE, DISK, OFF]
    events = (tmp_path / "hosts" / "host1" / "events.log").read_text().splitlines()
    assert [e.split(" ", 1)[1] for e in events] == [
        "bios now bios", "pxe now pxe", "disk FAILED: no disk", "off now off",
    ]  # fmt: skip
    assert follower.log.boots == 4
