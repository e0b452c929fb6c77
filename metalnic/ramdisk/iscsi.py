"""The ramdisk's iSCSI target, for the ``iscsi`` deploy interface.

``iscsi.start_iscsi_target`` exports the host's disk (and its config drive) to the
conductor, which writes the image through its own initiator and reads it back;
``iscsi.stop_iscsi_target`` flushes and withdraws the export.  Every login needs
the CHAP user and secret the conductor sends with the start command (Ironic's
iscsi deploy exported its disks to anyone on the provisioning network; here only
the conductor that asked can write them).

Two target implementations, as Ironic Python Agent had:

* ``lio``: the kernel's LIO target, driven through configfs (the lab's ramdisk
  loads ``target_core_mod``, ``target_core_iblock``, ``target_core_file`` and
  ``iscsi_target_mod``);
* ``tgt``: the userspace ``tgtd`` daemon and its ``tgtadm``, for an agent that
  runs where the kernel has no LIO (the lab's namespace hosts, the tests).

Written here rather than with rtslib-fb or targetcli: the ramdisk carries the
standard library only, and LIO's configfs protocol for one demo-mode target
with CHAP is a dozen directory and attribute writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from metalnic import redact
from metalnic.jsontypes import JSONObject

CONFIGFS = Path("/sys/kernel/config")
IQN = re.compile(r"iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:[A-Za-z0-9.:_-]+)?")
CHAP_SECRET = re.compile(r"[A-Za-z0-9]{12,16}")  # LIO and tgt accept 12-16 characters
CHAP_USER = re.compile(r"[A-Za-z0-9._-]{1,64}")


class TargetError(Exception):
    pass


@dataclass(frozen=True)
class Export:
    iqn: str
    portal: str  # host:port the target listens on
    user: str
    secret: str
    devices: tuple[Path, ...]  # the disk, then the config drive


class Lio:
    """LIO through configfs: a block device goes through ``iblock``, a file (the
    config drive when the host has no second disk) through ``fileio``."""

    name = "lio"
    first_lun = 0

    def __init__(self) -> None:
        self.export: Export | None = None

    @staticmethod
    def available() -> bool:
        return Path("/sys/module/iscsi_target_mod").exists()

    def start(self, export: Export) -> None:
        if not (CONFIGFS / "target").exists():
            subprocess.run(["mount", "-t", "configfs", "configfs", str(CONFIGFS)], check=False)
        if not (CONFIGFS / "target").is_dir():
            raise TargetError("configfs has no target/ (is target_core_mod loaded?)")
        self.export = export
        tpg = self._tpg(export)
        tpg.mkdir(parents=True)
        for index, device in enumerate(export.devices):
            core = self._core(index, device)
            core.mkdir(parents=True)
            if device.is_block_device():
                _write(core / "control", f"udev_path={device}")
            else:
                size = device.stat().st_size
                _write(core / "control", f"fd_dev_name={device},fd_dev_size={size}")
            _write(core / "enable", "1")
            lun = tpg / "lun" / f"lun_{self.first_lun + index}"
            lun.mkdir(parents=True)
            (lun / "device").symlink_to(core)
        (tpg / "np" / export.portal).mkdir(parents=True)
        for attribute, value in (
            ("authentication", "1"),
            ("generate_node_acls", "1"),  # demo mode: any initiator name, CHAP still required
            ("cache_dynamic_acls", "1"),
            ("demo_mode_write_protect", "0"),
        ):
            _write(tpg / "attrib" / attribute, value)
        _write(tpg / "auth" / "userid", export.user)
        _write(tpg / "auth" / "password", export.secret)
        _write(tpg / "enable", "1")

    def stop(self) -> None:
        export, self.export = self.export, None
        if export is None:
            return
        tpg = self._tpg(export)
        if (tpg / "enable").exists():
            _write(tpg / "enable", "0")
        _rmdir(tpg / "np" / export.portal)
        for index in range(len(export.devices)):
            lun = tpg / "lun" / f"lun_{self.first_lun + index}"
            if (lun / "device").is_symlink():
                (lun / "device").unlink()
            _rmdir(lun)
        _rmdir(tpg)
        _rmdir(tpg.parent)
        for index, device in enumerate(export.devices):
            _rmdir(self._core(index, device))
            _rmdir(self._core(index, device).parent)

    @staticmethod
    def _tpg(export: Export) -> Path:
        return CONFIGFS / "target" / "iscsi" / export.iqn / "tpgt_1"

    @staticmethod
    def _core(index: int, device: Path) -> Path:
        kind = "iblock" if device.is_block_device() else "fileio"
        return CONFIGFS / "target" / "core" / f"{kind}_{index}" / f"metalnic{index}"


class Tgt:
    """``tgtd`` started for this export and configured by ``tgtadm``.  Its control
    socket is numbered after the portal's port (tgtd takes 0-32767), so that agents on
    one machine keep apart.  tgtd ignores SIGTERM while it has targets: it is
    stopped by deleting the target and then the "system"."""

    name = "tgt"
    first_lun = 1  # tgt's LUN 0 is the target's controller

    def __init__(self) -> None:
        self.daemon: subprocess.Popen[bytes] | None = None
        self.control = ""

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("tgtd") and shutil.which("tgtadm"))

    def start(self, export: Export) -> None:
        self.control = str(int(export.portal.rpartition(":")[2]) % 32768)
        self.daemon = subprocess.Popen(
            ["tgtd", "-f", "-C", self.control, "--iscsi", f"portal={export.portal}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self._adm("--op", "show", "--mode", "sys", check=False) != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TargetError(f"tgtd did not start on {export.portal}")
            time.sleep(0.05)
        self._adm("--op", "new", "--mode", "target", "--tid", "1", "-T", export.iqn)
        for index, device in enumerate(export.devices):
            lun = str(self.first_lun + index)
            self._adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", lun,
                      "-b", str(device))  # fmt: skip
        self._adm("--op", "new", "--mode", "account", "--user", export.user,
                  "--password", export.secret)  # fmt: skip
        self._adm("--op", "bind", "--mode", "account", "--tid", "1", "--user", export.user)
        self._adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    def stop(self) -> None:
        daemon, self.daemon = self.daemon, None
        if daemon is None:
            return
        self._adm("--op", "delete", "--mode", "target", "--tid", "1", "--force", check=False)
        done = subprocess.run(["tgtadm", "-C", self.control, "--op", "delete", "--mode", "system"],
                              capture_output=True, check=False)  # fmt: skip
        try:
            daemon.wait(10 if done.returncode == 0 else 0.1)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        for leftover in (f"socket.{self.control}", f"socket.{self.control}.lock"):
            Path("/var/run/tgtd", leftover).unlink(missing_ok=True)

    def _adm(self, *args: str, check: bool = True) -> int:
        done = subprocess.run(
            ["tgtadm", "-C", self.control, "--lld", "iscsi", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            # tgtadm's own message names the operation, never the secret (it is an argument)
            raise TargetError(f"tgtadm {args[1]} {args[3]}: {done.stderr.strip()}")
        return done.returncode


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise TargetError(f"configfs {path}: {exc.strerror}") from exc


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise TargetError(f"configfs {path}: {exc.strerror}") from exc


class Targets:
    """The one export a ramdisk has at a time (its disk is written by one conductor)."""

    def __init__(self, choice: str = "auto") -> None:
        self.choice = choice
        self.current: Lio | Tgt | None = None
        self.lock = threading.Lock()  # the agent serves commands on threads

    def backend(self) -> Lio | Tgt:
        kinds: dict[str, type[Lio] | type[Tgt]] = {"lio": Lio, "tgt": Tgt}
        if self.choice in kinds:
            return kinds[self.choice]()
        for kind in (Lio, Tgt):
            if kind.available():
                return kind()
        raise TargetError("this ramdisk has no iSCSI target (no LIO modules, no tgtd)")

    def start(self, host: str, devices: tuple[Path, ...], params: JSONObject) -> JSONObject:
        iqn, user, secret = (str(params.get(k) or "") for k in ("iqn", "user", "secret"))
        port = params.get("portal_port", 3260)
        if not IQN.fullmatch(iqn):
            raise TargetError(f"iqn {iqn!r} is not an iSCSI qualified name")
        if not CHAP_USER.fullmatch(user) or not CHAP_SECRET.fullmatch(secret):
            raise TargetError("a CHAP user and a 12-16 character alphanumeric secret are required")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise TargetError("portal_port must be a TCP port number")
        redact.remember(secret)
        missing = [str(d) for d in devices if not d.exists()]
        if missing:
            raise TargetError(f"nothing to export at {', '.join(missing)}")
        with self.lock:
            self._stop()  # a retried start replaces the previous export
            target = self.backend()
            try:
                target.start(Export(iqn, f"{host}:{port}", user, secret, devices))
            except BaseException:
                # nothing half-exported stays: a tgtd without its target, a half-made tpg
                with contextlib.suppress(TargetError, OSError):
                    target.stop()
                raise
            self.current = target
        luns: JSONObject = {"disk": target.first_lun, "config_drive": target.first_lun + 1}
        return {"iscsi_target_iqn": iqn, "portal_port": port, "luns": luns, "backend": target.name}

    def stop(self) -> JSONObject:
        """Withdraw the export; what the conductor wrote is on the devices first."""
        with self.lock:
            self._stop()
        return {"exported": False}

    def _stop(self) -> None:
        target, self.current = self.current, None
        if target is not None:
            target.stop()
        os.sync()
