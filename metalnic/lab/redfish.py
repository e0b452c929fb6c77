"""A Redfish BMC for the lab and the tests: ``sushy-emulator --fake`` on 127.0.0.1.

Facts about sushy-tools 2.x this relies on (read from its source):

* The config file is Python (Flask ``from_pyfile``); ``--fake`` selects the fake
  systems driver, whose systems come from ``SUSHY_EMULATOR_FAKE_SYSTEMS`` and
  whose state lives in sqlite under ``SUSHY_EMULATOR_STATE_DIR`` (systems
  already in that state are not re-read from the config: use a fresh dir).
* A power change is applied at ``int(time.time()) + randint(1, 11)``, i.e.
  0–11 s later, and only observed on the next read; no setting shortens it.
  ``ForceRestart`` shows ``Off`` at once and ``On`` after that delay.
* ``SUSHY_EMULATOR_AUTH_FILE`` is an htpasswd file with **bcrypt only**
  (``$2a$/$2b$/$2y$``); every request re-checks bcrypt, so the cost factor is
  kept low here.  ``/``, ``/redfish`` and ``/redfish/v1`` need no auth.
* ``--ssl-certificate``/``--ssl-key`` serve TLS 1.2 only.
* With ``external_notifier`` set on a system, every change of it (a pending
  power change included, when it is applied on a read) is ``PUT`` as the
  system's JSON to ``EXTERNAL_NOTIFICATION_URL`` *before* the request that made
  it is answered (``requests.put``; an exception fails that request with 500).
  ``notify_url`` uses that: the lab's host simulator is dark before a caller
  sees ``Off``.
* The system always reports ``BootSourceOverrideEnabled: Continuous`` (the
  requested frequency is ignored) and advertises Pxe/Cd/Hdd(/UefiHttp) as
  allowed targets, yet a PATCH of any target string is stored and read back.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import bcrypt
import httpx

from metalnic.jsontypes import JSONObject, JSONValue
from metalnic.lab import pki
from metalnic.lab.netns import free_port

USERNAME = "bmc-admin"
PASSWORD = "bmc-Secret-7f3a"


class System(TypedDict):
    """One emulated system; the rest of its state has sushy-tools' defaults."""

    uuid: str
    name: str
    mac: NotRequired[str]
    power_state: NotRequired[str]
    boot_device: NotRequired[str]


DEFAULT_SYSTEMS: tuple[System, ...] = (
    {"uuid": "9c0d5c4e-0a57-4c36-9b5e-6f1f3a2d9a01", "name": "node-1"},
)
TWO_SYSTEMS: tuple[System, ...] = (
    {"uuid": "9c0d5c4e-0a57-4c36-9b5e-6f1f3a2d9a01", "name": "node-1"},
    {"uuid": "4f6e2b1a-7d3c-4e8f-a2b5-0c9d8e7f6a02", "name": "node-2"},
)


@dataclass
class RedfishEmulator:
    url: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    systems: tuple[System, ...]
    auth: tuple[str, str] | None
    ca_file: Path | None

    def system_path(self, index: int = 0) -> str:
        return f"/redfish/v1/Systems/{self.systems[index]['uuid']}"

    def driver_info(self, index: int | None = 0, **overrides: JSONValue) -> JSONObject:
        """driver_info for system ``index`` (None: leave redfish_system_id out)."""
        info: JSONObject = {"redfish_address": self.url}
        if index is not None:
            info["redfish_system_id"] = self.system_path(index)
        if self.auth:
            info["redfish_username"], info["redfish_password"] = self.auth
        if self.ca_file:
            info["redfish_verify_ca"] = str(self.ca_file)
        info.update(overrides)
        return info

    def client(self) -> httpx.Client:
        """A plain HTTP client on the emulator, to look behind the driver's back."""
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        )
        return httpx.Client(base_url=self.url, auth=self.auth, verify=verify, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _write_config(
    workdir: Path,
    systems: tuple[System, ...],
    auth_file: Path | None,
    notify_url: str | None,
) -> Path:
    fake_systems = [
        {
            "uuid": s["uuid"],
            "name": s["name"],
            "power_state": s.get("power_state", "Off"),
            "boot_device": s.get("boot_device", "Hdd"),
            "external_notifier": notify_url is not None,
            "nics": [
                {"mac": s.get("mac", f"52:54:00:00:00:{i + 1:02x}"), "ip": f"192.0.2.{i + 10}"}
            ],
        }
        for i, s in enumerate(systems)
    ]
    state_dir = workdir / "state"
    state_dir.mkdir()
    lines = [
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fake_systems!r}",
        f"SUSHY_EMULATOR_STATE_DIR = {str(state_dir)!r}",
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
    ]
    if auth_file:
        lines.append(f"SUSHY_EMULATOR_AUTH_FILE = {str(auth_file)!r}")
    if notify_url:
        lines.append(f"EXTERNAL_NOTIFICATION_URL = {notify_url!r}")
    path = workdir / "emulator.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_redfish_emulator(
    workdir: Path,
    systems: tuple[System, ...] = DEFAULT_SYSTEMS,
    auth: tuple[str, str] | None = (USERNAME, PASSWORD),
    tls: bool = False,
    detach: bool = False,
    notify_url: str | None = None,
    faults_dir: Path | None = None,
) -> RedfishEmulator:
    """Start the emulator in ``workdir`` (fresh, empty) and wait until it answers.

    ``notify_url``: every change of a system is ``PUT`` there before it is answered.
    ``faults_dir``: run it with ``lab.bmcfaults``' knobs read from there."""
    workdir.mkdir(parents=True, exist_ok=True)
    auth_file = None
    if auth:
        auth_file = workdir / "htpasswd"
        hashed = bcrypt.hashpw(auth[1].encode(), bcrypt.gensalt(rounds=4)).decode()
        auth_file.write_text(f"{auth[0]}:{hashed}\n")
    config = _write_config(workdir, systems, auth_file, notify_url)
    tls_args: list[str] = []
    ca_file = None
    if tls:
        ca = pki.make_ca("metalnic lab BMC CA")
        ca_file = workdir / "ca.pem"
        ca_file.write_text(pki.pem(ca[0]))
        cert, key_pem = pki.issue(ca, "127.0.0.1", ip="127.0.0.1")
        (workdir / "server.pem").write_text(pki.pem(cert))
        (workdir / "server.key").write_text(key_pem)
        (workdir / "server.key").chmod(0o600)
        tls_args = [
            "--ssl-certificate", str(workdir / "server.pem"),
            "--ssl-key", str(workdir / "server.key"),
        ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUSHY_")}
    log_path = workdir / "emulator.log"
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        emulator = [str(Path(sys.executable).parent / "sushy-emulator")]
        if faults_dir is not None:
            emulator = [
                sys.executable,
                "-m",
                "metalnic.lab.bmcfaults",
                "--faults-dir",
                str(faults_dir),
            ]
        cmd = [
            *emulator, "--fake", "--config", str(config),
            "--interface", "127.0.0.1", "--port", str(port), *tls_args,
        ]  # fmt: skip
        with log_path.open("ab") as log:
            # Its own session: a lab's BMC outlives the `metalnic lab up` that started it.
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=detach
            )
        scheme = "https" if tls else "http"
        emu = RedfishEmulator(
            f"{scheme}://127.0.0.1:{port}", proc, workdir, log_path, systems, auth, ca_file
        )
        if _wait_ready(emu):
            return emu
        emu.stop()
        last_error = emu.log()
        if "Address already in use" not in last_error:
            break
    raise RuntimeError(f"sushy-emulator did not start:\n{last_error}")


def _wait_ready(emu: RedfishEmulator, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    with emu.client() as c:
        while time.monotonic() < deadline:
            if emu.proc.poll() is not None:
                return False
            try:
                if c.get("/redfish/v1/", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    return False
