"""Rescue on a QEMU host, end to end (issue 15): deploy, rescue with a password, log
in over SSH from a peer on the tenant network, unrescue, the instance is back.

One VM lab (one local smart NIC, host1 on the Redfish BMC), the server with the
``ipxe`` boot interface, the NIC agent and the DHCP agent.  The node is put in
``available`` through the database (this test is about rescue: no cleaning boot),
so the run has two PXE boots — the deploy ramdisk and the rescue ramdisk — and two
disk boots.  The peer is the tenant network's DHCP namespace (``ip netns exec`` into
it, as an operator does into Neutron's ``qdhcp-*``); the tenant opens TCP 22 and 80
in its default security group, as a cloud user does for SSH.

What is checked: the node waits in ``rescue wait`` for the rescue ramdisk's agent,
which takes the password's hash and stops; the ramdisk leases the instance's own
tenant address (the NIC moved without a power cycle) and its SSH server takes
``rescue`` with that password — not a wrong one — and runs a command as root on the
rescued machine (its disk, its MAC); neither the password nor its hash is in the
server's log, the node's history or the console.  Unrescue boots the instance's disk
again: it leases its address and answers HTTP on port 80 from the same peer.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metalnic.lab import datacentre, netns, vm
from metalnic.lab.scenario import Stack
from tests.integration.conductor_helpers import audit_smartnic_order
from tests.ovslab import require_ovs, wait_until
from tests.support import free_port, require

SUBNET = "10.82.0.0/24"  # this module's provisioning subnet
HOST = "host1"
PASSWORD = "rsc-Vm-rescue-4821"

# Run inside the peer's namespace: log in with a password, run one command.
SSH = r"""
import json, socket, sys, time, paramiko
host, user, password, command = sys.argv[1:5]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
for attempt in range(10):  # a refused or unanswered connection is tried again
    try:
        client.connect(host, 22, user, password, timeout=20, banner_timeout=30,
                       auth_timeout=60, allow_agent=False, look_for_keys=False)
        break
    except paramiko.AuthenticationException as exc:
        print(json.dumps({"auth": False, "error": str(exc)})); sys.exit(0)
    except (OSError, paramiko.SSHException) as exc:
        if attempt == 9:
            raise
        time.sleep(2)
_, out, err = client.exec_command(command, timeout=60)
status = out.channel.recv_exit_status()
print(json.dumps({"auth": True, "status": status, "out": out.read().decode(),
                  "err": err.read().decode()}))
"""
HTTP = r"""
import sys, urllib.request
with urllib.request.urlopen(f"http://{sys.argv[1]}/", timeout=10) as r:
    print(r.read().decode())
"""


@dataclass
class Lab:
    stack: Stack
    desc: dict[str, Any]
    dir: Path
    tmp: Path

    @property
    def node_id(self) -> str:
        return self.stack.nodes[HOST]

    def node(self) -> dict[str, Any]:
        with self.stack.client() as c:
            return dict(c.get(f"/v1/nodes/{self.node_id}").json())

    def history(self) -> list[dict[str, Any]]:
        with self.stack.client() as c:
            return list(c.get(f"/v1/nodes/{self.node_id}/history").json()["history"])

    def console(self) -> str:
        host = next(h for h in self.desc["hosts"] if h["name"] == HOST)
        path = Path(host["vm"]["console"])
        return path.read_text(errors="replace") if path.exists() else ""

    def settled(self, state: str, timeout: float) -> dict[str, Any]:
        def done() -> bool:
            node = self.node()
            assert not node["provision_state"].endswith("failed"), node["last_error"]
            return bool(node["provision_state"] == state and node["reservation"] is None)

        wait_until(done, timeout, f"node-{HOST} {state}", step=1)
        return self.node()

    def verb(self, target: str, **extra: Any) -> None:
        with self.stack.client(self.stack.tenant_of(HOST)) as c:
            r = c.put(
                f"/v1/nodes/{self.node_id}/states/provision", json={"target": target, **extra}
            )
        assert r.status_code == 202, r.text

    def peer(self) -> str:
        """The tenant network's DHCP namespace: a peer on the host's tenant network."""
        with self.stack.client(self.stack.tenant_of(HOST)) as c:
            net = c.get("/network/v2.0/networks", params={"name": self.stack.tenant_of(HOST)})
        net_id = net.json()["networks"][0]["id"]
        names = [line.split()[0] for line in netns.run(["ip", "netns", "list"]).splitlines()]
        (ns,) = [n for n in names if n.endswith(f"dhcp-{net_id[:8]}")]
        return ns

    def in_peer(self, script: str, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            netns.in_ns(self.peer(), sys.executable, "-c", script, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_ovs()
    require(vm.available(), f"{vm.QEMU} (Debian: qemu-system-x86 seabios ipxe-qemu)")
    tmp = tmp_path_factory.mktemp("vmrsc")
    spec = datacentre.LabSpec(
        f"rsc{tmp.name[-3:]}", 1, 0, provisioning_subnet=SUBNET, api_port=free_port(), hosts="vm"
    )
    lab_dir = tmp / "lab"
    running: Stack | None = None
    try:
        desc = datacentre.up(spec, lab_dir)
        running = Stack(
            desc,
            tmp / "state",
            say=lambda line: print(line, flush=True),
            env={"METALNIC_RESCUE_CALLBACK_TIMEOUT": "300"},
        )
        running.start()
        running.enroll()
        running.drive([HOST], "manageable", {"enroll": "manage"}, "admin", 120)
        # Straight to available: cleaning is another test's (one PXE boot fewer).
        with sqlite3.connect(tmp / "state" / "metalnic.sqlite") as db:
            db.execute(
                "UPDATE nodes SET provision_state='available' WHERE uuid=?",
                (running.nodes[HOST],),
            )
        yield Lab(running, dict(desc), lab_dir, tmp)
    finally:
        if running is not None:
            running.stop()
        for log in lab_dir.glob("hosts/*/*.log"):
            target = tmp / "lab-logs" / log.relative_to(lab_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target)
        datacentre.teardown(spec.prefix, lab_dir)


def _open_ports(lab: Lab, *ports: int) -> None:
    """The tenant lets SSH and HTTP in through its default security group."""
    with lab.stack.client(lab.stack.tenant_of(HOST)) as c:
        groups = c.get("/network/v2.0/security-groups", params={"name": "default"}).json()
        group = groups["security_groups"][0]["id"]
        for port in ports:
            rule = {"security_group_id": group, "direction": "ingress", "protocol": "tcp",
                    "port_range_min": port, "port_range_max": port,
                    "remote_ip_prefix": "0.0.0.0/0"}  # fmt: skip
            r = c.post("/network/v2.0/security-group-rules", json={"security_group_rule": rule})
            assert r.status_code == 201, r.text


def _ssh(lab: Lab, ip: str, password: str, command: str) -> dict[str, Any]:
    return dict(json.loads(lab.in_peer(SSH, ip, "rescue", password, command)))


def test_rescue_login_over_ssh_then_unrescue(lab: Lab) -> None:
    stack = lab.stack
    stack.deploy([HOST], timeout=600)
    ip = stack.tenant_ip(HOST)
    _open_ports(lab, 22, 80)
    wait_until(lambda: HOST in lab.in_peer(HTTP, ip), 60, "the instance answers HTTP", step=2)
    mac = next(h for h in lab.desc["hosts"] if h["name"] == HOST)["mac"]
    start = len(lab.history())
    console_from = len(lab.console())

    began = time.monotonic()
    lab.verb("rescue", rescue_password=PASSWORD)
    lab.settled("rescue wait", 120)  # the rescue ramdisk boots; its agent will call
    rescued = lab.settled("rescue", 420)
    print(f"rescue took {time.monotonic() - began:.0f} s", flush=True)
    assert rescued["power_state"] == "power on" and rescued["last_error"] is None
    assert rescued["instance_info"].get("hashed_rescue_password") is None  # the agent has it

    def ssh_ready() -> bool:
        return "rescue: ready" in lab.console()[console_from:]

    wait_until(ssh_ready, 180, "the rescue ramdisk's SSH server", step=2)
    assert f"rescue: ready: ssh rescue@{ip}" in lab.console()[console_from:]
    refused = _ssh(lab, ip, "not-the-password", "true")
    assert refused["auth"] is False, refused
    logged_in = _ssh(lab, ip, PASSWORD, "id -u; ls /dev/vda; cat /sys/class/net/*/address")
    print(f"ssh rescue@{ip}: {logged_in}", flush=True)
    assert logged_in["auth"] is True and logged_in["status"] == 0, logged_in
    out = logged_in["out"].split()
    assert out[0] == "0" and out[1] == "/dev/vda" and mac.lower() in out[2:], out

    events = lab.history()[start:]
    texts = [e["event"] for e in events]
    steps = [t.removesuffix(": started") for t in texts if t.endswith(": started")]
    assert steps == [
        "detach tenant network",
        "attach rescuing network",
        "detach rescuing network",
        "attach tenant network",
    ], steps
    called = texts.index("ramdisk agent called back; handing it the rescue password (hashed)")
    assert not [t for t in texts[called:] if t.startswith("power ")], texts[called:]
    # The power rule: tenant → rescuing inside a BIOS hold, rescuing → tenant while the
    # rescue ramdisk runs (no BIOS hold, no power cycle).
    counts = audit_smartnic_order(events, running=True)
    assert counts["running_network"] == 2 and counts["bios_sessions"] == 1, counts

    lab.verb("unrescue")
    lab.settled("active", 300)
    wait_until(lambda: stack.instance_leased(HOST), 180, "the instance leased again", step=2)
    wait_until(lambda: HOST in lab.in_peer(HTTP, ip), 60, "the instance answers again", step=2)
    console = lab.console()[console_from:]
    assert "metalnic-instance" in console.split("rescue: ready", 1)[1]
    for text in (stack_log(lab), json.dumps(lab.history()), lab.console()):
        assert PASSWORD not in text
        assert "$6$" not in text  # no crypt hash either


def stack_log(lab: Lab) -> str:
    return "".join(p.read_text(errors="replace") for p in (lab.tmp / "state").glob("*.log"))
