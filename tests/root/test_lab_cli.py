"""``metalnic lab up|status|down`` as a user runs it: idempotent, repairs a broken lab,
and ``down`` removes everything it made (namespaces, links, daemons, files) and no more."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from metalnic.agent.sshchannel import SshChannel, SshTarget
from metalnic.lab import netns, sshd
from metalnic.lab.datacentre import LabSpec, alive_pid
from tests.ovslab import require_ovs, wait_until
from tests.support import VENV_BIN


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "lab", *args], capture_output=True, text=True, timeout=300
    )


def root_links(prefix: str) -> list[str]:
    out = netns.run(["ip", "-o", "link", "show"])
    return [
        line.split(":")[1].strip()
        for line in out.splitlines()
        if line.split(":")[1].strip().startswith(f"{prefix}-")
    ]


def test_lab_up_status_down() -> None:
    require_ovs()
    name = f"t{os.getpid() % 100000}"
    prefix = LabSpec(name).prefix
    directory = Path(tempfile.mkdtemp(prefix="metalnic-labcli-")) / name
    where = ["--name", name, "--dir", str(directory)]
    # Not ours, though its name starts like ours: `down` must leave it.  (Other labs'
    # namespaces cannot be the check — their owners may remove them meanwhile.)
    decoy = f"{prefix}x-not-ours"
    netns.add(decoy)
    try:
        r = lab(
            "up", *where, "--local-nics", "1", "--remote-nics", "1", "--json",
            "--provisioning-subnet", "10.95.0.0/24",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        desc = json.loads(r.stdout)
        assert [n["mode"] for n in desc["nics"]] == ["local", "remote"]
        assert desc["nics"][1]["ovsdb"].startswith("ssl:127.0.0.1:")
        assert "BEGIN CERTIFICATE" in desc["nics"][1]["ovsdb_cert"]
        assert oct((directory / "certs" / "agent-key.pem").stat().st_mode & 0o777) == "0o600"
        sshd_pid = _remote_nic_answers_over_ssh(directory, desc, r.stdout + r.stderr)
        spaces = set(netns.list_ns(f"{prefix}-"))
        assert {
            f"{prefix}-fab",
            f"{prefix}-nic1",
            f"{prefix}-nic2",
            f"{prefix}-host1",
            f"{prefix}-host2",
        } <= spaces
        # A host whose NIC port is not programmed reaches nothing, not even the
        # provisioning network: port B is not on any bridge yet.
        host = desc["hosts"][0]
        netns.run(
            netns.in_ns(host["netns"], "ip", "addr", "add", "10.95.0.50/24", "dev", host["port_a"])
        )
        assert desc["provisioning"]["server_ip"] == "10.95.0.1"
        assert desc["provisioning"]["pool"] == ["10.95.0.10", "10.95.0.254"]
        ping = subprocess.run(
            netns.in_ns(
                host["netns"], "ping", "-c", "1", "-W", "1", desc["provisioning"]["server_ip"]
            ),
            capture_output=True,
        )
        assert ping.returncode != 0
        assert lab("status", *where).returncode == 0
        # The BMC: one Redfish system per host, behind a generated password that is
        # in a 0600 file and nowhere in what `lab up` printed.
        bmc = desc["bmc"]
        password = Path(bmc["password_file"]).read_text().strip()
        assert password not in r.stdout and password not in r.stderr
        assert oct(Path(bmc["password_file"]).stat().st_mode & 0o777) == "0o600"
        systems = httpx.get(
            bmc["url"] + "/redfish/v1/Systems", auth=(bmc["username"], password), timeout=10
        ).json()["Members"]
        assert [h["bmc"] for h in desc["hosts"]] == ["redfish", "ipmi"]
        assert sorted(m["@odata.id"] for m in systems) == [desc["hosts"][0]["redfish_system_id"]]
        ipmi = desc["hosts"][1]
        power = subprocess.run(
            [
                "ipmitool",
                "-I",
                "lanplus",
                "-H",
                ipmi["ipmi_address"],
                "-p",
                str(ipmi["ipmi_port"]),
                "-U",
                bmc["username"],
                "-f",
                bmc["password_file"],
                "chassis",
                "power",
                "status",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert power.returncode == 0 and "Chassis Power is off" in power.stdout, power.stderr
        ipmi_pid = int((directory / "bmc" / "ipmi.pid").read_text())
        hosts_pid = int((directory / "hosts.pid").read_text())
        _host_follows_its_bmc(directory, desc, ipmi, bmc)
        image = httpx.get(desc["images"]["url"], timeout=10)
        assert hashlib.sha256(image.content).hexdigest() == desc["images"]["sha256"]
        assert httpx.get(bmc["url"] + "/redfish/v1/Systems", timeout=10).status_code == 401
        bmc_pid = int((directory / "bmc" / "emulator.pid").read_text())
        again = lab("up", *where)
        assert again.returncode == 0 and "already up" in again.stdout
        # Break it (stop one NIC's switch, ours): status says so, up repairs it.
        pid = int((directory / "nic1" / "ovs-vswitchd.pid").read_text())
        netns.run(["ovs-appctl", "-t", str(directory / "nic1" / "ovs-vswitchd.ctl"), "exit"])
        status = lab("status", *where)
        assert status.returncode == 1 and "ovs-vswitchd of nic1 is not running" in status.stdout
        repaired = lab("up", *where)
        assert repaired.returncode == 0 and "already up" not in repaired.stdout, repaired.stderr
        assert lab("status", *where).returncode == 0
        assert int((directory / "nic1" / "ovs-vswitchd.pid").read_text()) != pid
    finally:
        down = lab("down", *where)
        survived = decoy in netns.list_ns(decoy)
        netns.delete(decoy)
    assert down.returncode == 0, down.stderr
    assert survived, f"`down` removed {decoy}, which is not its lab's"
    assert netns.list_ns(f"{prefix}-") == [] and root_links(prefix) == []
    assert not directory.exists()
    assert not alive_pid(bmc_pid) and not alive_pid(ipmi_pid)  # the BMCs (ours) are gone too
    assert not alive_pid(hosts_pid)  # and the host simulators
    assert not alive_pid(sshd_pid)  # and the remote NIC's SSH server
    assert lab("down", *where).returncode == 0  # again: nothing to do, no error
    assert lab("status", *where).returncode == 3


def _remote_nic_answers_over_ssh(directory: Path, desc: dict[str, Any], printed: str) -> int:
    """The remote NIC's sshd presents the host key its description (and so its bare-metal
    port) has, lets the agent's key in, and tells the lab's boot id; its private halves
    are 0600 files, printed nowhere.  The pid of that sshd."""
    nic = desc["nics"][1]
    ssh, key_file = nic["ssh"], desc["agent_tls"]["ssh_private_key"]
    for secret in (Path(key_file), directory / "certs" / "nic2-ssh-host-key"):
        assert oct(secret.stat().st_mode & 0o777) == "0o600"
        assert secret.read_text().strip() not in printed
    assert "PRIVATE KEY" not in printed
    channel = SshChannel(SshTarget(ssh["address"], ssh["port"], ssh["user"]), key_file)
    try:
        facts = channel.read(nic["ssh_public_key"])
    finally:
        channel.close()
    assert facts.boot_id == Path(ssh["boot_id_file"]).read_text().strip()
    assert nic["uplink"] in facts.netdevs  # read in the NIC's namespace
    pid = sshd.pid(directory / "nic2")
    assert pid is not None
    return pid


def _ipmitool(host: dict[str, object], bmc: dict[str, str], *cmd: str) -> None:
    subprocess.run(
        ["ipmitool", "-I", "lanplus", "-H", str(host["ipmi_address"]), "-p",
         str(host["ipmi_port"]), "-U", bmc["username"], "-f", bmc["password_file"], *cmd],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip


def _host_follows_its_bmc(
    directory: Path, desc: dict[str, object], host: dict[str, object], bmc: dict[str, str]
) -> None:
    """The host simulator does what the BMC says: BIOS → silent, PXE → the firmware's
    DHCP client in the host's namespace (nobody answers: no server in this lab), off →
    nothing."""
    events = directory / "hosts" / str(host["name"]) / "events.log"

    def last() -> str:
        lines = events.read_text().splitlines() if events.exists() else []
        return lines[-1].split(" ", 1)[1] if lines else ""

    def dhcp_pid() -> int:
        return int((directory / "hosts" / str(host["name"]) / "dhcp.pid").read_text())

    wait_until(lambda: last() == "off powered off", 10, "the host seen off", show=last)
    _ipmitool(host, bmc, "chassis", "bootdev", "bios")
    _ipmitool(host, bmc, "chassis", "power", "on")
    wait_until(lambda: last().startswith("bios"), 10, "the host in BIOS", show=last)
    addresses = netns.run(netns.in_ns(str(host["netns"]), "ip", "-4", "-o", "addr"))
    assert "10.95.0." not in addresses  # silent: no address at all
    assert not (directory / "hosts" / str(host["name"]) / "dhcp.pid").exists()
    _ipmitool(host, bmc, "chassis", "power", "off")
    _ipmitool(host, bmc, "chassis", "bootdev", "pxe")
    _ipmitool(host, bmc, "chassis", "power", "on")
    wait_until(lambda: last().startswith("pxe firmware PXE: DHCP"), 10, "PXE", show=last)
    pid = dhcp_pid()
    assert alive_pid(pid)
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    # Nobody answers (no metalnic here): it keeps asking, and says so once.
    wait_until(lambda: "no DHCP lease yet" in last(), 15, "the DHCP client asking", show=last)
    assert alive_pid(pid)
    _ipmitool(host, bmc, "chassis", "power", "off")
    # A real host is dark the instant its power drops: here, by the time the BMC answers.
    assert last() == "off powered off" and not alive_pid(pid), last()
