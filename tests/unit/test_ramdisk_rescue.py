"""The ramdisk agent's ``rescue.finalize_rescue``: only a crypt hash, written for the
user ``rescue`` into the shadow file (0600), other users' lines kept; and the
server's hash of the rescue password (salted SHA-512 crypt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from passlib.hash import sha512_crypt

from metalnic.baremetal import rescuepw
from metalnic.errors import InvalidInput
from metalnic.ramdisk import agent


def storage(tmp_path: Path) -> agent.Storage:
    return agent.Storage(tmp_path / "disk", tmp_path / "drive", shadow=tmp_path / "shadow")


def test_the_hash_is_salted_sha512_crypt_and_verifies() -> None:
    one, two = rescuepw.hash_password("pw 1"), rescuepw.hash_password("pw 1")
    assert one.startswith("$6$") and one != two  # a fresh salt each time
    assert rescuepw.verify("pw 1", one) and not rescuepw.verify("pw 2", one)
    assert "pw 1" not in one


@pytest.mark.parametrize("password", [None, "", "  \t", 42])
def test_no_usable_password_is_refused(password: object) -> None:
    with pytest.raises(InvalidInput, match="non-empty"):
        rescuepw.hash_password(password)


def test_finalize_writes_the_rescue_users_hash(tmp_path: Path) -> None:
    s = storage(tmp_path)
    s.shadow.write_text("root:*:1:0:99999:7:::\nrescue:$6$old$old:1:0:99999:7:::\n")
    hashed = rescuepw.hash_password("let me in")
    assert agent.finalize_rescue(s, {"rescue_password": hashed, "hashed": True}) == {
        "user": "rescue"
    }
    lines = s.shadow.read_text().splitlines()
    assert lines[0] == "root:*:1:0:99999:7:::"
    (rescue,) = [line for line in lines if line.startswith("rescue:")]
    assert rescue.split(":")[1] == hashed and sha512_crypt.verify("let me in", hashed)
    assert s.shadow.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "shadow.new").exists()


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"rescue_password": "plain", "hashed": False}, "only a hashed"),
        ({"rescue_password": "plain"}, "only a hashed"),
        ({"rescue_password": "plain", "hashed": True}, "not a crypt"),
        ({"rescue_password": "$6$salt$x:0:0::/:/bin/sh", "hashed": True}, "not a crypt"),
        ({"rescue_password": "$6$salt$x\nroot::1::::::", "hashed": True}, "not a crypt"),
        ({"hashed": True}, "not a crypt"),
    ],
)
def test_finalize_refuses_anything_but_a_crypt_hash(
    tmp_path: Path, params: agent.JSONObject, why: str
) -> None:
    s = storage(tmp_path)
    with pytest.raises(agent.CommandFailed, match=why) as failed:
        agent.finalize_rescue(s, params)
    assert "plain" not in str(failed.value) and "salt" not in str(failed.value)
    assert not s.shadow.exists()


def test_without_a_shadow_file_nothing_is_written(tmp_path: Path) -> None:
    s = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    hashed = rescuepw.hash_password("pw")
    with pytest.raises(agent.CommandFailed, match="without --shadow"):
        agent.finalize_rescue(s, {"rescue_password": hashed, "hashed": True})
