"""`metalnic demo` (the README's main command), as a user runs it — on QEMU hosts, its
default: the lab, the server, the agents, four VMs that really boot (firmware, the
ramdisk over HTTP through their smart NICs, the instance from the disk it wrote) as
nodes for two tenants; each boot's stages shown as they happen, every lease its port's
fixed IP, the isolation matrix measured from the booted instances (ping and TCP 80);
then explored with the CLI and the OpenStack client (``--keep``), and removed
(``--down``) without leaving anything behind.  8 PXE boots in all.

(The namespace hosts' demo, ``--hosts ns``, runs the same ``Stack`` that
test_e2e_smartnic drives step by step; it is not run again here.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from metalnic.lab import vm
from metalnic.lab.datacentre import alive_pid
from metalnic.lab.netns import list_ns
from tests.ovslab import require_ovs
from tests.support import VENV_BIN, free_port, require


def _demo(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "demo", *args], capture_output=True, text=True, timeout=timeout
    )


def test_demo_on_vms_deploys_two_tenants_and_cleans_up(tmp_path: Path) -> None:
    require_ovs()
    require(vm.available(), f"{vm.QEMU} (Debian: qemu-system-x86 seabios ipxe-qemu)")
    state = tmp_path / "demo"
    port = free_port()
    # Its own subnet and port: a demo someone runs on this machine is left alone.
    common = ("--state-dir", str(state), "--provisioning-subnet", "10.96.0.0/24")
    pids: list[int] = []
    qemus: list[int] = []
    try:
        run = _demo("--keep", "--port", str(port), *common)
        out = run.stdout
        assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
        lab = json.loads((state / "lab" / "description.json").read_text())
        # What happened is shown as it happens, from each VM's serial console: BIOS
        # hold, firmware, ramdisk, instance, each address leased by DHCP (provisioning,
        # then the tenant's subnet) — in that order.
        for host in ("host1", "host2", "host3", "host4"):
            stages = [
                f"{host}  host: bios in BIOS set-up",
                f"{host}  firmware: iPXE asks DHCP",
                f"{host}  ramdisk: lease 10.96.0.",
                f"{host}  ramdisk: looked up node",
                f"{host}  ramdisk: heartbeat accepted",
                f"{host}  ramdisk: disk metadata erased",
                f"{host}  node: available",
                f"{host}  ramdisk: image written, its sha256 verified",
                f"{host}  node: active",  # the conductor powered it on from disk, then:
                f"{host}  instance: lease 10.50.0.",
            ]
            at = 0  # each after the one before (a PXE retry may repeat a firmware line)
            for line in stages:
                at = out.find(line, at)
                assert at != -1, f"{line!r} missing or out of order"
                if line.endswith("sha256 verified"):
                    assert out.find(f"{host}  firmware: booting from disk", at) != -1
        assert '"POST /v1/commands' not in out  # the ramdisk's access log is not a stage
        # The leases table: every host's tenant lease is its VIF port's fixed IP.
        table = out[out.index("DHCP leases") : out.index("Connectivity")]
        rows = [
            line for line in table.splitlines() if line.startswith("| host") and "|" in line[7:]
        ]
        rows = [row for row in rows if row[6].isdigit()]
        assert len(rows) == 4 and all(row.rstrip(" |").endswith("✓") for row in rows), table
        assert "Same tenant: reached; across tenants: nothing" in out
        assert "ping and TCP 80 from each booted instance" in out
        matrix = [line for line in out.splitlines() if line.startswith("host")][-4:]
        assert [line.split()[1:5] for line in matrix] == [
            ["—", "·", "✓", "·"],
            ["·", "—", "·", "✓"],
            ["✓", "·", "—", "·"],
            ["·", "✓", "·", "—"],
        ]
        print(out[out.rindex("Time:") :])  # where the minutes went (pytest -s / -rA)
        assert "| node-host4 | ipmi" in out and "| node-host1 | redfish" in out
        # The serial console, as `metalnic lab console` shows it to the user.
        console = subprocess.run(
            [str(VENV_BIN / "metalnic"), "lab", "console", "host2", "--dir", str(state / "lab")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert "SeaBIOS" in console.stdout and "metalnic-ramdisk: lease" in console.stdout
        assert "metalnic-instance: ready" in console.stdout
        qemus = [int(p.read_text()) for p in (state / "lab").glob("hosts/*/qemu.pid")]
        assert len(qemus) == 4 and all(alive_pid(pid) for pid in qemus)
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
        booted = re.search(r"host\d  (firmware|ramdisk|instance): ", again.stdout)
        assert booted is None, booted  # no host booted again
        assert sorted(int(p.read_text()) for p in state.glob("*.pid")) == sorted(pids)
    finally:
        down = _demo("--down", *common, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(alive_pid(pid) for pid in pids + qemus)
    assert list_ns(f"{lab['prefix']}-") == []  # noqa: F821 - set once the demo ran
    for pidfile in ("hosts.pid", "bmc/emulator.pid", "bmc/ipmi.pid"):
        assert not (state / "lab" / pidfile).exists() or not alive_pid(
            int((state / "lab" / pidfile).read_text())
        )
