"""`metalnic demo` (the README's main command), as a user runs it: the lab, the server,
the agents, four nodes for two tenants; then explored with the CLI and the OpenStack
client (``--keep``), and removed (``--down``) without leaving anything behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from metalnic.lab.datacentre import alive_pid
from metalnic.lab.netns import list_ns
from tests.ovslab import require_ovs
from tests.support import VENV_BIN, free_port


def _demo(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "demo", *args], capture_output=True, text=True, timeout=timeout
    )


def test_demo_deploys_two_tenants_and_cleans_up(tmp_path: Path) -> None:
    require_ovs()
    state = tmp_path / "demo"
    port = free_port()
    # Its own subnet and port: a demo someone runs on this machine is left alone.
    common = ("--state-dir", str(state), "--provisioning-subnet", "10.96.0.0/24")
    pids: list[int] = []
    try:
        run = _demo("--keep", "--port", str(port), *common)
        out = run.stdout
        assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
        lab = json.loads((state / "lab" / "description.json").read_text())
        # What happened is shown as it happens: BIOS, ramdisk, instance for every host,
        # each address leased by DHCP (provisioning, then the tenant's subnet).
        for host in ("host1", "host2", "host3", "host4"):
            assert f"{host}  host: pxe lease 10.96.0." in out
            assert f"{host}  host: pxe ramdisk agent at 10.96.0." in out
            assert f"{host}  host: disk lease 10.50.0." in out
            assert f"{host}  node: active" in out
        # The leases table: every host's tenant lease is its VIF port's fixed IP.
        table = out[out.index("DHCP leases") : out.index("Connectivity")]
        rows = [
            line for line in table.splitlines() if line.startswith("| host") and "|" in line[7:]
        ]
        rows = [row for row in rows if row[6].isdigit()]
        assert len(rows) == 4 and all(row.rstrip(" |").endswith("✓") for row in rows), table
        assert "Same tenant: reached; across tenants: nothing" in out
        matrix = [line for line in out.splitlines() if line.startswith("host")][-4:]
        assert [line.split()[1:5] for line in matrix] == [
            ["—", "·", "✓", "·"],
            ["·", "—", "·", "✓"],
            ["✓", "·", "—", "·"],
            ["·", "✓", "·", "—"],
        ]
        assert "| node-host4 | ipmi" in out and "| node-host1 | redfish" in out
        # --keep: it is still there for the user, through the CLI and the OpenStack client.
        url = lab["provisioning"]["api_url"]
        password = (state / "credentials" / "admin").read_text().strip()
        assert password not in out and password not in run.stderr  # a secret: never printed
        env = {**os.environ, "METALNIC_URL": url, "METALNIC_USERNAME": "admin",
               "METALNIC_PASSWORD": password}  # fmt: skip
        nodes = subprocess.run(
            [str(VENV_BIN / "metalnic"), "-f", "json", "node", "list", "--detail"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        assert sorted(n["provision_state"] for n in json.loads(nodes.stdout)) == ["active"] * 4
        osc = subprocess.run(
            [str(VENV_BIN / "openstack"), "--os-auth-type", "http_basic", "--os-endpoint", url,
             "--os-username", "admin", f"--os-password={password}",
             "baremetal", "node", "list", "-f", "json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        listed = sorted((n["name"], n["provision_state"]) for n in json.loads(osc.stdout))
        assert listed == [(f"node-host{i}", "active") for i in range(1, 5)], listed
        pids = [int(p.read_text()) for p in state.glob("*.pid")]
        assert len(pids) == 5  # the server, three NIC agents and the DHCP agent
        # Run again over what --keep left: nothing is rebuilt, restarted or redeployed.
        again = _demo("--keep", "--port", str(port), *common, timeout=300)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "Same tenant: reached; across tenants: nothing" in again.stdout
        assert "ramdisk agent" not in again.stdout  # no host booted again
        assert sorted(int(p.read_text()) for p in state.glob("*.pid")) == sorted(pids)
    finally:
        down = _demo("--down", *common, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(alive_pid(pid) for pid in pids)
    assert list_ns(f"{lab['prefix']}-") == []  # noqa: F821 - set once the demo ran
    for pidfile in ("hosts.pid", "bmc/emulator.pid", "bmc/ipmi.pid"):
        assert not (state / "lab" / pidfile).exists() or not alive_pid(
            int((state / "lab" / pidfile).read_text())
        )
