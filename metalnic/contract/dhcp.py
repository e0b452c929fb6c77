"""The DHCP agent contract: what the server and its DHCP agents say to each other over HTTP.

A DHCP agent (``metalnic dhcp-agent``, binary ``metalnic-dhcp-agent``) registers
with the same heartbeat as the smart NIC agent (``metalnic.contract.agent.Heartbeat``
with ``agent_type`` "DHCP agent"; it claims no NIC host) and follows its own
desired state::

    GET /network/v2.0/metalnic/dhcp-agents/{host}/desired[?since=N&wait=S]

which lists the networks scheduled to it: their segment, their DHCP-enabled
subnets, the agent's own DHCP port on each, and one host entry per other port
of the network (the only MACs that get a lease).  The long poll works as the
NIC feed's: the answer comes once the revision passes ``since`` or after
``wait`` seconds.

Versioned with the agent contract (``CONTRACT_HEADER``/``CONTRACT_VERSION`` of
``metalnic.contract.agent``): one version for everything an agent speaks.
Adding an optional field keeps the version; the agent ignores fields it does
not know.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DHCP_AGENT = "DHCP agent"
DHCP_BINARY = "metalnic-dhcp-agent"
DHCP_OWNER = "network:dhcp"

Ipv6Mode = Literal["slaac", "dhcpv6-stateful", "dhcpv6-stateless"]


class Received(BaseModel):
    """What the server answers: unknown fields are ignored (see the version rule)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class HostRoute(Received):
    """A route the subnet's hosts get by DHCP (option 121 / 249)."""

    destination: str = Field(description="a CIDR")
    nexthop: str = Field(description="an address on the subnet")


class DhcpSubnet(Received):
    """One DHCP-enabled subnet of the network."""

    id: str = Field(description="subnet id")
    cidr: str = Field(description="the subnet's CIDR")
    ip_version: Literal[4, 6] = Field(description="4 or 6")
    gateway_ip: str | None = Field(None, description="the router option; null: none")
    dns_nameservers: list[str] = Field(default_factory=list, description="DNS option")
    host_routes: list[HostRoute] = Field(default_factory=list, description="static routes")
    ipv6_address_mode: Ipv6Mode | None = Field(None, description="IPv6: how hosts get addresses")
    ipv6_ra_mode: Ipv6Mode | None = Field(None, description="IPv6: what router adverts say")


class FixedIp(Received):
    """An address of a port."""

    subnet_id: str = Field(description="its subnet")
    ip_address: str = Field(description="the address")


class DhcpPort(Received):
    """The agent's own port on the network (``device_owner`` network:dhcp)."""

    id: str = Field(description="network port id")
    mac_address: str = Field(description="the MAC of the agent's interface")
    fixed_ips: list[FixedIp] = Field(default_factory=list, description="one per DHCP subnet")


class DhcpOption(Received):
    """One of a port's ``extra_dhcp_opts`` (Neutron's shape)."""

    opt_name: str = Field(description="a dnsmasq option name or number, maybe tag:-prefixed")
    opt_value: str = Field(description="its value")
    ip_version: Literal[4, 6] = Field(4, description="DHCPv4 or DHCPv6")


class DhcpHost(Received):
    """A port of the network that gets a lease: its MAC, addresses and options."""

    port_id: str = Field(description="network port id")
    mac_address: str = Field(description="the only MAC this entry answers")
    fixed_ips: list[FixedIp] = Field(default_factory=list, description="its addresses")
    hostname: str = Field(description="the host name handed out (host-10-0-0-5)")
    extra_dhcp_opts: list[DhcpOption] = Field(default_factory=list, description="its options")


class DhcpNetwork(Received):
    """A network this agent serves."""

    id: str = Field(description="network id")
    network_type: str = Field(description="vlan or flat")
    physical_network: str | None = Field(None, description="maps to a bridge of the agent")
    segmentation_id: int | None = Field(None, description="the VLAN id (vlan networks)")
    mtu: int = Field(1500, description="the network's MTU (the DHCP interface's)")
    subnets: list[DhcpSubnet] = Field(default_factory=list, description="DHCP-enabled only")
    port: DhcpPort = Field(description="the agent's DHCP port on it")
    hosts: list[DhcpHost] = Field(default_factory=list, description="ports that get leases")


class DhcpDesiredState(Received):
    """``GET /network/v2.0/metalnic/dhcp-agents/{host}/desired``."""

    host: str = Field(description="the DHCP agent's host")
    revision: int = Field(description="bumped by every change the agent must see")
    networks: list[DhcpNetwork] = Field(default_factory=list, description="networks it serves")


MODELS: tuple[type[BaseModel], ...] = (
    DhcpDesiredState,
    DhcpNetwork,
    DhcpSubnet,
    HostRoute,
    DhcpPort,
    FixedIp,
    DhcpHost,
    DhcpOption,
)


def feed_key(host: str) -> str:
    """The feed revision key of a DHCP agent's host (apart from NIC host names)."""
    return f"dhcp:{host}"
