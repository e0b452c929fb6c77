"""`metalnic demo` (the README's main command), as a user runs it — on QEMU hosts, its
default: the lab, the server, the agents, four VMs that really boot (firmware, the
ramdisk over HTTP through their smart NICs, the instance from the disk it wrote) as
nodes for two tenants; each boot's stages shown as they happen, every lease its port's
fixed IP, the isolation matrix measured from the booted instances (ping and TCP 80);
then explored with the CLI and the OpenStack client (``--keep``), and removed
(``--down``) without leaving anything behind.

It is also the packet proof on QEMU hosts (issue 14, item 5), with nothing simulated:
the test brings the demo's lab up first (``demo.lab_spec``: the demo finds it up) and
captures on every NIC's uplink and every tap (port B) from before the first cleaning
to after one host's undeploy; the checks are tests/packetproof.py, the same ones the
namespace hosts' test_e2e_smartnic makes — no frame while a host is held in BIOS or its
BMC said off, every frame leaves its NIC only on a network ACTIVE for it at that
moment, another tenant is never heard on a tenant network — plus: each network boot's
first DHCPDISCOVER comes after the conductor's "attach <phase> network: done" and is
answered after it.  9 PXE boots in all (clean + deploy each, host3's cleaning after its
undeploy).

(The namespace hosts' demo, ``--hosts ns``, runs the same ``Stack`` that
test_e2e_smartnic drives step by step; it is not run again here.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from metalnic.cli.demo import lab_spec
from metalnic.lab import datacentre, vm
from metalnic.lab.capture import Capture, Frame
from metalnic.lab.datacentre import alive_pid
from metalnic.lab.netns import list_ns
from metalnic.lab.scenario import Stack
from metalnic.lab.stackconfig import deploy_interface
from tests import packetproof
from tests.integration.conductor_helpers import audit_smartnic_order
from tests.ovslab import port_b_tag, require_ovs
from tests.support import VENV_BIN, free_port, require

SUBNET = "10.96.0.0/24"  # its own subnet and port: a demo someone runs here is left alone
UNDEPLOYED = "host3"  # a remote-mode NIC's host, its BMC Redfish


def _demo(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "demo", *args], capture_output=True, text=True, timeout=timeout
    )


def test_demo_on_vms_deploys_two_tenants_and_cleans_up(tmp_path: Path) -> None:
    require_ovs()
    require(vm.available(), f"{vm.QEMU} (Debian: qemu-system-x86 seabios ipxe-qemu)")
    state = tmp_path / "demo"
    port = free_port()
    common = ("--state-dir", str(state), "--provisioning-subnet", SUBNET)
    pids: list[int] = []
    qemus: list[int] = []
    captures: dict[str, Capture] = {}
    spec = lab_spec(state, SUBNET, port, "vm")
    try:
        # The demo's own lab, up before the demo so that the captures see everything.
        made = datacentre.up(spec, state / "lab")
        captures = packetproof.start_captures(dict(made), tmp_path)
        run = _demo("--keep", "--port", str(port), *common)
        out = run.stdout
        assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
        lab = json.loads((state / "lab" / "description.json").read_text())
        # What happened is shown as it happens, from each VM's serial console: BIOS
        # hold, firmware, ramdisk, instance, each address leased by DHCP (provisioning,
        # then the tenant's subnet) — in that order.
        for host in ("host1", "host2", "host3", "host4"):
            # hosts 2 and 4 deploy through iSCSI: the conductor writes, the ramdisk exports;
            # host3 with ansible: the conductor's playbooks over the ramdisk's SSH server
            how = deploy_interface(next(h for h in lab["hosts"] if h["name"] == host))
            iscsi = how == "iscsi"
            erased, written = {
                "iscsi": ("iSCSI export withdrawn", "iSCSI export withdrawn"),
                "ansible": ("storage and SSH server described",) * 2,
            }.get(how, ("disk metadata erased", "image written, its sha256 verified"))
            stages = [
                f"{host}  host: bios in BIOS set-up",
                f"{host}  firmware: iPXE asks DHCP",
                f"{host}  ramdisk: lease 10.96.0.",
                f"{host}  ramdisk: looked up node",
                f"{host}  ramdisk: heartbeat accepted",
                *([f"{host}  ramdisk: disk exported over iSCSI"] if iscsi else []),
                f"{host}  ramdisk: {erased}",
                f"{host}  node: available",
                *([f"{host}  ramdisk: disk exported over iSCSI"] if iscsi else []),
                f"{host}  ramdisk: {written}",
                f"{host}  node: active",  # the conductor powered it on from disk, then:
                f"{host}  instance: lease 10.50.0.",
            ]
            at = 0  # each after the one before (a PXE retry may repeat a firmware line)
            for line in stages:
                at = out.find(line, at)
                assert at != -1, f"{line!r} missing or out of order"
                if line == f"{host}  ramdisk: {written}":
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
        stack = Stack(lab, state, say=lambda line: print(line, flush=True))
        with stack.client() as c:
            for host in lab["hosts"]:
                stack.nodes[host["name"]] = c.get(f"/v1/nodes/node-{host['name']}").json()["uuid"]
        _undeploy_denies_by_default(stack, _host(lab, UNDEPLOYED))
        frames = {name: capture.stop() for name, capture in captures.items()}
        _packet_proof(stack, frames)
    finally:
        for capture in captures.values():
            capture.stop()
        down = _demo("--down", *common, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(alive_pid(pid) for pid in pids + qemus)
    assert list_ns(f"{lab['prefix']}-") == []  # noqa: F821 - set once the demo ran
    for pidfile in ("hosts.pid", "bmc/emulator.pid", "bmc/ipmi.pid"):
        assert not (state / "lab" / pidfile).exists() or not alive_pid(
            int((state / "lab" / pidfile).read_text())
        )


def _host(lab: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in lab["hosts"] if h["name"] == name)


def _undeploy_denies_by_default(stack: Stack, host: dict[str, Any]) -> None:
    """The host is undeployed and cleaned (its third network boot): its NIC port is on
    no network and none of its ports is bound (its VIF's neither: as in Ironic, the VIF
    stays attached until its owner detaches it)."""
    began = time.monotonic()
    stack.undeploy([host["name"]], timeout=600)
    print(f"demo: {host['name']} undeployed and cleaned in {time.monotonic() - began:.0f}s")
    node = stack.nodes[host["name"]]
    with stack.client() as c:
        shown = c.get(f"/v1/nodes/{node}").json()
        assert (shown["provision_state"], shown["power_state"]) == ("available", "power off")
        vifs = [v["id"] for v in c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]]
        ports = c.get("/network/v2.0/ports", params={"device_id": node}).json()["ports"]
        assert ports and [p["id"] for p in ports if p["binding:host_id"]] == []
        assert vifs and all(c.get(f"/network/v2.0/ports/{v}").json()["port"]["binding:host_id"]
                            in ("", None) for v in vifs), vifs  # fmt: skip
    nic = next(n for n in stack.lab["nics"] if n["name"] == host["nic"])
    assert nic["mode"] == "remote"  # its agent speaks OVSDB-SSL: read the NIC's own OVS
    tag = port_b_tag(dict(stack.lab), host)
    assert tag in ("", "4095"), tag


def _packet_proof(stack: Stack, frames: dict[str, list[Frame]]) -> None:
    """The node histories against the captures (since before the first cleaning)."""
    for host in stack.lab["hosts"]:
        history = packetproof.history(stack, host["name"])
        # Every network change with the VM held in BIOS, every boot behind a boot gate.
        counts = audit_smartnic_order(history)
        assert counts["network"] >= 5 and counts["boots"] >= 3, (host["name"], counts)
        events = " | ".join(e["event"] for e in history)
        assert "image written and its checksum verified" in events
        if deploy_interface(host) == "iscsi":  # the conductor's own read-back
            assert "image read back from the target: sha256 matches" in events
        if deploy_interface(host) == "ansible":  # each playbook task, in the history
            for task in (
                "erase the disk's first MiB (partition table and boot sector)",
                "verify the downloaded image's sha256",
                "read the image back from the disk and verify its sha256",
                "write the config drive",
            ):
                assert f"ansible: {task}: ok" in events, (task, events)
        assert "ports verified ACTIVE on the tenant network" in events
    allowed = {
        host["name"]: packetproof.check_host_sent_only_when_allowed(stack, frames, host, 2)
        for host in stack.lab["hosts"]
    }
    packetproof.check_no_other_tenant_heard(stack, frames, allowed)
    # Each network boot asked DHCP only once the NIC was programmed for its network.
    boots = {
        h["name"]: packetproof.check_dhcp_after_attach(stack, frames, h) for h in stack.lab["hosts"]
    }
    once = ["cleaning", "provisioning"]
    assert boots == {
        "host1": once, "host2": once, "host3": [*once, "cleaning"], "host4": once
    }, boots  # fmt: skip
