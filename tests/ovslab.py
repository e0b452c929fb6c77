"""Test support for the agent on real Open vSwitch: a lab, agents as processes, packets.

Two smart NICs (each its own ovsdb-server + ovs-vswitchd in a namespace,
userspace datapath), a trunking fabric, and hosts as namespaces on veth pairs.
Agents run as real ``metalnic agent`` processes against a real server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from metalnic.lab import netns
from metalnic.lab.topology import Lab
from tests.support import VENV_BIN, Server, User, require, start_with_users


def require_ovs() -> None:
    require_root_tools(
        ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ip", "ethtool"),
        "openvswitch-switch, iproute2, ethtool",
    )


def require_root_tools(tools: Iterable[str], packages: str) -> None:
    """Root and each of ``tools`` (from the Debian ``packages``), or the test is skipped."""
    require(os.geteuid() == 0, "root (network namespaces, Open vSwitch)")
    for tool in tools:
        require(shutil.which(tool) is not None, f"{tool} (Debian packages {packages})")


def new_lab(tag: str) -> Lab:
    """A lab with a prefix unique to this process (``down`` of a crashed run is safe)."""
    prefix = f"{tag}{os.getpid() % 10000}"[:6]
    directory = Path(tempfile.mkdtemp(prefix=f"metalnic-lab-{prefix}-"))
    return Lab(prefix, directory)


def start_agent_server(
    tmp: Path,
    admin: tuple[str, str],
    agent: tuple[str, str],
    env: dict[str, str] | None = None,
    nic_hosts: Iterable[str] = (),
) -> tuple[Server, Path]:
    """A server with http_basic: ``admin`` (project ops) and an agent user, granted
    ``nic_hosts`` in the users file, whose password is in the returned file (what an
    agent config's ``password_file`` names)."""
    users = [User(*admin, "admin", "ops"), User(*agent, "agent", nic_hosts=nic_hosts)]
    password_file = tmp / "agent.password"
    password_file.write_text(agent[1] + "\n")
    return start_with_users(tmp, users, env=env), password_file


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    step: float = 0.05,
    show: Callable[[], object] | None = None,
) -> float:
    """Seconds it took; fails the test with ``what`` (and ``show()``) after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic() - began
        time.sleep(step)
    raise AssertionError(f"{what} within {timeout}s" + (f": {show()}" if show else ""))


def ping(lab: Lab, src: str, dst_ip: str, count: int = 1, wait: float = 1.0) -> bool:
    cmd = netns.in_ns(lab.ns(src), "ping", "-n", "-q", "-c", str(count), "-W", str(wait), dst_ip)
    return subprocess.run(cmd, capture_output=True).returncode == 0


def tcp(lab: Lab, src: str, dst: str, dst_ip: str, port: int, timeout: float = 1.5) -> bool:
    """A real TCP connection from ``src`` to a one-shot listener in ``dst``."""
    server = subprocess.Popen(
        netns.in_ns(
            lab.ns(dst),
            sys.executable,
            "-c",
            "import socket,sys\n"
            "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            f"s.bind(('{dst_ip}',{port}));s.listen(1);print('ready',flush=True)\n"
            f"s.settimeout({timeout + 2})\n"
            "c,_=s.accept();c.sendall(b'ok:'+c.recv(16));c.close()",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            netns.in_ns(
                lab.ns(src),
                sys.executable,
                "-c",
                f"import socket;c=socket.create_connection(('{dst_ip}',{port}),timeout={timeout})\n"
                "c.sendall(b'hi');print(c.recv(16).decode())",
            ),
            capture_output=True,
            text=True,
            timeout=timeout + 5,
        )
        return client.returncode == 0 and "ok:hi" in client.stdout
    finally:
        server.kill()
        server.wait()


class AgentProcess:
    """``metalnic agent --config …`` (or another agent ``command``, ``dhcp-agent``) as a
    child process; its config in ``<name>.toml``, its output in ``<name>.log``."""

    def __init__(self, directory: Path, name: str, config: str, command: str = "agent") -> None:
        self.path = directory / f"{name}.toml"
        self.path.write_text(config)
        self.log = directory / f"{name}.log"
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(VENV_BIN / "metalnic"),
                    self.command,
                    "--config",
                    str(self.path),
                    "--log-level",
                    "debug",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def local_agent_config(
    server: Server, lab: Lab, nic: str, user: str, password_file: Path, resync: float = 1.0
) -> str:
    ovs = lab.ovs(nic)
    return (
        f'server = "{server.url}"\n'
        f'username = "{user}"\n'
        f'password_file = "{password_file}"\n'
        'mode = "local"\n'
        'datapath_type = "netdev"\n'
        f"resync_interval = {resync}\n"
        "heartbeat_interval = 0.5\n"
        f'host = "agent-{nic}"\n'
        f"[nics.{nic}]\n"
        f'ovsdb = "{ovs.db}"\n'
        f'openflow = {{ br-int = "{ovs.mgmt("br-int")}", br-phys = "{ovs.mgmt("br-phys")}" }}\n'
        'bridge_mappings = { physnet1 = "br-phys" }\n'
    )


def bind_port(
    c: httpx.Client,
    network_id: str,
    host: str,
    port_b: str,
    mac: str,
    security_groups: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A smart-nic network port bound to NIC ``host`` at ``port_b`` (as the conductor makes)."""
    body: dict[str, Any] = {
        "network_id": network_id,
        "mac_address": mac,
        "binding:vnic_type": "smart-nic",
        "binding:host_id": host,
        "binding:profile": {"local_link_information": [{"hostname": host, "port_id": port_b}]},
        "device_owner": "baremetal:none",
        **extra,
    }
    if security_groups is not None:
        body["security_groups"] = security_groups
    r = c.post("/network/v2.0/ports", json={"port": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["port"])


def port_b_tag(lab: dict[str, Any], host: dict[str, Any]) -> str:
    """The VLAN tag of a lab host's port B on its NIC's br-int, read from the NIC's own
    OVSDB: "" when no agent plugged it, 4095 when parked. A remote NIC's OVSDB-SSL
    remote wants the agent's client certificate, so the test reads that NIC's OVS the
    way its own operator would, through the unix socket in the NIC's lab directory."""
    nic = next(n for n in lab["nics"] if n["name"] == host["nic"])
    db = nic["ovsdb"] if nic["mode"] == "local" else f"unix:{lab['dir']}/{nic['name']}/db.sock"
    cmd = ["ovs-vsctl", f"--db={db}", "--if-exists", "get", "Port", host["port_b"], "tag"]
    return netns.run(cmd).strip()


def port_status(c: httpx.Client, port_id: str) -> dict[str, Any]:
    return dict(c.get(f"/network/v2.0/ports/{port_id}").json()["port"])
