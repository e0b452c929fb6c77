"""Test support for DHCP on real parts: an OVS instance for the DHCP bridge, hosts as
namespaces running ``busybox udhcpc``, and desired states built from the contract.

The udhcpc script configures the lease on the host's interface (so a renewal,
unicast to the server, leaves from the leased address) and appends every
event (``bound``/``renew``/``deconfig``/``leasefail``) with its address to a
log file the tests read.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from metalnic.contract import dhcp as dc
from metalnic.lab import netns
from metalnic.lab.topology import Lab
from tests.support import VENV_BIN, require

SCRIPT = """#!/bin/sh
echo "$1 ${ip:-} ${router:-} ${subnet:-} ${serverid:-}" >> "$UDHCPC_LOG"
case "$1" in
  bound|renew)
    ip addr flush dev "$interface" scope global
    ip addr add "$ip/${mask:-24}" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" scope global ;;
esac
"""


def require_dhcp() -> None:
    require(os.geteuid() == 0, "root (network namespaces, Open vSwitch)")
    for tool in ("ovs-vswitchd", "dnsmasq", "busybox", "ip", "ethtool"):
        require(
            shutil.which(tool) is not None,
            f"{tool} (Debian packages openvswitch-switch, dnsmasq-base, busybox-static)",
        )


def udhcpc_script(directory: Path) -> Path:
    script = directory / "udhcpc.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return script


@dataclass
class Client:
    """A udhcpc on a host namespace's interface."""

    ns: str
    dev: str
    log: Path
    script: Path
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "UDHCPC_LOG": str(self.log)}

    def once(self, timeout: int = 3) -> tuple[str | None, float]:
        """One DISCOVER → ACK exchange (udhcpc -q): the address got (None) and seconds."""
        began = time.monotonic()
        cmd = netns.in_ns(
            self.ns,
            "busybox",
            "udhcpc",
            "-i",
            self.dev,
            "-f",
            "-q",
            "-n",
            "-t",
            str(timeout),
            "-T",
            "1",
            "-A",
            "1",
            "-s",
            str(self.script),
        )
        done = subprocess.run(cmd, capture_output=True, env=self.env(), timeout=timeout * 3 + 10)
        took = time.monotonic() - began
        bound = [line for line in self.events() if line.startswith("bound ")]
        if done.returncode != 0 or not bound:
            return None, took
        return bound[-1].split()[1], took

    def follow(self) -> None:
        """udhcpc kept running (renewals on SIGUSR1)."""
        cmd = netns.in_ns(
            self.ns,
            "busybox",
            "udhcpc",
            "-i",
            self.dev,
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            str(self.script),
        )
        self.proc = subprocess.Popen(
            cmd, env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def renew(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)

    def events(self) -> list[str]:
        try:
            return self.log.read_text().splitlines()
        except OSError:
            return []


def host_on_bridge(
    prefix: str, name: str, mac: str, ovs_ns: str, vsctl_db: str, bridge: str, vlan: int | None
) -> str:
    """A host namespace ``<prefix>-<name>`` whose ``eth0`` is an access port of ``bridge``."""
    ns = f"{prefix}-{name}"
    netns.add(ns)
    outer = f"{prefix}{name}o"[:15]
    netns.veth("eth0", ns, outer, ovs_ns)
    netns.run(netns.in_ns(ns, "ip", "link", "set", "eth0", "address", mac))
    netns.run(netns.in_ns(ns, "ethtool", "-K", "eth0", "tx", "off"))
    tag = [f"tag={vlan}"] if vlan is not None else ["trunks=0"]
    netns.run(
        [
            "ovs-vsctl",
            f"--db={vsctl_db}",
            "add-port",
            bridge,
            outer,
            "--",
            "set",
            "Port",
            outer,
            *tag,
        ]
    )
    return ns


def network(
    net_id: str,
    vlan: int | None,
    cidr: str,
    dhcp_mac: str,
    dhcp_ip: str,
    hosts: list[tuple[str, str, str]],
    opts: dict[str, list[dc.DhcpOption]] | None = None,
    gateway: str | None = None,
) -> dc.DhcpNetwork:
    """A network as the server would describe it: one IPv4 subnet, its DHCP port and
    ``hosts`` as (port id, MAC, IP)."""
    subnet = f"sub-{net_id}"
    return dc.DhcpNetwork(
        id=net_id,
        network_type="vlan" if vlan is not None else "flat",
        physical_network="physnet1",
        segmentation_id=vlan,
        subnets=[dc.DhcpSubnet(id=subnet, cidr=cidr, ip_version=4, gateway_ip=gateway)],
        port=dc.DhcpPort(
            id=f"dhcp-{net_id}",
            mac_address=dhcp_mac,
            fixed_ips=[dc.FixedIp(subnet_id=subnet, ip_address=dhcp_ip)],
        ),
        hosts=[
            dc.DhcpHost(
                port_id=port,
                mac_address=mac,
                fixed_ips=[dc.FixedIp(subnet_id=subnet, ip_address=ip)],
                hostname="host-" + ip.replace(".", "-"),
                extra_dhcp_opts=(opts or {}).get(port, []),
            )
            for port, mac, ip in hosts
        ],
    )


class DhcpAgentProcess:
    """``metalnic dhcp-agent --config …`` as a child process."""

    def __init__(self, directory: Path, config: str) -> None:
        self.path = directory / "dhcp-agent.toml"
        self.path.write_text(config)
        self.log = directory / "dhcp-agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(VENV_BIN / "metalnic"),
                    "dhcp-agent",
                    "--config",
                    str(self.path),
                    "--log-level",
                    "debug",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def dhcp_agent_config(
    server_url: str, user: str, password_file: Path, lab: Lab, host: str = "netnode"
) -> str:
    node = lab.ovs("dhcp")
    return (
        f'server = "{server_url}"\n'
        f'username = "{user}"\n'
        f'password_file = "{password_file}"\n'
        f'host = "{host}"\n'
        f'ovsdb = "{node.db}"\n'
        f'ovs_namespace = "{lab.ns("dhcp")}"\n'
        'datapath_type = "netdev"\n'
        'bridge_mappings = { physnet1 = "br-dhcp" }\n'
        f'state_dir = "{lab.dhcp_state_dir()}"\n'
        f'prefix = "{lab.prefix}-"\n'
        "lease_duration = 120\n"
        "resync_interval = 1.0\n"
        "heartbeat_interval = 0.5\n"
    )
