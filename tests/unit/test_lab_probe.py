"""The isolation matrix's probes without QEMU or root: a probe's command line and the
parsing of its answer, the client against a stand-in guest on a unix socket, the
instance image's own answering loop (busybox sh on a pty), the follower's
``POST /probe``, and the demo's stage lines from a host's events."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import threading
import tty as tty_mode
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from metalnic.lab import hosts
from metalnic.lab.description import Host, LabDescription
from metalnic.lab.images import rootfs
from metalnic.lab.probe import Probe, ProbeError, ask_socket
from metalnic.lab.stages import stage
from tests.support import free_port


def test_a_probe_renders_one_line_and_repeats_its_target_in_the_answer() -> None:
    ping, tcp = Probe("ping", "10.50.0.12"), Probe("tcp", "10.50.0.12", 80)
    assert ping.line() == "ping 10.50.0.12\n" and tcp.line() == "tcp 10.50.0.12 80\n"
    assert ping.answer("ok 10.50.0.12\r\n") is True
    assert ping.answer("fail 10.50.0.12") is False
    assert tcp.answer("ok 10.50.0.12 80") is True and tcp.answer("fail 10.50.0.12 80") is False
    # Not this probe's answer: the other probe's, another address's, an echo, noise.
    assert tcp.answer("ok 10.50.0.12") is None and ping.answer("ok 10.50.0.12 80") is None
    assert ping.answer("ok 10.50.0.13") is None
    assert ping.answer("ping 10.50.0.12") is None and ping.answer("") is None
    with pytest.raises(ProbeError, match="refused 'ping 10.50.0.12'"):
        ping.answer("error unknown command: ping")


@pytest.mark.parametrize(
    ("kind", "address", "port", "error"),
    [
        ("ping", "10.0.0.1; reboot", None, "not an IP address"),
        ("tcp", "10.0.0.1", None, "needs a port"),
        ("tcp", "10.0.0.1", 70000, "needs a port"),
        ("ping", "10.0.0.1", 80, "has no port"),
        ("arp", "10.0.0.1", None, "unknown probe"),
    ],
)
def test_a_probe_refuses_what_the_guest_could_not_answer(
    kind: str, address: str, port: int | None, error: str
) -> None:
    with pytest.raises(ProbeError, match=error):
        Probe(kind, address, port)  # type: ignore[arg-type]


class StandInGuest:
    """The guest's side of a VM's probe socket: echoes noise, then answers (or not)."""

    def __init__(self, path: Path, reached: set[str], silent: bool = False) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.reached, self.silent = reached, silent
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                line = conn.recv(100).decode()
                if self.silent:
                    conn.recv(100)  # until the client gives up
                    continue
                verb, target = line.split(" ", 1)
                target = target.strip()
                verdict = "ok" if target in self.reached else "fail"
                # An echo and another probe's answer first, split across writes.
                conn.sendall(f"{line.strip()}\r\nok 192.0.2.9\r\n{verdict} ".encode())
                conn.sendall(f"{target}\r\n".encode())


@pytest.fixture
def guest(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "probe.sock"
    stand_in = StandInGuest(path, {"10.50.0.12", "10.50.0.12 80"})
    yield path
    stand_in.server.close()


def test_the_socket_client_reads_this_probes_answer(guest: Path) -> None:
    assert ask_socket(guest, Probe("ping", "10.50.0.12")) is True
    assert ask_socket(guest, Probe("tcp", "10.50.0.12", 80)) is True
    assert ask_socket(guest, Probe("ping", "10.50.0.13")) is False
    assert ask_socket(guest, Probe("tcp", "10.50.0.12", 22)) is False


def test_the_socket_client_says_when_nothing_answers(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="no probe channel"):
        ask_socket(tmp_path / "none.sock", Probe("ping", "10.50.0.12"))
    path = tmp_path / "silent.sock"
    silent = StandInGuest(path, set(), silent=True)
    try:
        with pytest.raises(ProbeError, match="no answer to 'ping 10.50.0.12'.*instance is not up"):
            ask_socket(path, Probe("ping", "10.50.0.12"), timeout=0.3)
    finally:
        silent.server.close()


def test_the_instance_answers_on_its_probe_tty(tmp_path: Path) -> None:
    """instance-init.sh's own loop (busybox sh) on a pty, as on the VM's ttyS1."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (Debian package busybox-static)")
    script = (Path(rootfs.__file__).parent / "files" / "instance-init.sh").read_text()
    functions = script[script.index("reach_ping()") : script.index("early_setup\n")]
    (tmp_path / "fn.sh").write_text(functions)
    listening = socket.create_server(("127.0.0.1", 0))
    closed = free_port()
    master, slave = pty.openpty()
    tty_mode.setraw(slave)  # as the loop's own stty does (it may start after our first write)
    loop = subprocess.Popen(
        [busybox, "sh", "-c", f". {tmp_path / 'fn.sh'}; probe_loop {os.ttyname(slave)}"]
    )
    try:
        with os.fdopen(master, "r+b", buffering=0) as tty:

            def ask(line: str) -> str:
                tty.write(line.encode() + b"\n")
                out = b""
                while not out.endswith(b"\n"):
                    out += tty.read(100)
                return out.decode().strip()

            port = listening.getsockname()[1]
            assert ask(f"tcp 127.0.0.1 {port}") == f"ok 127.0.0.1 {port}"
            assert ask(f"tcp 127.0.0.1 {closed}") == f"fail 127.0.0.1 {closed}"
            assert ask("reboot now") == "error unknown command: reboot"
            probe = Probe("tcp", "127.0.0.1", port)
            assert probe.answer(ask(probe.line().strip())) is True
    finally:
        loop.kill()
        loop.wait()
        os.close(slave)
        listening.close()


class ProbedMachine:
    def __init__(self) -> None:
        self.asked: list[Probe] = []

    def boot(self, state: str) -> str:
        return state

    def power_cut(self) -> None:
        pass

    def probe(self, check: Probe) -> bool:
        self.asked.append(check)
        if check.address == "10.50.0.99":
            raise ProbeError("host1 is powered off: nothing to probe from")
        return check.address == "10.50.0.12"


def test_the_followers_control_server_probes_through_the_machine(tmp_path: Path) -> None:
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
        "hosts_control": {"url": f"http://127.0.0.1:{free_port()}/power"},
    }  # fmt: skip
    follower = hosts.HostFollower(lab, host, "pw")
    machine = ProbedMachine()
    follower.machine = machine
    control = hosts.serve_control(lab, {"host1": follower})
    url = lab["hosts_control"]["url"].replace("/power", "/probe")
    try:

        def post(body: object) -> httpx.Response:
            return httpx.post(url, content=json.dumps(body), trust_env=False)

        r = post({"name": "host1", "kind": "tcp", "address": "10.50.0.12", "port": 80})
        assert r.status_code == 200 and r.json() == {"reached": True}
        r = post({"name": "host1", "kind": "ping", "address": "10.50.0.13"})
        assert r.status_code == 200 and r.json() == {"reached": False}
        r = post({"name": "host1", "kind": "ping", "address": "10.50.0.99"})
        assert r.status_code == 409 and "powered off" in r.json()["error"]
        assert post({"name": "host9", "kind": "ping", "address": "10.0.0.1"}).status_code == 404
        assert post({"name": "host1", "kind": "ping", "address": "x"}).status_code == 400
        assert post(["not", "an", "object"]).status_code == 400
        assert machine.asked == [
            Probe("tcp", "10.50.0.12", 80), Probe("ping", "10.50.0.13"),
            Probe("ping", "10.50.0.99"),
        ]  # fmt: skip
    finally:
        control.shutdown()
        control.server_close()


@pytest.mark.parametrize(
    ("state", "detail", "shown"),
    [
        ("pxe", "firmware PXE: NIC x first: qemu 7 powered on",
         "host: pxe firmware PXE: NIC x first: qemu 7 powered on"),
        ("pxe", "lease 10.96.0.11/24 from 10.96.0.2",
         "host: pxe lease 10.96.0.11/24 from 10.96.0.2"),
        ("pxe", "console: firmware: iPXE asks DHCP", "firmware: iPXE asks DHCP"),
        ("pxe", "console: kernel: Linux started", "ramdisk: Linux started"),
        ("disk", "console: kernel: Linux started", "instance: Linux started"),
        ("pxe", "console: metalnic-ramdisk: lease 10.91.0.11/24 on eth0 from 10.91.0.2 "
         "(uptime 9.31)", "ramdisk: lease 10.91.0.11/24 on eth0 from 10.91.0.2"),
        ("pxe", "console: metalnic-ramdisk: heartbeat accepted for node u (callback c) "
         "[2026-12-03 11:40:01,123]", "ramdisk: heartbeat accepted for node u (callback c)"),
        ("pxe", 'console: metalnic-ramdisk: 10.91.0.1 "POST /v1/commands HTTP/1.1" 200 - '
         "[2026-12-03 11:40:01,123]", None),
        ("pxe", "console: metalnic-ramdisk: init (uptime 3.10)", None),
        ("disk", "console: metalnic-instance: lease 10.50.0.5/24 on eth0 (uptime 8.00)",
         "instance: lease 10.50.0.5/24 on eth0"),
        ("disk", "console: metalnic-instance: probe channel on ttyS1 (uptime 8.01)", None),
        ("pxe", "console: metalnic-ramdisk: sshd: [164] Dec 04 18:48:05 lastlog_openseek: "
         "/var/log/lastlog is not a file or directory!", None),
        ("pxe", "console: metalnic-ramdisk: sshd: [153] Dec 04 18:46:44 Not backgrounding", None),
        ("pxe", "console: metalnic-ramdisk: sshd: [166] Dec 04 18:46:47 Pubkey auth succeeded "
         "for 'root' with ssh-ed25519 key SHA256:x from 10.91.0.1:56530",
         "ramdisk: sshd: [166] Dec 04 18:46:47 Pubkey auth succeeded for 'root' with "
         "ssh-ed25519 key SHA256:x from 10.91.0.1:56530"),
        ("disk", "console: power off", "console: power off"),
    ],
)  # fmt: skip
def test_host_events_become_stage_lines(state: str, detail: str, shown: str | None) -> None:
    assert stage(state, detail) == shown
