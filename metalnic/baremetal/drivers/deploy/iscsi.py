"""The ``iscsi`` deploy interface: the conductor writes the image itself.

As Ironic's iscsi deploy did: the ramdisk agent exports the host's disk (and here
also its config drive) as an iSCSI target (``iscsi.start_iscsi_target``); the
conductor downloads the image, checking its sha256, writes it through its own
initiator, reads it back from the target and compares the checksum, writes the
config drive, and tells the ramdisk to flush and withdraw the export
(``iscsi.stop_iscsi_target``).  Cleaning erases the disk's first MiB and the
config drive through the same path.

The initiator is ``qemu-img`` with libiscsi (Debian's ``qemu-utils`` and
``qemu-block-extra``): userspace, so the conductor needs no kernel initiator, no
``iscsiadm`` sessions to clean up, and no root.  Every export is guarded by CHAP
with a user and secret made for this one export; the secret reaches qemu-img in
a file readable by the conductor only, never on a command line.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import secrets
import shutil
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from metalnic import redact
from metalnic.baremetal.drivers.base import (
    DeployInterface,
    DriverConfigError,
    DriverError,
    NodeContext,
    Say,
    say_nothing,
)
from metalnic.baremetal.drivers.deploy import agent_client, images, reported
from metalnic.contract import configdrive
from metalnic.jsontypes import JSONObject

QEMU_IMG = "qemu-img"
PORTAL_PORT = 3260
QEMU_TIMEOUT = 1800.0  # seconds for one qemu-img run (a large image on a slow link)
MIB = 1 << 20


@dataclass(frozen=True)
class Lun:
    """One LUN of the ramdisk's export, as qemu-img's ``--image-opts`` name it."""

    portal: str
    iqn: str
    lun: int
    user: str
    secret_file: Path

    def opts(self) -> list[str]:
        spec = (
            f"driver=raw,file.driver=iscsi,file.transport=tcp,file.portal={self.portal},"
            f"file.target={self.iqn},file.lun={self.lun},file.user={self.user},"
            "file.password-secret=chap"
        )
        return ["--object", f"secret,id=chap,file={self.secret_file}", spec]


@functools.cache
def qemu_img_has_iscsi() -> bool:
    """Whether this machine's qemu-img has its iSCSI driver (asked once per process:
    validate runs on every deploy and every ``GET …/validate``)."""
    if shutil.which(QEMU_IMG) is None:
        return False
    done = subprocess.run([QEMU_IMG, "--help"], capture_output=True, text=True, check=False)
    return " iscsi " in f" {done.stdout.replace(chr(10), ' ')} "


def _qemu_img(*args: str) -> str:
    try:
        done = subprocess.run(
            [QEMU_IMG, *args], capture_output=True, text=True, timeout=QEMU_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"qemu-img {args[0]} took longer than {QEMU_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise DriverError(f"iSCSI {args[0]} failed: {lines[-1]}")
    return done.stdout


def capacity(lun: Lun) -> int:
    info = json.loads(_qemu_img("info", "--output=json", "--image-opts", *lun.opts()))
    return int(info["virtual-size"])


def write(lun: Lun, source: Path) -> None:
    # --target-image-opts needs -n: the LUN exists; only the source's bytes are written
    opts = lun.opts()
    _qemu_img("convert", "-n", opts[0], opts[1], "-f", "raw", "--target-image-opts",
              str(source), opts[2])  # fmt: skip


def sha256_of(lun: Lun, size: int, scratch: Path) -> str:
    """The sha256 of the LUN's first ``size`` bytes, read back from the target."""
    copy = scratch / "readback.img"
    blocks = max(1, math.ceil(size / MIB))
    _qemu_img("dd", "--image-opts", *lun.opts()[:2], "-O", "raw", f"if={lun.opts()[2]}",
              f"of={copy}", f"bs={MIB}", f"count={blocks}")  # fmt: skip
    digest = hashlib.sha256()
    with copy.open("rb") as fh:
        remaining = size
        while remaining and (block := fh.read(min(MIB, remaining))):
            digest.update(block)
            remaining -= len(block)
    copy.unlink()
    return digest.hexdigest()


def download(url: str, expected: str, into: Path) -> int:
    """Stream the image into ``into`` and check its sha256 on the way; its size."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DriverError("the iscsi deploy downloads images over http or https only")
    digest, size = hashlib.sha256(), 0
    try:
        with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as r:
            if r.status_code != 200:
                raise DriverError(f"image download failed: HTTP {r.status_code}")
            with into.open("wb") as out:
                for chunk in r.iter_bytes(MIB):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
    except httpx.HTTPError as exc:
        raise DriverError(f"image download failed: {type(exc).__name__}: {exc}") from exc
    if digest.hexdigest() != expected:
        raise DriverError(
            f"image checksum mismatch: expected sha256 {expected}, downloaded {digest.hexdigest()}"
        )
    return size


def _portal_host(agent_url: str) -> str:
    # qemu-img's option string: a "," in the host would start an option (reported.py)
    host = reported.agent_host(agent_url)
    return f"[{host}]" if ":" in host else host


class IscsiDeploy(DeployInterface):
    uses_agent = True

    def __init__(self, portal_port: int = PORTAL_PORT) -> None:
        self.portal_port = portal_port

    def validate(self, ctx: NodeContext) -> None:
        images.validate_image_info(ctx, "iscsi")
        if not qemu_img_has_iscsi():
            raise DriverConfigError(
                "the iscsi deploy needs qemu-img with iSCSI support on the conductor "
                "(Debian: qemu-utils and qemu-block-extra)"
            )

    @contextmanager
    def _export(self, ctx: NodeContext, agent_url: str, say: Say) -> Iterator[dict[str, Lun]]:
        """The disk and config drive LUNs, exported for this call only."""
        alphabet = string.ascii_letters + string.digits
        secret = "".join(secrets.choice(alphabet) for _ in range(16))
        redact.remember(secret)  # no log record of this process shows it
        user = f"metalnic-{secrets.token_hex(4)}"
        iqn = f"iqn.2008-10.org.openstack:{ctx.uuid}"
        params: JSONObject = {
            "iqn": iqn, "portal_port": self.portal_port, "user": user, "secret": secret,
        }  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="metalnic-iscsi-") as scratch:
            secret_file = Path(scratch) / "chap"
            secret_file.touch(mode=0o600)
            secret_file.write_text(secret)
            token = agent_client.token_of(ctx)
            result = agent_client.run_command(agent_url, "iscsi.start_iscsi_target", params, token)
            answered = result.get("portal_port", self.portal_port)
            portal = f"{_portal_host(agent_url)}:{reported.port(answered, 'iSCSI portal port')}"
            luns = result.get("luns") or {}
            try:
                found = {
                    name: Lun(portal, iqn, int(luns[name]), user, secret_file)
                    for name in ("disk", "config_drive")
                }
            except (KeyError, TypeError, ValueError) as exc:
                raise DriverError("the ramdisk agent's iSCSI export names no LUNs") from exc
            say(f"disk exported over iSCSI by the ramdisk ({iqn} at {portal}, CHAP)")
            try:
                yield found
            except BaseException:
                with contextlib.suppress(DriverError):  # the first failure is the one to report
                    agent_client.run_command(agent_url, "iscsi.stop_iscsi_target", {}, token)
                raise
            agent_client.run_command(agent_url, "iscsi.stop_iscsi_target", {}, token)
            say("iSCSI export withdrawn; the ramdisk flushed the disk")

    def write_image(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        expected = str(ctx.instance_info["image_os_hash_value"]).lower()
        with tempfile.TemporaryDirectory(prefix="metalnic-image-") as scratch_dir:
            scratch = Path(scratch_dir)
            image = scratch / "image.raw"
            started = time.monotonic()
            size = download(str(ctx.instance_info["image_source"]), expected, image)
            say(f"image downloaded by the conductor: {size} bytes, sha256 verified "
                f"({time.monotonic() - started:.1f} s)")  # fmt: skip
            with self._export(ctx, agent_url, say) as luns:
                room = capacity(luns["disk"])
                if size > room:
                    raise DriverError(f"the image ({size} bytes) is larger than the disk ({room})")
                started = time.monotonic()
                write(luns["disk"], image)
                say(f"image written through iSCSI ({time.monotonic() - started:.1f} s)")
                written = sha256_of(luns["disk"], size, scratch)
                if written != expected:
                    raise DriverError(
                        f"image checksum mismatch: expected sha256 {expected}, read back {written}"
                    )
                say("image read back from the target: sha256 matches")
                drive = images.configdrive_bytes(ctx.instance_info.get("configdrive"))
                if drive is not None:
                    self._write_drive(luns["config_drive"], drive, scratch)
                    say("config drive written through iSCSI")

    def clean_disk(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        with (
            tempfile.TemporaryDirectory(prefix="metalnic-clean-") as scratch_dir,
            self._export(ctx, agent_url, say) as luns,
        ):
            zeros = Path(scratch_dir) / "zeros"
            with zeros.open("wb") as fh:
                fh.truncate(MIB)
            write(luns["disk"], zeros)
            self._write_drive(luns["config_drive"], configdrive.block(""), Path(scratch_dir))
            say("disk metadata and config drive erased through iSCSI")

    @staticmethod
    def _write_drive(lun: Lun, blob: bytes, scratch: Path) -> None:
        room = capacity(lun)
        if len(blob) > room:
            raise DriverError(f"the config drive ({len(blob)} bytes) does not fit ({room})")
        path = scratch / "config-drive"
        path.write_bytes(blob)
        write(lun, path)
