"""A lab host that is a QEMU machine, driven over QMP by the host's follower.

``metalnic lab up --hosts vm`` gives every host a VM instead of a namespace:
TCG (KVM is not usable on the lab's machines: see docs/development.md), 256 MB,
one vCPU, a virtio NIC with the host's bare-metal MAC whose backend is a tap
that *is* port B on the smart NIC's OVS (persistent: made by ``lab up`` in the
NIC's namespace, so it — and the OVS port and ofport the NIC agent plugs and
programs — outlive every qemu process), a raw virtio disk (``<host dir>/disk``)
and the serial console appended to ``<host dir>/console.log`` (SeaBIOS and iPXE
print there too: ``etc/sercon-port``), and a second serial port (ttyS1) on
``<host dir>/probe.sock``: the probe channel on which the instance answers
``ping``/``tcp`` probes (``metalnic.lab.probe``; ``probe`` below).  qemu runs
in the NIC's namespace, where the tap is.

What the BMC says, the machine does (``HostFollower`` calls ``boot``):

* off → on: a *new* qemu process per power-on (a qemu kept across reboots grows
  to ~700 MB), started with ``-S`` (created, not running), then ``cont`` —
  except in BIOS set-up, which *stays* in ``-S``: the firmware never runs, the
  VM sends nothing (one of the verified-silent holds; ``-boot order=c`` with an
  empty disk is NOT silent: SeaBIOS falls through to iPXE);
* on → off: QMP ``quit`` (SIGKILL if it does not exit within 2 s), done before
  the follower returns, so before the BMC answers its caller;
* on → on with another boot device: a reset into it, in the same process —
  ``stop``, the boot indices set with ``qom-set``, ``system_reset``, and
  ``cont`` unless the new device is BIOS set-up;
* boot devices, always with ``-boot strict=on``: PXE = the NIC at bootindex 1
  (the disk 2); disk = the disk at 1 and the NIC without a bootindex, so an
  empty disk stops at "No bootable device." instead of falling through to PXE.
  (``-boot once=n`` is not used: with a NIC bootindex it is overridden.)
  With nothing bootable SeaBIOS tries its boot order again after
  ``REBOOT_TIMEOUT_MS`` (what devstack's Ironic VMs set, ``rebootTimeout``): a PXE
  boot whose DHCP went unanswered within iPXE's ~18 s (a DHCP agent restarting
  dnsmasq under load) is retried as a real server's firmware does, instead of the
  deploy waiting out its callback timeout.  A disk boot still never reaches the NIC.

A qemu that exits by itself (the guest powered off) is an event, and the host
stays dark until its BMC powers it on again.  So are the console's milestones
(``<state> console: firmware: iPXE asks DHCP``, the ramdisk's and instance's
own ``metalnic-…:`` lines): the demo shows each boot's stages as they happen.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from metalnic.lab import netns
from metalnic.lab.description import Host, LabDescription
from metalnic.lab.machine import BIOS, DISK, OFF, PXE, HostLog
from metalnic.lab.probe import Probe, ProbeError, ask_socket
from metalnic.lab.qmp import QmpClient, QmpError

QEMU = "qemu-system-x86_64"
MEMORY_MB = 256
DISK_SIZE = 64 << 20  # sparse; the instance images are a few MiB
NIC_ID, DISK_ID = "nic0", "disk0"
REBOOT_TIMEOUT_MS = 5000
SERCON_PORT = b"\xf8\x03"  # COM1: SeaBIOS writes its (and iPXE's) screen to serial
_ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|.)")
_FIRMWARE = (
    ("SeaBIOS (version", "firmware: SeaBIOS"),
    ("iPXE initialising devices", "firmware: iPXE"),
    ("Configuring (net0", "firmware: iPXE asks DHCP"),
    ("No bootable device", "firmware: no bootable device"),
    ("Booting from Hard Disk", "firmware: booting from disk"),
    ("Linux version", "kernel: Linux started"),
)
# iPXE's lease ("net0: 10.99.0.11/255.255.255.0") and each file it chains ("http://….. ok")
# The ramdisk's and the instance's own lines (``metalnic-ramdisk: …``).
_OWN_LINE = re.compile(r"metalnic-[a-z]+: .*")
_IPXE_LEASE = re.compile(r"^net0: (\d+\.\d+\.\d+\.\d+/[\d.]+)")
_IPXE_LOADED = re.compile(r"^(https?://\S+?)\.\.\..*\bok\s*$")


def boot_indices(state: str) -> dict[str, int]:
    """Device id → bootindex (-1: none) for a boot into ``state``."""
    if state == PXE:
        return {NIC_ID: 1, DISK_ID: 2}
    return {NIC_ID: -1, DISK_ID: 1}


def qemu_command(
    name: str, tap: str, mac: str, directory: Path, state: str, accel: str = "tcg"
) -> list[str]:
    """The command line of a host's VM powered on into ``state`` (always ``-S``)."""
    index = boot_indices(state)

    def boot(device: str) -> str:
        return f",bootindex={index[device]}" if index[device] > 0 else ""

    return [
        QEMU, "-name", name, "-accel", accel, "-machine", "pc", "-m", str(MEMORY_MB),
        "-smp", "1", "-nodefaults", "-display", "none", "-vga", "none", "-S",
        "-qmp", f"unix:{directory / 'qmp.sock'},server=on,wait=off",
        "-chardev", f"file,id=console,path={directory / 'console.log'},append=on",
        "-serial", "chardev:console",
        # ttyS1: the probe channel the instance answers on (metalnic.lab.probe)
        "-chardev", f"socket,id=probe,path={directory / 'probe.sock'},server=on,wait=off",
        "-device", "isa-serial,chardev=probe",
        "-fw_cfg", f"name=etc/sercon-port,file={directory / 'sercon-port'}",
        "-boot", f"strict=on,reboot-timeout={REBOOT_TIMEOUT_MS}",
        "-netdev", f"tap,id=net0,ifname={tap},script=no,downscript=no,vnet_hdr=off",
        "-device", f"virtio-net-pci,id={NIC_ID},netdev=net0,mac={mac}{boot(NIC_ID)}",
        "-drive", f"file={directory / 'disk'},format=raw,if=none,id=drive0",
        "-device", f"virtio-blk-pci,id={DISK_ID},drive=drive0{boot(DISK_ID)}",
        # vdb: the config drive the ramdisk writes and the instance reads (never booted)
        "-drive", f"file={directory / 'config-drive'},format=raw,if=none,id=drive1",
        "-device", "virtio-blk-pci,id=configdrive,drive=drive1",
    ]  # fmt: skip


def milestones(line: str) -> list[str]:
    """What a console line says about the boot: firmware stages, and the ramdisk's and
    instance's own ``metalnic-…:`` lines as they are."""
    if own := _OWN_LINE.search(line):  # also behind a kernel message on the same line
        return [own.group(0).strip()[:200]]
    if lease := _IPXE_LEASE.match(line):
        return [f"firmware: iPXE leased {lease.group(1)}"]
    if loaded := _IPXE_LOADED.match(line):
        return [f"firmware: iPXE loaded {loaded.group(1)[:160]}"]
    return [said for mark, said in _FIRMWARE if mark in line]


class ConsoleWatch:
    """Console bytes in, milestones out — each once per line, also for a line still
    being written (iPXE's "Configuring (net0 …)....." ends only when DHCP does)."""

    def __init__(self) -> None:
        self.partial = ""
        self.fired: set[str] = set()  # milestones of the line being written

    def feed(self, text: str) -> list[str]:
        self.partial += _ANSI.sub("", text)
        *complete, self.partial = re.split(r"\r\n|\n|\r", self.partial)
        found: list[str] = []
        for line in complete:
            found += [m for m in milestones(line) if m not in self.fired]
            self.fired = set()
        new = [m for m in milestones(self.partial) if m not in self.fired]
        self.fired |= set(new)
        return found + new


class _ConsoleTail:
    """One qemu's console output from where its power-on began: the milestones not
    read yet, each time ``read`` is called."""

    def __init__(self, path: Path, offset: int) -> None:
        self.fh = path.open("rb")
        self.fh.seek(offset)
        self.watch = ConsoleWatch()

    def read(self) -> list[str]:
        text = self.fh.read().decode(errors="replace")
        return self.watch.feed(text) if text else []

    def close(self) -> None:
        self.fh.close()


def make_disk(path: Path, size: int = DISK_SIZE) -> None:
    """A sparse raw disk, unless there is one already (it keeps what was deployed)."""
    if not path.exists():
        with path.open("wb") as out:
            out.truncate(size)


def available() -> bool:
    return shutil.which(QEMU) is not None


class QemuMachine:
    """A host's VM (see the module docstring); every method runs with the host's lock."""

    def __init__(self, lab: LabDescription, host: Host, life: HostLog) -> None:
        self.lab, self.host, self.life = lab, host, life
        self.dir = life.dir
        make_disk(self.dir / "disk")
        (self.dir / "sercon-port").write_bytes(SERCON_PORT)
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp: QmpClient | None = None
        self.quitting = False  # our own quit: the watcher says nothing
        self.state = OFF  # what the console's milestones are events of
        self.console: _ConsoleTail | None = None  # the running qemu's unread output
        self.probing = threading.Lock()  # one probe at a time on the channel

    def boot(self, state: str) -> str:
        # What the console said up to now is the old state's (power_cut drains it too).
        self._drain()
        if state == OFF:
            pid = self.proc.pid if self.proc is not None else None
            self.power_cut()
            self.state = state
            return "powered off" + (f": qemu {pid} quit" if pid else "")
        self.state = state
        if self.proc is not None and self.proc.poll() is None and self.qmp is not None:
            try:
                self._reset_into(state)
                return f"{self._what(state)}: qemu {self.proc.pid} reset into it"
            except QmpError as exc:
                self._console(f"reset failed ({exc}): power cycle")
                self.power_cut()
        self._start(state)
        assert self.proc is not None
        return f"{self._what(state)}: qemu {self.proc.pid} powered on"

    def power_cut(self) -> None:
        proc, qmp = self.proc, self.qmp
        self.proc, self.qmp = None, None
        if proc is None:
            return
        self.quitting = True
        self._console("power off")
        if qmp is not None:
            with contextlib.suppress(QmpError):  # it may close the socket before it answers
                qmp.execute("quit")
            qmp.close()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Its last words (written before it quit) are still events of its boot; not when
        # the follower stops (no events then).
        self._end_console(drain=not self.life.stopping.is_set())
        (self.dir / "qemu.pid").unlink(missing_ok=True)
        (self.dir / "qmp.sock").unlink(missing_ok=True)
        (self.dir / "probe.sock").unlink(missing_ok=True)

    def probe(self, check: Probe) -> bool:
        """Ask the running instance over its probe channel (ttyS1, ``probe.sock``)."""
        with self.life.lock:
            running = self.proc is not None and self.proc.poll() is None
            state = self.state
        if not running or state != DISK:
            what = "powered off" if not running else f"in {state}, not running its instance"
            raise ProbeError(f"{self.host['name']} is {what}: nothing to probe from")
        with self.probing:
            return ask_socket(self.dir / "probe.sock", check)

    # --- inside ---------------------------------------------------------------------------

    def _what(self, state: str) -> str:
        if state == BIOS:
            return "in BIOS set-up: VM held before its firmware (-S), silent"
        if state == PXE:
            return f"firmware PXE: NIC {self.host['port_b']} first"
        return "boot from disk"

    def _start(self, state: str) -> None:
        self._console(f"power on: {state}")
        offset = (self.dir / "console.log").stat().st_size  # where this power-on's output starts
        (self.dir / "qmp.sock").unlink(missing_ok=True)
        (self.dir / "probe.sock").unlink(missing_ok=True)
        name = f"{self.lab['prefix']}-{self.host['name']}"
        cmd = qemu_command(name, self.host["port_b"], self.host["mac"], self.dir, state)
        with (self.dir / "qemu.log").open("ab") as out:
            proc = subprocess.Popen(
                netns.in_ns(self.host["netns"], *cmd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        (self.dir / "qemu.pid").write_text(str(proc.pid))
        self.proc, self.quitting = proc, False
        try:
            self.qmp = self._connect(proc)
            if state != BIOS:
                self.qmp.execute("cont")
        except QmpError as exc:
            self.power_cut()
            tail = (self.dir / "qemu.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise netns.LabError(f"qemu did not start: {exc}; {' '.join(tail)}") from exc
        self.console = reader = _ConsoleTail(self.dir / "console.log", offset)
        threading.Thread(target=self._watch, args=(proc,), daemon=True).start()
        threading.Thread(target=self._read_console, args=(reader,), daemon=True).start()

    def _connect(self, proc: subprocess.Popen[bytes]) -> QmpClient:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise QmpError(f"qemu exited with {proc.returncode}")
            try:
                return QmpClient(self.dir / "qmp.sock").connect(wait=0.2)
            except QmpError:
                if time.monotonic() > deadline:
                    raise

    def _reset_into(self, state: str) -> None:
        assert self.qmp is not None
        self._console(f"reset into: {state}")
        self.qmp.execute("stop")
        wanted = boot_indices(state)
        # Two devices may not share an index: release them all, then assign.
        for device in wanted:
            self._bootindex(device, -1)
        for device, index in wanted.items():
            if index > 0:
                self._bootindex(device, index)
        self.qmp.execute("system_reset")
        if state != BIOS:
            self.qmp.execute("cont")

    def _bootindex(self, device: str, index: int) -> None:
        assert self.qmp is not None
        path = f"/machine/peripheral/{device}"
        self.qmp.execute("qom-set", path=path, property="bootindex", value=index)

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """A qemu that exits by itself: the machine is dark (an event)."""
        code = proc.wait()
        with self.life.lock:
            if self.proc is not proc or self.quitting:
                return  # ours to stop, or already replaced
            self.proc, self.qmp = None, None
            self._end_console(drain=True)
            (self.dir / "qemu.pid").unlink(missing_ok=True)
            self.life.event(OFF, f"qemu {proc.pid} exited by itself ({code}): dark until power on")

    def _read_console(self, tail: _ConsoleTail) -> None:
        """This qemu's console milestones as events, while it is the host's machine (read
        under the host's lock, so that a power-off drains the rest first: no line lost)."""
        while not self.life.stopping.wait(0.2):
            with self.life.lock:
                if self.console is not tail:
                    return
                self._drain()

    def _end_console(self, drain: bool) -> None:
        """The qemu is gone: read the rest of its output (``drain``), stop reading."""
        if drain:
            self._drain()
        if self.console is not None:
            self.console.close()
            self.console = None

    def _drain(self) -> None:
        """The console's output not read yet, as events of the current state (lock held)."""
        if self.console is not None:
            for said in self.console.read():
                self.life.event(self.state, f"console: {said}")

    def _console(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with (self.dir / "console.log").open("a") as out:
            out.write(f"\n[metalnic lab {stamp}] {text}\n")
