"""The ramdisk's iSCSI export refuses what it cannot export safely, before any
target is started (the real exports are in tests/integration/test_iscsi_deploy.py
with tgtd, and in the lab's QEMU hosts with LIO)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metalnic import redact
from metalnic.jsontypes import JSONObject
from metalnic.ramdisk.iscsi import TargetError, Targets

GOOD: JSONObject = {
    "iqn": "iqn.2008-10.org.openstack:1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
    "portal_port": 3260,
    "user": "metalnic-1a2b3c4d",
    "secret": "Abcdefgh12345678",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iqn": "not-an-iqn"}, "is not an iSCSI qualified name"),
        ({"iqn": "iqn.2008-10.org.openstack:x; rm -rf /"}, "is not an iSCSI qualified name"),
        ({"secret": "short"}, "12-16 character alphanumeric secret"),
        ({"secret": "Abcdefgh1234567890"}, "12-16 character alphanumeric secret"),
        ({"secret": None}, "12-16 character alphanumeric secret"),
        ({"user": "a b"}, "CHAP user"),
        ({"portal_port": 0}, "portal_port must be a TCP port number"),
        ({"portal_port": "3260"}, "portal_port must be a TCP port number"),
        ({"portal_port": True}, "portal_port must be a TCP port number"),
    ],
)
def test_bad_parameters_start_nothing(tmp_path: Path, change: JSONObject, message: str) -> None:
    disk = tmp_path / "disk"
    disk.write_bytes(b"\0" * 4096)
    targets = Targets("tgt")
    with pytest.raises(TargetError, match=message):
        targets.start("127.0.0.1", (disk, disk), {**GOOD, **change})
    assert targets.current is None


def test_a_missing_device_is_refused(tmp_path: Path) -> None:
    targets = Targets("tgt")
    with pytest.raises(TargetError, match="nothing to export at .*absent"):
        targets.start("127.0.0.1", (tmp_path / "absent", tmp_path / "absent"), dict(GOOD))
    assert targets.current is None


def test_the_secret_is_redacted_once_received(tmp_path: Path) -> None:
    targets = Targets("tgt")
    with pytest.raises(TargetError):
        targets.start("127.0.0.1", (tmp_path / "absent",), dict(GOOD))
    assert "Abcdefgh12345678" not in redact.redact_log("CHAP secret Abcdefgh12345678")
