"""`metalnic demo` (the README's main command) enrolls and deploys its sample node,
idempotently."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.support import VENV_BIN, free_port


def run_demo(state: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "metalnic"),
            "demo",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--exit",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_enrolls_sample_smartnic_node(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    first = run_demo(state, free_port())
    assert first.returncode == 0, first.stderr
    assert "sample-node-0" in first.stdout
    assert "pf0hpf" in first.stdout and "True" in first.stdout
    assert "host held in BIOS while its smart NICs are configured" in first.stdout
    assert "ports verified ACTIVE on the tenant network" in first.stdout
    second = run_demo(state, free_port())
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(state / "metalnic.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM nodes").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM ports WHERE is_smartnic").fetchone()[0] == 1
        state = conn.execute("SELECT provision_state FROM nodes").fetchone()[0]
    assert state == "active"
