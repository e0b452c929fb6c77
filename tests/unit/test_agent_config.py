"""The agent's TOML configuration: what it accepts and the errors it gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metalnic.agent.config import ConfigError, load, parse

LOCAL = {
    "server": "http://127.0.0.1:6385",
    "nics": {
        "nic-1": {
            "ovsdb": "unix:/run/db.sock",
            "openflow": {"br-int": "unix:/a", "br-phys": "unix:/b"},
        }
    },
}


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
        ({"mode": "remote", "private_key": "k", "certificate": "c"}, "ssl: only"),
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
