"""A small synchronous client for the QEMU Machine Protocol (QMP) on a unix socket.

The lab's VM hosts are driven by their follower (``metalnic.lab.vm``) with a
handful of QMP commands: ``qmp_capabilities``, ``cont``, ``stop``,
``system_reset``, ``qom-set`` (boot indices) and ``quit``.  QMP is one JSON
object per line: the server greets (``{"QMP": …}``), the client leaves
negotiation mode with ``qmp_capabilities``, then each command gets one
``{"return": …}`` or ``{"error": {"class", "desc"}}``; asynchronous
``{"event": …}`` lines may come in between and are kept, not answered.

Why not a library: the QEMU project's own ``qemu.qmp`` (PyPI) is GPL-2.0 —
metalnic is Apache-2.0 and would import it — and it is asyncio-based, with a
synchronous shim that its docstring keeps for QEMU's in-tree scripts; the
follower is a plain thread that holds its host's lock while it talks to QEMU.
Debian packages no QMP library for Python.  What is needed here fits in this
file, with a timeout on every read so that a wedged QEMU cannot hang a BMC's
answer.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from metalnic.jsontypes import JSONObject, JSONValue

SUN_PATH_MAX = 107  # sockaddr_un.sun_path minus its terminating NUL (Linux)


class QmpError(Exception):
    """QEMU answered with an error, closed the socket, or did not answer in time."""


class QmpClient:
    """One QMP session: ``connect`` (waits for QEMU to listen), ``execute``, ``close``."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        if len(str(path)) > SUN_PATH_MAX:
            raise QmpError(f"QMP socket path longer than {SUN_PATH_MAX} bytes: {path}")
        self.path, self.timeout = path, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.events: list[JSONObject] = []  # asynchronous events seen, oldest first
        self.greeting: JSONObject = {}

    def connect(self, wait: float = 10.0) -> QmpClient:
        """Connect (retrying while QEMU starts up for ``wait`` s) and negotiate."""
        deadline = time.monotonic() + wait
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise QmpError(f"cannot connect to QMP at {self.path}: {exc}") from exc
                time.sleep(0.05)
        self.sock = sock
        self.greeting = self._message()
        if "QMP" not in self.greeting:
            raise QmpError(f"not a QMP greeting: {self.greeting}")
        self.execute("qmp_capabilities")
        return self

    def execute(self, command: str, **arguments: JSONValue) -> JSONValue:
        """Run ``command``; its ``return`` value, or QmpError with QEMU's description."""
        if self.sock is None:
            raise QmpError("not connected")
        request: JSONObject = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise QmpError(f"{command}: {exc}") from exc
        while True:
            reply = self._message()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                error = reply["error"] if isinstance(reply["error"], dict) else {}
                raise QmpError(f"{command}: {error.get('class')}: {error.get('desc')}")
            if "return" in reply:
                return reply["return"]
            raise QmpError(f"{command}: unexpected reply {reply}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _message(self) -> JSONObject:
        assert self.sock is not None
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:  # socket.timeout included
                raise QmpError(f"QMP at {self.path}: {exc or 'timed out'}") from exc
            if not chunk:
                raise QmpError(f"QMP at {self.path}: connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QmpError(f"QMP at {self.path}: not JSON: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            raise QmpError(f"QMP at {self.path}: not an object: {line[:80]!r}")
        return message
