"""The iscsi deploy interface against real parts: a real ``metalnic serve``, a real
ramdisk agent process exporting its disk through a real ``tgtd`` (the userspace
target; the lab's QEMU ramdisk uses the kernel's LIO instead), and the
conductor writing and reading back through qemu-img's libiscsi initiator."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.baremetal.drivers.deploy.iscsi import qemu_img_has_iscsi
from tests.integration.conductor_helpers import (
    MIB,
    a_disk,
    audit_smartnic_order,
    history,
    image_node,
    provision,
    wait_for,
)
from tests.integration.test_conductor import FAST
from tests.integration.test_direct_deploy import (
    CONFIGDRIVE,
    HostSimulator,
    conductor_skip_clean,
    images,
)
from tests.support import Server, free_port, require, start_server

__all__ = ["images"]  # the image server fixture, shared with the direct deploy's tests


@pytest.fixture(autouse=True)
def _tools() -> None:
    require(
        bool(shutil.which("tgtd")) and qemu_img_has_iscsi(),
        "tgt and qemu-img with iSCSI (scripts/setup installs them)",
    )


PORTAL_PORT = free_port()  # this module's server tells its ramdisks to export on it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {**FAST, "METALNIC_ISCSI_PORTAL_PORT": str(PORTAL_PORT)}
    srv = start_server(tmp_path_factory.mktemp("iscsi"), env=env)
    yield srv
    srv.stop()


def iscsi_node(server: Server, image_url: str, checksum: str) -> tuple[str, str]:
    with server.client() as c:
        return image_node(c, "iscsi", image_url, checksum)


def test_iscsi_deploy_writes_reads_back_and_cleans_through_the_target(
    server: Server, images: tuple[str, bytes], tmp_path: Path
) -> None:
    url, image = images
    disk = a_disk(tmp_path)
    drive = tmp_path / "disk.config-2"
    node, mac = iscsi_node(server, url, hashlib.sha256(image).hexdigest())
    with server.client() as c, HostSimulator(server, node, mac, disk, ("--iscsi-target", "tgt")):
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")  # cleaning erases through the export too
        wait_for(c, node, "available", timeout=60)
        assert disk.read_bytes()[:MIB] == b"\0" * MIB
        provision(c, node, "active", configdrive=CONFIGDRIVE)
        active = wait_for(c, node, "active", timeout=60)
        assert active["last_error"] is None
        assert disk.read_bytes()[: len(image)] == image
        written = drive.read_bytes()
        assert json.loads(written.split(b"\0", 1)[0]) == CONFIGDRIVE  # NUL-terminated
        provision(c, node, "deleted")
        cleaned = wait_for(c, node, "available", timeout=60)
        events = history(c, node)
    assert cleaned["power_state"] == "power off"
    assert disk.read_bytes()[:MIB] == b"\0" * MIB
    assert drive.read_bytes()[:1] == b"\0"  # cleaning empties the config drive
    texts = [e["event"] for e in events]
    for said in (
        "image read back from the target: sha256 matches",
        "config drive written through iSCSI",
        "iSCSI export withdrawn; the ramdisk flushed the disk",
    ):
        assert said in texts, texts
    assert any(t.startswith("image written through iSCSI") for t in texts)
    assert texts.count("disk metadata and config drive erased through iSCSI") == 2
    exported = [t for t in texts if t.startswith("disk exported over iSCSI")]
    assert len(exported) == 3 and all("CHAP" in t for t in exported)
    counts = audit_smartnic_order(events)
    assert counts["network"] == 10 and counts["boots"] == 4  # as the direct deploy's


def test_a_wrong_checksum_fails_before_anything_is_written(
    server: Server, images: tuple[str, bytes], tmp_path: Path
) -> None:
    url, _ = images
    disk = a_disk(tmp_path)
    before = disk.read_bytes()
    node, mac = iscsi_node(server, url, "0" * 64)
    conductor_skip_clean(server, node)
    with server.client() as c, HostSimulator(server, node, mac, disk, ("--iscsi-target", "tgt")):
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed", timeout=60)
    assert "checksum mismatch" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert disk.read_bytes() == before


class Forwarder:
    """Relays TCP from 127.0.0.1:port to 127.0.0.2:port: the ramdisk's commands
    reach it, its iSCSI portal (on the agent's own address) does not."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.2", self.port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self.listener.close()


def test_an_unreachable_target_fails_the_deploy_and_the_export_is_withdrawn(
    server: Server, images: tuple[str, bytes], tmp_path: Path
) -> None:
    url, image = images
    disk = a_disk(tmp_path)
    before = disk.read_bytes()
    node, mac = iscsi_node(server, url, hashlib.sha256(image).hexdigest())
    conductor_skip_clean(server, node)
    port = free_port()
    relay = Forwarder(port)
    args = ("--iscsi-target", "tgt", "--listen", f"127.0.0.2:{port}",
            "--advertise", f"http://127.0.0.1:{port}")  # fmt: skip
    try:
        with server.client() as c, HostSimulator(server, node, mac, disk, args):
            provision(c, node, "active")
            failed = wait_for(c, node, "deploy failed", timeout=60)
            texts = [e["event"] for e in history(c, node)]
    finally:
        relay.close()
    assert "iSCSI info failed" in failed["last_error"], failed["last_error"]
    assert failed["power_state"] == "power off"
    assert disk.read_bytes() == before
    assert any(t.startswith("disk exported over iSCSI") for t in texts)
    with pytest.raises(ConnectionRefusedError):  # the failed deploy withdrew the export
        socket.create_connection(("127.0.0.2", PORTAL_PORT), timeout=5).close()


def test_the_export_needs_the_chap_secret(tmp_path: Path) -> None:
    """A ramdisk's target refuses an initiator without the export's CHAP secret."""
    from metalnic.baremetal.drivers.base import DriverError
    from metalnic.baremetal.drivers.deploy.iscsi import Lun, capacity
    from metalnic.ramdisk.iscsi import Targets

    disk = a_disk(tmp_path)
    drive = tmp_path / "drive"
    drive.write_bytes(b"\0" * MIB)
    port = free_port()
    targets = Targets("tgt")
    secret = "Abcdefgh12345678"
    iqn = "iqn.2008-10.org.openstack:test-chap"
    params = {"iqn": iqn, "portal_port": port, "user": "metalnic-t", "secret": secret}
    result = targets.start("127.0.0.1", (disk, drive), dict(params))
    try:
        right, wrong = tmp_path / "right", tmp_path / "wrong"
        right.write_text(secret)
        wrong.write_text("Zbcdefgh12345678")
        lun = int(result["luns"]["disk"])  # type: ignore[index,call-overload]
        good = Lun(f"127.0.0.1:{port}", iqn, lun, "metalnic-t", right)
        assert capacity(good) == disk.stat().st_size
        with pytest.raises(DriverError, match="Authentication failure"):
            capacity(Lun(f"127.0.0.1:{port}", iqn, lun, "metalnic-t", wrong))
    finally:
        targets.stop()
    with pytest.raises(DriverError, match="iSCSI info failed"):
        capacity(good)  # withdrawn: nothing listens any more


def test_a_failed_export_leaves_no_target_running(tmp_path: Path) -> None:
    """tgtd started, then its LUN refused (a directory is no disk): the half-made
    export is taken down, nothing listens on the portal."""
    from metalnic.ramdisk.iscsi import TargetError, Targets

    port = free_port()
    not_a_disk = tmp_path / "a-directory"
    not_a_disk.mkdir()
    targets = Targets("tgt")
    params = {
        "iqn": "iqn.2008-10.org.openstack:test-half",
        "portal_port": port,
        "user": "metalnic-t",
        "secret": "Abcdefgh12345678",
    }
    with pytest.raises(TargetError, match="tgtadm new logicalunit"):
        targets.start("127.0.0.1", (not_a_disk, not_a_disk), dict(params))
    assert targets.current is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
