"""The agent's TOML configuration: what it accepts and the errors it gives; the keys
it shares with the DHCP agent's file are read alike (``metalnic/agent/configfile.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from metalnic.agent.config import ConfigError, load, parse
from metalnic.agent.process import ProcessConfig
from metalnic.dhcp import config as dhcp_config

LOCAL = {
    "server": "http://127.0.0.1:6385",
    "nics": {
        "nic-1": {
            "ovsdb": "unix:/run/db.sock",
            "openflow": {"br-int": "unix:/a", "br-phys": "unix:/b"},
        }
    },
}

REMOTE_KEYS = {"private_key": "k", "certificate": "c", "ssh_private_key": "s"}
REMOTE_NIC = {"ovsdb": "ssl:192.0.2.1:6640", "openflow": {"br-int": "ssl:a", "br-phys": "ssl:b"}}


def test_local_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    path = tmp_path / "agent.toml"
    path.write_text(
        'server = "https://m:6385"\nusername = "a"\n'
        f'password_file = "{tmp_path / "pw"}"\n'
        '[nics.nic-1]\novsdb = "unix:/run/db.sock"\n'
        'openflow = { br-int = "unix:/x", br-phys = "unix:/y" }\n'
    )
    config = load(path)
    assert config.password == "s3cret" and config.mode == "local"
    assert config.nics[0].config.bridge_mappings == {"physnet1": "br-phys"}
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"server": None}, "server"),
        ({"mode": "sideways"}, "mode"),
        ({"nics": {}}, "at least one"),
        ({"bogus": 1}, "unknown agent setting"),
        ({"nics": {**LOCAL["nics"], "nic-2": LOCAL["nics"]["nic-1"]}}, "exactly one"),
        ({"mode": "remote"}, "private_key and certificate"),
        ({"mode": "remote", "private_key": "k", "certificate": "c"}, "ssh_private_key"),
        ({"mode": "remote", **REMOTE_KEYS}, "ssl: only"),
        ({"mode": "remote", **REMOTE_KEYS, "nics": {"n": REMOTE_NIC}}, "needs ssh"),
        (
            {"mode": "remote", **REMOTE_KEYS, "nics": {"n": {**REMOTE_NIC, "ssh": "h:port"}}},
            "must be HOST",
        ),
        (
            {"mode": "remote", **REMOTE_KEYS, "nics": {"n": {**REMOTE_NIC, "ssh": "h:99999"}}},
            "must be HOST",
        ),
        (
            {"nics": {"nic-1": {"ovsdb": "unix:/db", "openflow": {"br-int": "unix:/a"}}}},
            "no target for bridge br-phys",
        ),
    ],
)
def test_bad_config(change: dict[str, Any], message: str) -> None:
    doc = {**LOCAL, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        parse(doc)


@pytest.mark.parametrize("parse_file", [parse, dhcp_config.parse], ids=["agent", "dhcp-agent"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"heartbeat_interval": "often"}, "heartbeat_interval is a number of seconds"),
        ({"resync_interval": 0}, "resync_interval is a number of seconds"),
        ({"username": 7}, "username must be a string"),
        ({"password_file": "/nonexistent/pw"}, "cannot read password_file"),
    ],
)
def test_both_agents_read_the_common_keys_alike(
    parse_file: Callable[[dict[str, Any]], ProcessConfig], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_file({**LOCAL, **change} if parse_file is parse else {"server": "http://x", **change})


def test_the_common_keys_are_the_same_fields_for_both_agents(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw-1\n")
    common = {
        "server": "http://m",
        "username": "u",
        "password_file": str(tmp_path / "pw"),
        "host": "h",
        "heartbeat_interval": 1,
        "resync_interval": 3.5,
    }
    nic, dhcp = parse({**LOCAL, **common}), dhcp_config.parse(common)
    for config in (nic, dhcp):
        assert (config.server, config.username, config.password, config.host) == (
            "http://m",
            "u",
            "pw-1",
            "h",
        )
        assert (config.heartbeat_interval, config.resync_interval) == (1.0, 3.5)


@pytest.mark.parametrize(
    ("given", "host", "port", "user"),
    [
        ({"ssh": "192.0.2.1"}, "192.0.2.1", 22, "root"),
        ({"ssh": "nic.example:2222", "ssh_user": "ubuntu"}, "nic.example", 2222, "ubuntu"),
        ({"ssh": "[2001:db8::1]:2200"}, "2001:db8::1", 2200, "admin"),
        ({"ssh": "2001:db8::1"}, "2001:db8::1", 22, "admin"),
    ],
)
def test_remote_nic_ssh_target(given: dict[str, str], host: str, port: int, user: str) -> None:
    top = {"ssh_user": "admin"} if "ssh_user" not in given and ":" in host else {}
    doc = {**LOCAL, "mode": "remote", **REMOTE_KEYS, **top, "nics": {"n": {**REMOTE_NIC, **given}}}
    config = parse(doc)
    ssh = config.nics[0].ssh
    assert ssh is not None and (ssh.host, ssh.port, ssh.user) == (host, port, user)
    assert config.ssh_private_key == "s"
