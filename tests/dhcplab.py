"""Test support for DHCP on real parts: an OVS instance for the DHCP bridge, hosts as
namespaces running ``busybox udhcpc``, and desired states built from the contract.

The hosts run the lab's own DHCP client (``metalnic.lab.dhcpclient``: udhcpc and
the script that configures each lease and logs every event to a file the tests
read).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from metalnic.contract import dhcp as dc
from metalnic.dhcp import dnsmasq
from metalnic.dhcp.render import Files
from metalnic.lab import dhcpclient, netns
from metalnic.lab.topology import Lab
from tests.ovslab import (
    AgentProcess,
    bind_port,
    local_agent_config,
    new_lab,
    port_status,
    require_root_tools,
    start_agent_server,
    wait_until,
)
from tests.support import Server


def require_dhcp() -> None:
    require_root_tools(
        ("ovs-vswitchd", "dnsmasq", "busybox", "ip", "ethtool"),
        "openvswitch-switch, dnsmasq-base, busybox-static",
    )


udhcpc_script = dhcpclient.write_script


@dataclass
class Client:
    """A udhcpc on a host namespace's interface."""

    ns: str
    dev: str
    log: Path
    script: Path
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return dhcpclient.environment(self.log)

    def once(self, timeout: int = 3, *extra: str) -> tuple[str | None, float]:
        """One DISCOVER → ACK exchange (udhcpc -q): the address got (None) and seconds;
        ``extra``: more udhcpc arguments (``-O bootfile`` asks for option 67)."""
        began = time.monotonic()
        cmd = netns.in_ns(
            self.ns, *dhcpclient.command(self.dev, self.script, "-q", "-n", *extra, tries=timeout)
        )
        done = subprocess.run(cmd, capture_output=True, env=self.env(), timeout=timeout * 3 + 10)
        took = time.monotonic() - began
        bound = [line for line in self.events() if line.startswith("bound ")]
        if done.returncode != 0 or not bound:
            return None, took
        return bound[-1].split()[1], took

    def follow(self) -> None:
        """udhcpc kept running (renewals on SIGUSR1)."""
        cmd = netns.in_ns(self.ns, *dhcpclient.command(self.dev, self.script, tries=5))
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


def dhcp_agent_process(directory: Path, config: str) -> AgentProcess:
    """``metalnic dhcp-agent --config …`` as a child process."""
    return AgentProcess(directory, "dhcp-agent", config, command="dhcp-agent")


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


ADMIN = ("admin", "admin-secret-1")
AGENT = ("rack-agent", "agent-secret-2")
CIDR = "10.90.0.0/24"
MACS = {"h1": "52:54:00:90:00:01", "h2": "52:54:00:90:00:02", "h3": "52:54:00:90:00:03"}


@dataclass
class World:
    server: Server
    lab: Lab
    nic_agent: AgentProcess
    dhcp_agent: AgentProcess
    nets: dict[str, str]  # A/B → network id
    ports: dict[str, dict[str, Any]]  # host → its network port
    script: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, auth=ADMIN, timeout=30)

    def udhcpc(self, host: str, tag: str = "") -> Client:
        log = self.lab.dir / f"{host}{tag}.events"
        return Client(self.lab.ns(host), self.lab.state.hosts[host].port_a, log, self.script)

    def dhcp_files(self, net: str) -> Files:
        return Files(self.lab.dhcp_state_dir() / self.nets[net])


def _network(c: httpx.Client, name: str, vlan: int) -> str:
    body = {
        "name": name,
        "provider:network_type": "vlan",
        "provider:physical_network": "physnet1",
        "provider:segmentation_id": vlan,
    }
    net = c.post("/network/v2.0/networks", json={"network": body})
    assert net.status_code == 201, net.text
    net_id = str(net.json()["network"]["id"])
    sub = c.post(
        "/network/v2.0/subnets",
        json={"subnet": {"network_id": net_id, "cidr": CIDR, "ip_version": 4}},
    )
    assert sub.status_code == 201, sub.text
    return net_id


def start_agents(
    tmp: Path, server: Server, password: Path, lab: Lab
) -> tuple[AgentProcess, AgentProcess]:
    """nic1's agent and the DHCP agent as processes, both seen alive by the server (if
    that fails, whichever was started is stopped again)."""
    nic_agent = AgentProcess(
        tmp, "nic1", local_agent_config(server, lab, "nic1", AGENT[0], password)
    )
    nic_agent.start()
    dhcp_agent = None
    try:
        dhcp_agent = dhcp_agent_process(tmp, dhcp_agent_config(server.url, AGENT[0], password, lab))
        dhcp_agent.start()
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            wait_until(
                lambda: alive(c, "DHCP agent") and alive(c, "Open vSwitch agent"),
                20,
                "both agents alive",
            )
    except BaseException:
        for started in (dhcp_agent, nic_agent):
            if started is not None:
                started.stop()
        raise
    return nic_agent, dhcp_agent


@contextmanager
def fabric_world(tmp: Path) -> Iterator[World]:
    """The end-to-end DHCP world (``tests/root/test_dhcp_agent.py`` describes it)."""
    server, password = start_agent_server(tmp, ADMIN, AGENT, nic_hosts=["nic1"])
    lab = new_lab("dh")
    nic_agent = dhcp_agent = None
    try:
        lab.add_fabric([])
        lab.add_nic("nic1", [101, 102])
        lab.add_dhcp_node([101, 102])
        for host in MACS:
            lab.add_host(host, "nic1", MACS[host], None)
        nic_agent, dhcp_agent = start_agents(tmp, server, password, lab)
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            # The hosts' group has no ingress rule at all: the NIC admits the replies of
            # each port's DHCP servers by itself (anti-spoofing), whatever the group says.
            sg = c.post(
                "/network/v2.0/security-groups", json={"security_group": {"name": "dhcp-client"}}
            ).json()
            sg_id = sg["security_group"]["id"]
            rules = c.get(
                "/network/v2.0/security-group-rules", params={"security_group_id": sg_id}
            ).json()["security_group_rules"]
            assert not [r for r in rules if r["direction"] == "ingress"], rules
            nets = {"A": _network(c, "dhcp-a", 101), "B": _network(c, "dhcp-b", 102)}
            ports = {
                "h1": bind_port(
                    c, nets["A"], "nic1", lab.state.hosts["h1"].port_b, MACS["h1"], [sg_id]
                ),
                "h2": bind_port(
                    c, nets["B"], "nic1", lab.state.hosts["h2"].port_b, MACS["h2"], [sg_id]
                ),
                # h3's port has another MAC than h3 uses (and no port security, so the
                # NIC lets h3's frames out): dnsmasq must not know h3.
                "h3": bind_port(
                    c,
                    nets["A"],
                    "nic1",
                    lab.state.hosts["h3"].port_b,
                    "52:54:00:90:0f:03",
                    port_security_enabled=False,
                ),
            }
            for port in ports.values():
                wait_until(
                    lambda p=port: port_status(c, p["id"])["status"] == "ACTIVE",
                    20,
                    f"port {port['id']} ACTIVE",
                )
        world = World(server, lab, nic_agent, dhcp_agent, nets, ports, udhcpc_script(lab.dir))
        for net in ("A", "B"):
            wait_until(
                lambda n=net: dnsmasq.running(world.dhcp_files(n)) is not None,
                20,
                f"dnsmasq of network {net}",
                show=lambda: dhcp_agent.log.read_text()[-2000:],
            )
        yield world
    finally:
        for proc in (dhcp_agent, nic_agent):
            if proc is not None:
                proc.stop()
        lab.down()
        server.stop()


def alive(c: httpx.Client, agent_type: str) -> bool:
    found = c.get("/network/v2.0/agents", params={"agent_type": agent_type}).json()["agents"]
    return bool(found) and all(a["alive"] for a in found)
