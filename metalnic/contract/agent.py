"""The agent contract: what the server and its smart NIC agents say to each other over HTTP.

One module, imported by both sides: the server's agent routes validate what
agents send (``Heartbeat``, ``Report``) into these models, which its service
functions take, and declare what they answer (``HeartbeatReply``,
``DesiredState``); the agent builds its heartbeats and reports with the same
models and validates every answer against them.  The server renders the
desired state from plain data (with orjson: building 200 ports' worth of models
only to dump them again cost far more than the rest of the answer, see
bench/agent_feed_bench.py); tests check that answer has exactly these fields.
It imports only pydantic, the standard library and two leaf modules
(``metalnic.contract.values``, ``metalnic.jsontypes``), so the agent never
imports server code.

Versioned: each side sends ``CONTRACT_HEADER: CONTRACT_VERSION`` on every
contract request and answer.  A server refuses a request of another version
(400, naming both versions); an agent refuses an answer of another version
(it logs both and retries, programming nothing from it).  A request or
answer without the header is taken as version 1 (the contract before it had
a version).  Adding an optional field keeps the version (what reads the
server's answers ignores fields it does not know); renaming or removing one,
or changing its meaning, bumps it.

``docs/network.md`` (the agent contract section) is generated from these
models by ``python -m metalnic.contract.doc`` and checked by a test.

The desired state as the server builds it is plain data typed by the
TypedDicts at the end (``DesiredStateData`` and its parts): each has exactly the
fields of its model, in the model's order (``tests/unit/test_agent_contract.py``
holds them together), so the type checker sees the server fill in every field
while the answer stays a dict for orjson.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metalnic.contract.values import Id, LongText, Name, Revision, Short, StrictBool, check_json
from metalnic.jsontypes import JSONObject

CONTRACT_VERSION = 1
CONTRACT_HEADER = "Metalnic-Agent-Contract"

PortStatusName = Literal["DOWN", "BUILD", "ACTIVE", "ERROR"]
Direction = Literal["ingress", "egress"]


def version_mismatch(sent: str | None, me: str, them: str) -> str | None:
    """The message for a peer that speaks another contract version (None: same version)."""
    version = (sent or "1").strip()
    if version == str(CONTRACT_VERSION):
        return None
    shown = version[:16] if version.isascii() and version.isprintable() else "?"
    return (
        f"Agent contract version mismatch: this {me} speaks version {CONTRACT_VERSION}, "
        f"the {them} version {shown}; upgrade the older of the two."
    )


class Sent(BaseModel):
    """What an agent sends: unknown attributes are refused (as the rest of the API does)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Received(BaseModel):
    """What the server answers: fields an agent does not know are ignored (see above)."""

    model_config = ConfigDict(extra="ignore")


# --- heartbeat ----------------------------------------------------------------------------


class AgentConfigurations(Sent):
    """Free-form besides these keys: other keys are kept as given (JSON only)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    mode: Literal["local", "remote"] = Field(
        "local", description="local: OVS on this machine; remote: NICs over OVSDB-SSL"
    )
    nic_hosts: list[Id] = Field(
        default_factory=list,
        max_length=1000,
        description="the NIC hosts this agent serves (default: the agent host alone)",
    )
    smartnic: StrictBool = Field(False, description="true: binds smart-nic ports")
    bridge_mappings: dict[Name, Name] = Field(
        default_factory=dict, description="physical network → uplink bridge"
    )
    nic_netdevs: dict[Id, dict[Name, Short]] = Field(
        default_factory=dict,
        max_length=1000,
        description="remote: each NIC host's netdevs (representors), name → MAC, read over SSH",
    )

    @model_validator(mode="after")
    def _extra_is_json(self) -> AgentConfigurations:
        check_json(self.__pydantic_extra__ or {})
        return self


class Heartbeat(Sent):
    """``POST /network/v2.0/metalnic/agents/heartbeat``: register or stay alive."""

    host: Id = Field(description="the agent's host name")
    agent_type: Literal["Open vSwitch agent", "DHCP agent"] = Field(
        "Open vSwitch agent", description="DHCP agent: serves DHCP, claims no NIC host"
    )
    binary: Name = Field("metalnic-agent", description="the agent program")
    configurations: AgentConfigurations = Field(
        default_factory=AgentConfigurations, description="what the agent serves and how"
    )

    def nic_hosts(self) -> list[str]:
        """The NIC hosts claimed: as given, or the agent host alone when not given."""
        if "nic_hosts" in self.configurations.model_fields_set:
            return list(self.configurations.nic_hosts)
        return [self.host]


class AgentRecord(Received):
    """The agent as the server holds it (Neutron's agent view)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="agent id")
    agent_type: str = Field(description="Open vSwitch agent")
    binary: str = Field(description="the agent program")
    host: str = Field(description="the agent's host name")
    admin_state_up: bool = Field(description="false: an admin disabled it")
    alive: bool = Field(description="heartbeat within agent_down_time")
    configurations: AgentConfigurations = Field(description="as last sent")
    created_at: str = Field(description="first heartbeat (UTC, YYYY-MM-DD HH:MM:SS)")
    started_at: str = Field(description="heartbeat that (re)started it")
    heartbeat_timestamp: str = Field(description="last heartbeat")


class HeartbeatReply(Received):
    """The answer to a heartbeat."""

    agent: AgentRecord = Field(description="the agent as registered")
    resync: bool = Field(description="true: the agent was new or dead; resync everything")


# --- desired state ------------------------------------------------------------------------


class LinkInformation(Received):
    """One NIC port of a binding (``binding:profile.local_link_information`` entry)."""

    model_config = ConfigDict(extra="allow")

    port_id: str | int | None = Field(None, description="the NIC port (port B) to plug")
    hostname: str | None = Field(None, description="the NIC host")
    ovsdb_cert: str | None = Field(None, description="remote NIC: its OVSDB certificate (PEM)")
    ovsdb_ca_cert: str | None = Field(None, description="remote NIC: the CA that issued it")
    ssh_public_key: str | None = Field(
        None, description="remote NIC: the host key its SSH server presents (OpenSSH)"
    )


class GroupInformation(Received):
    """A bond (``binding:profile.local_group_information``)."""

    model_config = ConfigDict(extra="allow")

    bond_mode: str | None = Field(
        None, description="active-backup (default) or balance-xor/802.3ad (balanced)"
    )


class FixedIp(Received):
    """One of a port's addresses (Neutron's ``fixed_ips`` entry)."""

    subnet_id: str = Field(description="the subnet it was allocated from")
    ip_address: str = Field(description="the address (IPv4 or IPv6, no prefix length)")


class AddressPair(Received):
    """An extra address the port may send from (``allowed_address_pairs`` entry)."""

    ip_address: str = Field(description="an address or a CIDR")
    mac_address: str = Field(description="the MAC it may use with it (default: the port's)")


class DhcpServer(Received):
    """A DHCP port of the port's network: the only source of DHCP replies to the host."""

    mac_address: str = Field(description="the DHCP port's MAC address")
    ip_addresses: list[str] = Field(default_factory=list, description="its fixed IPs")


class DesiredPort(Received):
    """One port bound to the NIC host."""

    id: str = Field(description="network port id")
    mac_address: str = Field(description="the port's MAC address")
    admin_state_up: bool = Field(True, description="false: not plugged")
    device_id: str | None = Field(None, description="the node it belongs to")
    network_id: str = Field(description="its network")
    network_type: str | None = Field(description="vlan or flat (others are reported ERROR)")
    physical_network: str | None = Field(None, description="maps to an uplink bridge")
    segmentation_id: int | None = Field(None, description="the VLAN id (vlan networks)")
    local_link_information: list[LinkInformation] = Field(
        default_factory=list, description="its NIC port(s); several: a bond"
    )
    local_group_information: GroupInformation | None = Field(
        None, description="the bond, for several NIC ports"
    )
    port_security_enabled: bool = Field(True, description="false: no MAC/IP/rule filtering")
    security_groups: list[str] = Field(default_factory=list, description="its group ids")
    status: str = Field("DOWN", description="the status the server holds")
    fixed_ips: list[FixedIp] = Field(
        default_factory=list, description="its addresses: the only source IPs it may use"
    )
    allowed_address_pairs: list[AddressPair] = Field(
        default_factory=list, description="further (MAC, IP or CIDR) it may send from"
    )
    dhcp_servers: list[DhcpServer] = Field(
        default_factory=list, description="its network's DHCP ports (none: no DHCP replies)"
    )

    def members(self) -> list[str]:
        """The NIC port names (``port_id``) of its links, in order."""
        return [str(link.port_id) for link in self.local_link_information if link.port_id]


class SecurityGroupRule(Received):
    """One rule of a security group."""

    direction: Direction = Field(description="towards or from the port")
    ethertype: str = Field("IPv4", description="IPv4 or IPv6")
    protocol: str | None = Field(None, description="tcp, udp, icmp, a number; null: any")
    port_range_min: int | None = Field(None, description="first port (ICMP: type)")
    port_range_max: int | None = Field(None, description="last port (ICMP: code)")
    remote_ip_prefix: str | None = Field(None, description="the peer's CIDR; null: any")
    remote_group_id: str | None = Field(None, description="peers: the ports of this group")


SecurityGroupRules = dict[str, list[SecurityGroupRule]]  # group id → its rules


class VerifyRequest(Received):
    """A boot-gate question: are these ports plugged, read from OVS now?"""

    id: str = Field(description="the verification id (answered in the report's verified)")
    ports: list[str] = Field(description="network port ids to check")


class DesiredState(Received):
    """``GET /network/v2.0/metalnic/hosts/{nic}/desired[?since=N&wait=S]``."""

    host: str = Field(description="the NIC host")
    revision: int = Field(description="bumped by every change the agent must see")
    applied: int = Field(0, description="the revision the agent last reported applied")
    ports: list[DesiredPort] = Field(default_factory=list, description="ports bound here")
    security_groups: SecurityGroupRules = Field(
        default_factory=dict, description="group id → its rules, for the ports' groups"
    )
    members: dict[str, list[str]] = Field(
        default_factory=dict, description="remote group id → the MAC addresses of its ports"
    )
    verify: list[VerifyRequest] = Field(
        default_factory=list, description="pending boot-gate questions"
    )


# --- report -------------------------------------------------------------------------------


class PortStatus(Sent):
    """One port's status as programmed."""

    status: PortStatusName = Field(description="ACTIVE, DOWN or ERROR (BUILD accepted)")
    reason: LongText | None = Field(None, description="why not ACTIVE")


class PlugAnswer(Sent):
    """One port's answer to a verification."""

    plugged: StrictBool = Field(description="true: on br-int, right VLAN, ids and flows")
    reason: LongText | None = Field(None, description="what is missing")


class Report(Sent):
    """``POST /network/v2.0/metalnic/hosts/{nic}/report`` (204)."""

    ports: dict[Id, PortStatus] = Field(
        default_factory=dict, description="port id → status (changes and errors)"
    )
    applied_revision: Revision | None = Field(
        None, description="the desired-state revision now programmed"
    )
    verified: dict[Id, dict[Id, PlugAnswer]] = Field(
        default_factory=dict, description="verification id → port id → answer"
    )


# Every model of the contract, in the order the documentation shows them.
MODELS: tuple[type[BaseModel], ...] = (
    Heartbeat,
    AgentConfigurations,
    HeartbeatReply,
    AgentRecord,
    DesiredState,
    DesiredPort,
    FixedIp,
    AddressPair,
    DhcpServer,
    LinkInformation,
    GroupInformation,
    SecurityGroupRule,
    VerifyRequest,
    Report,
    PortStatus,
    PlugAnswer,
)


# --- the desired state as the server builds it ----------------------------------------------
# Plain dicts, not the models above: building and dumping 200 ports' worth of models
# cost far more than the rest of the answer (bench/agent_feed_bench.py).  Links and the
# bond are the port's binding:profile entries as stored (checked on the way in).


class FixedIpData(TypedDict):
    """``FixedIp``."""

    subnet_id: str
    ip_address: str


class AddressPairData(TypedDict):
    """``AddressPair``."""

    ip_address: str
    mac_address: str


class DhcpServerData(TypedDict):
    """``DhcpServer``."""

    mac_address: str
    ip_addresses: list[str]


class DesiredPortData(TypedDict):
    """``DesiredPort``."""

    id: str
    mac_address: str
    admin_state_up: bool
    device_id: str
    network_id: str
    network_type: str
    physical_network: str | None
    segmentation_id: int | None
    local_link_information: list[JSONObject]
    local_group_information: JSONObject | None
    port_security_enabled: bool
    security_groups: list[str]
    status: str
    fixed_ips: list[FixedIpData]
    allowed_address_pairs: list[AddressPairData]
    dhcp_servers: list[DhcpServerData]


class SecurityGroupRuleData(TypedDict):
    """``SecurityGroupRule``."""

    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None


SecurityGroupRulesData = dict[str, list[SecurityGroupRuleData]]  # group id → its rules


class VerifyRequestData(TypedDict):
    """``VerifyRequest``."""

    id: str
    ports: list[str]


class DesiredStateData(TypedDict):
    """``DesiredState``."""

    host: str
    revision: int
    applied: int
    ports: list[DesiredPortData]
    security_groups: SecurityGroupRulesData
    members: Mapping[str, Sequence[str]]
    verify: list[VerifyRequestData]


# Each plain-data shape and the model it must match (field for field, in order).
PLAIN_DATA: tuple[tuple[type, type[BaseModel]], ...] = (
    (DesiredStateData, DesiredState),
    (DesiredPortData, DesiredPort),
    (FixedIpData, FixedIp),
    (AddressPairData, AddressPair),
    (DhcpServerData, DhcpServer),
    (SecurityGroupRuleData, SecurityGroupRule),
    (VerifyRequestData, VerifyRequest),
)
