"""Reachability probes asked *from* a lab host: does its running OS reach an address?

The isolation matrix must be measured on the machines themselves.  A namespace
host's OS is its namespace (``ping`` and a TCP connect run there, as they always
did); a VM host's OS is inside QEMU, so every VM gets a second serial port as a
probe channel — ``-chardev socket,id=probe,path=<host dir>/probe.sock,server=on,
wait=off -device isa-serial,chardev=probe``, the guest's ``/dev/ttyS1`` — on
which the instance image's ``/init`` answers one command per line:

    ping 10.50.0.12        →  ok 10.50.0.12      |  fail 10.50.0.12
    tcp 10.50.0.12 80      →  ok 10.50.0.12 80   |  fail 10.50.0.12 80

(anything else → ``error …``).  This module is the command's rendering and the
answer's parsing (pure, unit-tested), the client for the socket, and the
namespace probes.  The machines (``lab.hosts.NamespaceMachine``,
``lab.vm.QemuMachine``) call these; the demo reaches them through the host
followers' control server (``POST /probe``), which owns the machines.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from metalnic.lab import netns

ANSWER_TIMEOUT = 15.0  # the guest tries twice with 1-2 s waits; TCG is slow under load


class ProbeError(Exception):
    """The host cannot be asked (no OS running that answers, a bad probe)."""


@dataclass(frozen=True)
class Probe:
    kind: Literal["ping", "tcp"]
    address: str
    port: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("ping", "tcp"):
            raise ProbeError(f"unknown probe {self.kind!r}")
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ProbeError(f"not an IP address: {self.address!r}") from None
        if self.kind == "tcp" and not (self.port and 0 < self.port < 65536):
            raise ProbeError(f"a TCP probe needs a port in 1..65535, not {self.port!r}")
        if self.kind == "ping" and self.port is not None:
            raise ProbeError("a ping has no port")

    @property
    def target(self) -> str:
        """What the answer repeats: ``IP`` or ``IP PORT``."""
        return self.address if self.port is None else f"{self.address} {self.port}"

    def line(self) -> str:
        """The command as the guest reads it (one line)."""
        return f"{self.kind} {self.target}\n"

    def answer(self, line: str) -> bool | None:
        """``True``/``False`` for this probe's ``ok``/``fail`` line; ``None`` for any other
        line (an echo, another probe's late answer, noise); an ``error`` line raises."""
        words = line.strip().split()
        if not words:
            return None
        verdict, target = words[0], " ".join(words[1:])
        if verdict == "error":
            raise ProbeError(f"the guest refused {self.line().strip()!r}: {line.strip()}")
        if target != self.target:
            return None
        return {"ok": True, "fail": False}.get(verdict)

    def describe(self) -> str:
        return f"ping {self.address}" if self.kind == "ping" else f"tcp {self.address}:{self.port}"


def ask_socket(path: Path, probe: Probe, timeout: float = ANSWER_TIMEOUT) -> bool:
    """Ask the guest behind a VM's probe socket; ``ProbeError`` when nothing answers."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ProbeError(f"no probe channel at {path} (is the VM running?): {exc}") from exc
    with sock:
        # Nothing is buffered for a new connection (QEMU drops what the guest writes
        # with no client), so the first matching line is this probe's answer.
        sock.sendall(probe.line().encode())
        deadline = time.monotonic() + timeout
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            if not data:
                raise ProbeError(f"{path}: the probe channel closed")
            *lines, pending = (pending + data).replace(b"\r", b"").split(b"\n")
            for line in lines:
                verdict = probe.answer(line.decode(errors="replace"))
                if verdict is not None:
                    return verdict
    raise ProbeError(
        f"no answer to {probe.describe()!r} on the VM's ttyS1 within {timeout:.0f} s "
        "(its instance is not up, or the image predates the probe channel)"
    )


def in_namespace(namespace: str, probe: Probe) -> bool:
    """The probe from a namespace host (its OS is the namespace)."""
    if probe.kind == "ping":
        return ping(namespace, probe.address)
    script = f"exec 3<>/dev/tcp/{probe.address}/{probe.port}"
    cmd = netns.in_ns(namespace, "timeout", "3", "bash", "-c", script)
    return subprocess.run(cmd, capture_output=True).returncode == 0


def ping(namespace: str, address: str, count: int = 2) -> bool:
    """True when ``address`` answers from ``namespace`` (ARP included: a retry or two)."""
    cmd = netns.in_ns(namespace, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1")
    return subprocess.run([*cmd, address], capture_output=True).returncode == 0
