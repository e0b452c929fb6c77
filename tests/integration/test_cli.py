"""The `metalnic` command against a running server."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from tests.integration.helpers import random_mac
from tests.support import VENV_BIN, Server, remote_llc


def run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "--url", server.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_json(server: Server, *args: str) -> Any:
    r = run(server, "-f", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_node_and_port_lifecycle(server: Server, tmp_path: Path) -> None:
    node = run_json(
        server,
        "node",
        "create",
        "--driver",
        "fake-hardware",
        "--name",
        "cli-n1",
        "--driver-info",
        "redfish_password=pw-123",
        "--network-interface",
        "smartnic",
    )
    assert node["driver_info"] == {"redfish_password": "******"}
    llc = remote_llc("nic-cli-remote")
    cert = tmp_path / "nic.pem"
    cert.write_text(llc["ovsdb_cert"])
    ca = tmp_path / "ca.pem"
    ca.write_text(llc["ovsdb_ca_cert"])
    mac = random_mac()
    port = run_json(
        server,
        "port",
        "create",
        mac,
        "--node",
        "cli-n1",
        "--is-smartnic",
        "--local-link-connection",
        "hostname=nic-cli-remote",
        "--local-link-connection",
        "port_id=pf0hpf",
        "--local-link-connection",
        f"ssh_public_key={llc['ssh_public_key']}",
        "--local-link-connection",
        f"ovsdb_cert=@{cert}",
        "--local-link-connection",
        f"ovsdb_ca_cert=@{ca}",
    )
    assert port["is_smartnic"] is True
    assert port["local_link_connection"]["ovsdb_cert"] == llc["ovsdb_cert"]
    table = run(server, "port", "list", "--node", "cli-n1", "--detail")
    assert table.returncode == 0
    assert mac in table.stdout and "is_smartnic" in table.stdout
    changed = run_json(
        server, "port", "set", port["uuid"], "--local-link-connection", "port_id=pf1hpf"
    )
    assert changed["local_link_connection"]["port_id"] == "pf1hpf"
    renamed = run_json(server, "node", "set", "cli-n1", "--name", "cli-n2", "--extra", "rack=r7")
    assert renamed["name"] == "cli-n2" and renamed["extra"] == {"rack": "r7"}
    shown = run(server, "node", "show", "cli-n2")
    assert "cli-n2" in shown.stdout and "pw-123" not in shown.stdout
    maint = run_json(server, "node", "maintenance", "cli-n2", "on", "--reason", "test")
    assert maint["maintenance"] is True
    assert run(server, "port", "delete", port["uuid"]).returncode == 0
    assert run(server, "node", "delete", "cli-n2").returncode == 0
    gone = run(server, "node", "show", "cli-n2")
    assert gone.returncode == 1
    assert "could not be found" in gone.stderr


def test_cli_reports_api_errors(server: Server) -> None:
    r = run(server, "port", "create", "not-a-mac", "--node", "no-such-node")
    assert r.returncode == 1
    assert "could not be found" in r.stderr
    run_json(server, "node", "create", "--driver", "fake-hardware", "--name", "cli-err")
    r = run(server, "port", "create", "not-a-mac", "--node", "cli-err")
    assert r.returncode == 1
    assert "MAC" in r.stderr and "HTTP 400" in r.stderr


def test_cli_unreachable_server() -> None:
    r = subprocess.run(
        [str(VENV_BIN / "metalnic"), "--url", "http://127.0.0.1:9", "node", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "Cannot reach" in r.stderr


def test_users_add_without_a_terminal_says_what_to_do(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    r = subprocess.run(
        [str(VENV_BIN / "metalnic"), "users", "add", "olga", "--role", "observer",
         "--users-file", str(users)],
        stdin=subprocess.DEVNULL,  # not a terminal, and no --password-stdin
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--password-stdin" in lines[0], r.stderr
    assert not users.exists()


def test_users_add_grants_nic_hosts(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    cmd = [str(VENV_BIN / "metalnic"), "users", "add", "rack1", "--role", "agent",
           "--nic-host", "nic1", "--nic-host", "nic2", "--users-file", str(users),
           "--password-stdin"]  # fmt: skip
    r = subprocess.run(cmd, input="pw\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert tomllib.loads(users.read_text())["users"]["rack1"]["nic_hosts"] == ["nic1", "nic2"]
    bad = [*cmd[:3], "olga", "--role", "observer", "--nic-host", "nic1", *cmd[10:]]
    r = subprocess.run(bad, input="pw\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "--nic-host is for agent users" in r.stderr
