"""A small ramdisk agent speaking a subset of Ironic Python Agent's protocol.

It looks its node up by MAC (``GET /v1/lookup``), keeps the one-time agent
token it receives, heartbeats ``POST /v1/heartbeat/{node}`` with its callback
URL, and serves the commands the conductor sends to
``POST /v1/commands/?wait=true`` — only those that carry that token in the
``X-Agent-Token`` header (401 otherwise, and before a lookup gave it one): a
ramdisk that heartbeats another host's address as its callback URL cannot make
the conductor drive that host, whose agent holds a different token.

* ``standby.prepare_image`` — download ``image_info.urls[0]``, check its
  sha256 against ``os_hash_value`` while streaming, write it to the disk, and
  report the checksum of what was written; a ``configdrive`` in the params
  (the OpenStack metadata keys as an object, or an encoded image as a string)
  is written to the config drive;
* ``clean.execute_clean_step`` with ``erase_devices_metadata`` — zero the
  first MiB of the disk and empty the config drive;
* ``iscsi.start_iscsi_target`` / ``iscsi.stop_iscsi_target`` — export the disk
  and the config drive to the conductor over iSCSI with CHAP, and withdraw the
  export (``metalnic.ramdisk.iscsi``; the iscsi deploy interface writes through it).
* ``system.describe`` — the disk and config drive paths and, when the ramdisk
  runs an SSH server for the ansible deploy (``--ssh-port``), its port and
  public host key (``--ssh-host-key``): the conductor's playbooks write to these
  paths, and its SSH client trusts only that host key.
* ``rescue.finalize_rescue`` with ``rescue_password`` (a crypt(3) hash) and
  ``hashed: true`` — set that hash for the user ``rescue`` in the shadow file
  (IPA's rescue user), answer, stop heartbeating and return from ``run``: the
  ramdisk's /init then renews its lease (the conductor moves the NIC to the
  tenant network) and starts the SSH server.  A plaintext password is refused
  (the ramdisk has no crypt module; metalnic's conductor always sends a hash).
  The hash is never logged.

The "disk" and the "config drive" are paths (block devices on real hardware —
IPA makes a ``config-2`` partition — files in the lab; the config drive holds
JSON: ``{"meta_data": …, "network_data": …, "user_data": …}``; on a block
device the JSON is followed by NUL bytes, so a reader stops at the first NUL).

HTTP goes through the standard library (``urllib``), not httpx: the agent runs
in the ramdisk built from Debian's Python packages (``metalnic.lab.images``),
and the standard library alone keeps that ramdisk small and its dependency
closure short — every megabyte costs boot time on an emulated machine.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import logging
import os
import re
import signal
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from metalnic import redact
from metalnic.contract import configdrive
from metalnic.jsontypes import JSONObject
from metalnic.ramdisk import iscsi

log = logging.getLogger("metalnic.ramdisk")
CHUNK = 1 << 20
API_HEADERS = {"X-OpenStack-Ironic-API-Version": "1.53", "Accept": "application/json"}
HTTP_ERRORS = (OSError, http.client.HTTPException)  # urllib's URLError is an OSError


class CommandFailed(Exception):
    pass


# A config drive file the agent creates for an iSCSI export (nothing else exports an
# empty path): room for the JSON metadata, as IPA's config-2 partitions have.
DRIVE_FILE_SIZE = 1 << 20


@dataclass(frozen=True)
class Storage:
    """The host's disk and config drive, and their iSCSI export (on ``portal_host``)."""

    disk: Path
    config_drive: Path
    portal_host: str = "127.0.0.1"
    targets: iscsi.Targets = field(default_factory=iscsi.Targets)
    # Where rescue.finalize_rescue sets the password (None: it cannot; no default, so
    # that an agent run on a workstation never touches that machine's /etc/shadow).
    shadow: Path | None = None
    # The ramdisk's SSH server for the ansible deploy: its port and public host key file.
    ssh_port: int | None = None
    ssh_host_key: Path | None = None


def _object(params: JSONObject, key: str) -> JSONObject:
    """``params[key]``: absent or null is ``{}``; anything but an object fails the command."""
    value = params.get(key) or {}
    if not isinstance(value, dict):
        raise CommandFailed(f"{key} must be an object")
    return value


def prepare_image(storage: Storage, params: JSONObject) -> JSONObject:
    """Stream the image onto the disk, then hash what the disk now holds."""
    disk = storage.disk
    info = _object(params, "image_info")
    urls = info.get("urls") or []
    expected = str(info.get("os_hash_value", "")).lower()
    if not urls or not isinstance(urls, list) or not isinstance(urls[0], str) or not expected:
        raise CommandFailed("image_info needs urls and os_hash_value")
    downloaded = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(urls[0], timeout=60) as r:
            if r.status != 200:
                raise CommandFailed(f"image download failed: HTTP {r.status}")
            with disk.open("r+b" if disk.exists() else "wb") as out:
                while chunk := r.read(CHUNK):
                    downloaded.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                _sync(out)
    except urllib.error.HTTPError as exc:
        raise CommandFailed(f"image download failed: HTTP {exc.code}") from exc
    except HTTP_ERRORS as exc:
        raise CommandFailed(f"image download failed: {exc}") from exc
    if downloaded.hexdigest() != expected:
        raise CommandFailed(
            f"image checksum mismatch: expected {expected}, downloaded {downloaded.hexdigest()}"
        )
    written = hashlib.sha256()
    with disk.open("rb") as fh:
        remaining = size
        while remaining and (block := fh.read(min(CHUNK, remaining))):
            written.update(block)
            remaining -= len(block)
    drive = params.get("configdrive")
    if drive is not None:
        try:
            _write_drive(storage.config_drive, configdrive.text(drive))
        except configdrive.InvalidDrive as exc:
            raise CommandFailed(str(exc)) from exc
    return {"os_hash_algo": "sha256", "os_hash_value": written.hexdigest()}


def erase_metadata(storage: Storage, params: JSONObject) -> JSONObject:
    step = _object(params, "step").get("step")
    if step != "erase_devices_metadata":
        raise CommandFailed(f"unknown clean step {step!r}")
    with storage.disk.open("r+b" if storage.disk.exists() else "wb") as fh:
        fh.write(b"\0" * CHUNK)
        _sync(fh)
    if storage.config_drive.exists():
        _write_drive(storage.config_drive, "")
    return {"clean_step": step}


RESCUE_USER = "rescue"
# A crypt(3) hash: $id$[params$]salt$digest, from crypt's alphabet only — nothing
# that could end a shadow field (":") or line.
_CRYPT_HASH = re.compile(r"\$[0-9a-z]+(\$[A-Za-z0-9./=,]+){2,3}")


def finalize_rescue(storage: Storage, params: JSONObject) -> JSONObject:
    """Set the rescue user's password hash in the shadow file (replacing its line)."""
    hashed = params.get("rescue_password")
    if params.get("hashed") is not True:
        raise CommandFailed("only a hashed rescue_password is accepted (hashed: true)")
    if not isinstance(hashed, str) or not _CRYPT_HASH.fullmatch(hashed):
        raise CommandFailed("rescue_password is not a crypt(3) hash")
    shadow = storage.shadow
    if shadow is None:
        raise CommandFailed("this agent was started without --shadow: no rescue password")
    lines = shadow.read_text().splitlines() if shadow.exists() else []
    days = int(time.time() // 86400)
    entry = f"{RESCUE_USER}:{hashed}:{days}:0:99999:7:::"
    kept = [line for line in lines if not line.startswith(f"{RESCUE_USER}:")]
    staged = shadow.with_name(shadow.name + ".new")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{line}\n" for line in [*kept, entry]))
        _sync(fh)
    os.replace(staged, shadow)
    return {"user": RESCUE_USER}


def _write_drive(path: Path, text: str) -> None:
    """A file gets exactly ``text``; a block device (which cannot be truncated)
    gets ``text`` and NUL bytes after it."""
    if path.exists() and stat.S_ISBLK(path.stat().st_mode):
        with path.open("r+b") as fh:
            fh.write(configdrive.block(text))
            _sync(fh)
    else:
        with path.open("w") as fh:
            fh.write(text)
            _sync(fh)


def _sync(fh: BinaryIO | TextIO) -> None:
    """On the device before the command answers: the conductor may reset the host
    right after (a block device's writes otherwise sit in the page cache)."""
    fh.flush()
    os.fsync(fh.fileno())


def describe(storage: Storage, params: JSONObject) -> JSONObject:
    ssh: JSONObject | None = None
    if storage.ssh_port is not None and storage.ssh_host_key is not None:
        try:
            key = storage.ssh_host_key.read_text().split()
        except OSError as exc:
            raise CommandFailed(f"the SSH host key cannot be read: {exc.strerror}") from exc
        if len(key) < 2:
            raise CommandFailed("the SSH host key file holds no public key")
        ssh = {"port": storage.ssh_port, "host_key": f"{key[0]} {key[1]}"}
    return {"disk": str(storage.disk), "config_drive": str(storage.config_drive), "ssh": ssh}


def start_iscsi_target(storage: Storage, params: JSONObject) -> JSONObject:
    drive = storage.config_drive
    if not drive.exists():
        with drive.open("wb") as fh:
            fh.truncate(DRIVE_FILE_SIZE)
    return storage.targets.start(storage.portal_host, (storage.disk, drive), params)


def stop_iscsi_target(storage: Storage, params: JSONObject) -> JSONObject:
    return storage.targets.stop()


COMMANDS = {
    "standby.prepare_image": prepare_image,
    "clean.execute_clean_step": erase_metadata,
    "iscsi.start_iscsi_target": start_iscsi_target,
    "iscsi.stop_iscsi_target": stop_iscsi_target,
    "rescue.finalize_rescue": finalize_rescue,
    "system.describe": describe,
}
DONE = {
    "standby.prepare_image": "image written, its sha256 verified (and the config drive)",
    "clean.execute_clean_step": "disk metadata erased (cleaning)",
    "iscsi.start_iscsi_target": "disk exported over iSCSI",
    "iscsi.stop_iscsi_target": "iSCSI export withdrawn, disk flushed",
    "rescue.finalize_rescue": "rescue password set for user rescue; the agent stops",
    "system.describe": "storage and SSH server described",
}
# After these the agent's work is over: it stops heartbeating and ``run`` returns.
FINAL = frozenset({"rescue.finalize_rescue"})


TOKEN_HEADER = "X-Agent-Token"


@dataclass
class Token:
    """The one-time agent token of this boot, once the lookup handed it out."""

    value: str | None = None

    def admits(self, given: str | None) -> bool:
        if not self.value or not given:
            return False
        return hmac.compare_digest(self.value.encode(), given.encode())


def make_handler(
    storage: Storage, finished: threading.Event | None = None, token: Token | None = None
) -> type[BaseHTTPRequestHandler]:
    held = token or Token()  # without one (no lookup yet): every command is refused

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("%s " + fmt, self.client_address[0], *args)

        def _reply(self, status: int, body: JSONObject) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") == "/v1/status":
                self._reply(200, {"version": "metalnic-ramdisk"})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if not self.path.startswith("/v1/commands"):
                self._reply(404, {"error": "not found"})
                return
            if not held.admits(self.headers.get(TOKEN_HEADER)):
                self._reply(401, {"error": "a command needs this ramdisk's agent token"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                command = COMMANDS[request["name"]]
            except (ValueError, KeyError, TypeError):
                self._reply(400, {"error": "unknown or malformed command"})
                return
            try:
                result = command(storage, request.get("params") or {})
                log.info("%s", DONE[request["name"]])  # the lab's console shows the stage
                self._reply(
                    200,
                    {
                        "command_name": request["name"],
                        "command_status": "SUCCEEDED",
                        "command_error": None,
                        "command_result": result,
                    },
                )
                if request["name"] in FINAL and finished is not None:
                    finished.set()  # answered first: the conductor then moves the NIC
            except (CommandFailed, iscsi.TargetError, OSError) as exc:
                log.warning("%s failed: %s", request["name"], exc)
                self._reply(
                    200,
                    {
                        "command_name": request["name"],
                        "command_status": "FAILED",
                        "command_error": str(exc),
                        "command_result": None,
                    },
                )

    return Handler


def run(
    api_url: str,
    macs: list[str],
    storage: Storage,
    listen: str,
    advertise: str | None,
    interval: float,
    stop: threading.Event | None = None,
) -> None:
    """Look the node up, heartbeat every ``interval`` and serve the conductor's
    commands, until ``stop`` is set (in a ramdisk: by a final command such as
    ``rescue.finalize_rescue``; otherwise never, the host is powered off)."""
    stop = stop or threading.Event()
    host, _sep, port = listen.rpartition(":")
    held = Token()
    server = ThreadingHTTPServer((host, int(port)), make_handler(storage, stop, held))
    callback = advertise or f"http://{host}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = api_url.rstrip("/")
    node, token, beating, refused = None, None, False, 0
    while not stop.is_set():
        try:
            if node is None:
                query = urllib.parse.urlencode({"addresses": ",".join(macs)})
                status, body = _call("GET", f"{api}/v1/lookup?{query}")
                if status == 200:
                    found = json.loads(body)
                    node = found["node"]["uuid"]
                    token = found["config"].get("agent_token", token)
                    redact.remember(token)
                    held.value = token
                    log.info("looked up node %s", node)
                elif status != refused:  # once per answer, not every interval
                    refused = status
                    log.info("lookup of %s: HTTP %s; trying again", ",".join(macs), status)
            if node is not None:
                heartbeat = {
                    "callback_url": callback,
                    "agent_token": token,
                    "agent_version": "metalnic-ramdisk",
                }
                status, body = _call("POST", f"{api}/v1/heartbeat/{node}", heartbeat)
                if status == 404:
                    node, beating = None, False
                elif status == 401 and beating:
                    # Accepted before: the conductor withdrew the one-time token because
                    # it is done with this ramdisk (its step finished); a power-off is next.
                    refused, beating = status, False
                    log.info("done: the conductor withdrew this ramdisk's token")
                elif status >= 400:
                    if beating or status != refused:  # once per refusal, not every interval
                        refused = status
                        log.warning(
                            "heartbeat refused: %s %s", status, body[:200].decode(errors="replace")
                        )
                    beating = False
                elif not beating:
                    beating = True
                    log.info("heartbeat accepted for node %s (callback %s)", node, callback)
        except (*HTTP_ERRORS, ValueError, KeyError, TypeError) as exc:
            log.warning("server unreachable or its answer unreadable: %s", exc)
        stop.wait(interval)
    server.shutdown()
    log.info("agent done: no more heartbeats")


def _call(method: str, url: str, body: JSONObject | None = None) -> tuple[int, bytes]:
    """One request to the bare-metal API: its status and body (also for 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=API_HEADERS)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="metalnic-ramdisk", description=__doc__)
    p.add_argument("--api-url", required=True, help="metalnic's bare-metal API")
    p.add_argument("--mac", action="append", required=True, help="this host's MAC(s)")
    p.add_argument("--disk", type=Path, required=True, help="the disk to write (path)")
    p.add_argument(
        "--config-drive", type=Path, help="where the config drive goes (default: DISK.config-2)"
    )
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT for commands")
    p.add_argument("--advertise", help="callback URL to report (default: the listen address)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between heartbeats")
    p.add_argument(
        "--iscsi-target",
        choices=("auto", "lio", "tgt"),
        default="auto",
        help="how the disk is exported for the iscsi deploy (auto: LIO when loaded, else tgtd)",
    )
    p.add_argument(
        "--shadow",
        type=Path,
        help="the shadow file rescue.finalize_rescue writes the rescue user's hash to "
        "(the ramdisk's /etc/shadow; without it rescue is refused)",
    )
    p.add_argument(
        "--ssh-port", type=int, help="the port of this ramdisk's SSH server (the ansible deploy)"
    )
    p.add_argument("--ssh-host-key", type=Path, help="that server's public host key (a file)")
    a = p.parse_args(argv)
    redact.install_logging()  # no agent token, image URL credentials or config drive in logs
    # Lines start with the stage's name, as /init's do: the lab reads a VM's serial
    # console for lines starting "metalnic-" (metalnic.lab.vm.milestones).
    logging.basicConfig(level=logging.INFO, format="metalnic-ramdisk: %(message)s [%(asctime)s]")
    drive = a.config_drive or a.disk.with_name(a.disk.name + ".config-2")
    host = a.listen.rpartition(":")[0] or "0.0.0.0"
    storage = Storage(
        a.disk, drive, host, iscsi.Targets(a.iscsi_target), a.shadow, a.ssh_port, a.ssh_host_key
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    run(a.api_url, a.mac, storage, a.listen, a.advertise, a.interval, stop)


if __name__ == "__main__":
    main()
