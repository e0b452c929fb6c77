"""Test support for DHCPv6 and SLAAC on real parts: hosts behind a smart NIC running
``dhcpcd`` (Debian's ``dhcpcd-base``, dhcpcd 9), the network's dnsmasq run by a real
``metalnic dhcp-agent``, one network per IPv6 address mode.

dhcpcd keeps its DUID, leases and control sockets in fixed directories
(``/var/lib/dhcpcd``, ``/run/dhcpcd``); each client runs in a mount namespace of its
own (``unshare -m``) with a tmpfs on both, so clients in several host namespaces
do not share a DUID or a pid file.  Its hook is a script of ours (``script``), not
``dhcpcd-run-hooks``: nothing touches the machine's ``/etc/resolv.conf``; the
hook appends each event (``reason`` and the ``new_*`` variables) to a log file.
``slaac hwaddr``: the address a host forms from a prefix is its modified EUI-64
one, as Neutron's IPAM assumes (dhcpcd's default is RFC 7217 ``private``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from metalnic.dhcp import dnsmasq
from metalnic.dhcp.render import Files
from metalnic.lab import netns
from metalnic.lab.topology import Lab
from tests.dhcplab import ADMIN, AGENT, start_agents
from tests.ovslab import (
    AgentProcess,
    bind_port,
    new_lab,
    port_status,
    start_agent_server,
    wait_until,
)
from tests.support import Server, require

HOOK = """#!/bin/sh
env | grep -E '^(reason|new_dhcp6_[a-z0-9_]*)=' | sort | tr '\\n' ' ' >> "$0.events"
echo >> "$0.events"
"""

# network → (VLAN, CIDR, address and RA mode)
NETWORKS = {
    "stateful": (161, "2001:db8:a1::/64", "dhcpv6-stateful"),
    "slaac": (162, "2001:db8:a2::/64", "slaac"),
    "stateless": (163, "2001:db8:a3::/64", "dhcpv6-stateless"),
}
DNS = "2001:db8:53::53"  # the stateless (and stateful) subnets' name server
# host → (its network, MAC)
HOSTS = {
    "h1": ("stateful", "52:54:00:a6:00:01"),
    "h2": ("slaac", "52:54:00:a6:00:02"),
    "h3": ("stateless", "52:54:00:a6:00:03"),
    "h4": ("stateful", "52:54:00:a6:00:04"),  # the rogue
}


def require_dhcp6() -> None:
    require(os.geteuid() == 0, "root (network namespaces, Open vSwitch)")
    for tool in ("ovs-vswitchd", "dnsmasq", "dhcpcd", "unshare", "tcpdump"):
        require(
            shutil.which(tool) is not None,
            f"{tool} (Debian packages openvswitch-switch, dnsmasq-base, dhcpcd-base)",
        )


@dataclass
class Dhcpcd:
    """dhcpcd on a host namespace's interface, in the foreground, until ``stop``."""

    ns: str
    dev: str
    directory: Path
    stateful: bool
    extra: tuple[str, ...] = ()  # more dhcpcd.conf lines
    release: bool = True  # give the lease back when stopped (else it stays until it expires)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def hook(self) -> Path:
        return self.directory / f"{self.dev}-hook.sh"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.dev}-dhcpcd.log"

    def start(self) -> Dhcpcd:
        self.hook.write_text(HOOK)
        Path(f"{self.hook}.events").unlink(missing_ok=True)  # this client's events only
        self.hook.chmod(0o755)
        conf = self.directory / f"{self.dev}-dhcpcd.conf"
        lines = ["ipv6only", "duid", "slaac hwaddr", "option dhcp6_name_servers"]
        lines += ["ia_na"] if self.stateful else []
        lines += self.extra
        lines += ["release"] if self.release else []
        conf.write_text("\n".join([*lines, f"script {self.hook}", ""]))
        inner = (
            "mount -t tmpfs none /var/lib/dhcpcd && mkdir -p /run/dhcpcd && "
            "mount -t tmpfs none /run/dhcpcd && "
            f"exec dhcpcd -f {conf} -6 -B -d --noipv4 {self.dev}"
        )
        cmd = netns.in_ns(self.ns, "unshare", "-m", "sh", "-c", inner)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def events(self) -> list[dict[str, str]]:
        """Each hook run's variables (``reason``, ``new_dhcp6_*``)."""
        path = Path(f"{self.hook}.events")
        out = []
        for line in path.read_text().splitlines() if path.exists() else []:
            out.append(dict(part.split("=", 1) for part in line.split() if "=" in part))
        return out

    def addresses(self) -> list[str]:
        """The interface's global IPv6 addresses that passed duplicate address detection."""
        shown = subprocess.run(
            netns.in_ns(self.ns, "ip", "-6", "-j", "addr", "show", "dev", self.dev),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [
            a["local"]
            for link in json.loads(shown or "[]")
            for a in link.get("addr_info", [])
            if a.get("scope") == "global" and not a.get("tentative")
        ]

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@dataclass
class World6:
    server: Server
    lab: Lab
    nic_agent: AgentProcess
    dhcp_agent: AgentProcess
    nets: dict[str, str]  # NETWORKS key → network id
    subnets: dict[str, dict[str, Any]]  # NETWORKS key → subnet
    ports: dict[str, dict[str, Any]]  # host → its port
    clients: list[Dhcpcd] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=ADMIN, timeout=30)

    def dev(self, host: str) -> str:
        return self.lab.state.hosts[host].port_a

    def dhcpcd(self, host: str, stateful: bool, *extra: str, release: bool = True) -> Dhcpcd:
        """A fresh dhcpcd on ``host`` (one it runs already is stopped first), with a
        DUID of its own (as firmware, iPXE and the ramdisk each have)."""
        for running in [c for c in self.clients if c.ns == self.lab.ns(host)]:
            running.stop()
            self.clients.remove(running)
        made = Dhcpcd(self.lab.ns(host), self.dev(host), self.lab.dir, stateful, extra, release)
        self.clients.append(made.start())
        return made

    def dhcp_files(self, net: str) -> Files:
        return Files(self.lab.dhcp_state_dir() / self.nets[net])

    def dhcp_ns(self, net: str) -> str:
        return f"{self.lab.prefix}-dhcp-{self.nets[net][:8]}"

    def dhcp_port_ip(self, net: str) -> str:
        """The network's DHCP port's address on its IPv6 subnet (in dnsmasq's namespace)."""
        with self.client() as c:
            found = c.get(
                "/network/v2.0/ports",
                params={"network_id": self.nets[net], "device_owner": "network:dhcp"},
            ).json()["ports"]
        assert len(found) == 1, found
        return str(found[0]["fixed_ips"][0]["ip_address"])

    def v6_ip(self, host: str) -> str:
        net = HOSTS[host][0]
        ips = [f["ip_address"] for f in self.ports[host]["fixed_ips"]]
        got = [ip for ip in ips if ip.startswith(NETWORKS[net][1].split("::")[0] + ":")]
        assert len(got) == 1, self.ports[host]
        return str(got[0])

    def sh(self, host: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(netns.in_ns(self.lab.ns(host), *cmd), capture_output=True, text=True)
        if check:
            assert done.returncode == 0, (cmd, done.stdout, done.stderr)
        return done


def _network(c: httpx.Client, key: str) -> tuple[str, dict[str, Any]]:
    vlan, cidr, mode = NETWORKS[key]
    body = {
        "name": f"v6-{key}",
        "provider:network_type": "vlan",
        "provider:physical_network": "physnet1",
        "provider:segmentation_id": vlan,
    }
    net = c.post("/network/v2.0/networks", json={"network": body})
    assert net.status_code == 201, net.text
    net_id = str(net.json()["network"]["id"])
    subnet = {
        "network_id": net_id,
        "cidr": cidr,
        "ip_version": 6,
        "ipv6_address_mode": mode,
        "ipv6_ra_mode": mode,
        "dns_nameservers": [DNS],
    }
    sub = c.post("/network/v2.0/subnets", json={"subnet": subnet})
    assert sub.status_code == 201, sub.text
    return net_id, dict(sub.json()["subnet"])


def _open_group(c: httpx.Client) -> str:
    """A security group that lets everything through: only anti-spoofing filters."""
    sg = c.post("/network/v2.0/security-groups", json={"security_group": {"name": "v6-open"}})
    assert sg.status_code == 201, sg.text
    sg_id = str(sg.json()["security_group"]["id"])
    for direction in ("ingress", "egress"):
        for ethertype in ("IPv4", "IPv6"):
            rule = {"security_group_id": sg_id, "direction": direction, "ethertype": ethertype}
            r = c.post("/network/v2.0/security-group-rules", json={"security_group_rule": rule})
            assert r.status_code in (201, 409), r.text  # (409: the default egress rules)
    return sg_id


def _enable_ipv6(lab: Lab, host: str) -> None:
    """The lab turns IPv6 off in its namespaces; these hosts use it."""
    dev = lab.state.hosts[host].port_a
    for key in ("all", "default", dev):
        netns.run(netns.in_ns(lab.ns(host), "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=0"))


@contextmanager
def dhcp6_world(tmp: Path) -> Iterator[World6]:
    """Server, NIC agent, DHCP agent, one network per IPv6 mode, hosts h1…h4 behind nic1."""
    server, password = start_agent_server(tmp, ADMIN, AGENT, nic_hosts=["nic1"])
    lab = new_lab("hv6")
    vlans = [v for v, _, _ in NETWORKS.values()]
    nic_agent = dhcp_agent = None
    world: World6 | None = None
    try:
        lab.add_fabric([])
        lab.add_nic("nic1", vlans)
        lab.add_dhcp_node(vlans)
        for host, (_, mac) in HOSTS.items():
            lab.add_host(host, "nic1", mac, None)
            _enable_ipv6(lab, host)
        nic_agent, dhcp_agent = start_agents(tmp, server, password, lab)
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            sg_id = _open_group(c)
            made = {key: _network(c, key) for key in NETWORKS}
            nets = {key: net_id for key, (net_id, _) in made.items()}
            subnets = {key: sub for key, (_, sub) in made.items()}
            ports = {
                host: bind_port(c, nets[net], "nic1", lab.state.hosts[host].port_b, mac, [sg_id])
                for host, (net, mac) in HOSTS.items()
            }
            for port in ports.values():
                wait_until(
                    lambda p=port: port_status(c, p["id"])["status"] == "ACTIVE",
                    20,
                    f"port {port['id']} ACTIVE",
                )
        built = World6(server, lab, nic_agent, dhcp_agent, nets, subnets, ports)
        world = built
        agent_log = dhcp_agent.log
        for key in NETWORKS:

            def serving(net: str = key) -> bool:
                return dnsmasq.running(built.dhcp_files(net)) is not None

            wait_until(serving, 20, f"dnsmasq of network {key}",
                       show=lambda: agent_log.read_text()[-2000:])  # fmt: skip
        yield world
    finally:
        for client in world.clients if world is not None else []:
            client.stop()
        for proc in (dhcp_agent, nic_agent):
            if proc is not None:
                proc.stop()
        lab.down()
        server.stop()
