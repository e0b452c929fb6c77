"""The inputs of the network services: what a caller may ask, checked once, as models.

One pydantic model per resource and verb (``NetworkCreate``, ``PortUpdate``,
``SecurityGroupRuleCreate`` ...), built from the value types below; unknown
attributes are refused as Neutron does ("Unrecognized attribute(s)").  Every
caller builds these before it calls a service: the HTTP routes (from the body
``network/api/deps.py`` read and unwrapped) and the embedded client of the
bare-metal side (``Model.parse``), so both are checked by the same rules and
refused with the same message (``InvalidInput``, in Neutron's words).  The
services keep the rules that relate values to the database (policy,
references, allocation), not the coercion.  This module belongs to the
service layer, not to ``network/api`` (the outer layer the services never
import); the API adds only what is HTTP: reading JSON, the envelope, queries,
error bodies and the OpenAPI document (which shows these models as its
request schemas).

The value types say what one field may hold, so that what reaches a service
is already the right Python type and range and nothing a later read cannot
render gets stored:

* text: a real string (no number, object or list), of bounded length, without
  NUL characters or lone UTF-16 surrogates (neither can be stored everywhere
  nor rendered back as JSON);
* integers: JSON integers (Neutron's clients also send decimal strings, as
  ``openstack network create --provider-segment 100`` does: ASCII digits only,
  so ``²`` is refused) within the range the column holds;
* booleans: JSON booleans, or the strings ``true``/``false`` in any case
  (Neutron's ``convert_to_boolean``);
* free-form JSON (``binding:profile``, agent configurations): any JSON whose
  strings are text as above, whose integers fit in 64 bits and whose numbers
  are finite.

The text, revision, boolean and JSON types live in ``metalnic/contract/values.py``
(the leaf module both sides of the agent contract import).  Each type carries
the JSON schema the published OpenAPI document shows for it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

from metalnic import ids
from metalnic.contract.values import (
    Id,
    JsonObject,
    LongText,
    Name,
    Short,
    check_json,
    text_schema,
)
from metalnic.errors import InvalidInput

# --- value types --------------------------------------------------------------------------


def _int_like(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 19):
            raise ValueError("must be an integer")
        return int(value)
    if not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def int_schema(low: int, high: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": "^[0-9]{1,19}$"},
        ],
        "description": f"an integer from {low} to {high} (a decimal string is accepted)",
    }


IntLike = BeforeValidator(_int_like)
MTU = Annotated[int, IntLike, Field(ge=68, le=65535), WithJsonSchema(int_schema(68, 65535))]
VlanId = Annotated[int, IntLike, Field(ge=1, le=4094), WithJsonSchema(int_schema(1, 4094))]
PortNumber = Annotated[int, IntLike, Field(ge=0, le=65535), WithJsonSchema(int_schema(0, 65535))]


PROTOCOL_NAMES = ("tcp", "udp", "icmp", "icmpv6")


def _protocol(value: Any) -> str:
    """A protocol name (any case) or number 0-255, as the text the service stores."""
    if isinstance(value, str) and value.lower() in PROTOCOL_NAMES:
        return value.lower()
    number = _int_like(value)
    if not 0 <= number <= 255:
        raise ValueError("an IP protocol number is 0-255")
    return str(number)


Protocol = Annotated[
    str,
    BeforeValidator(_protocol),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(PROTOCOL_NAMES)},
                {"type": "integer", "minimum": 0, "maximum": 255},
                {"type": "string", "pattern": "^[0-9]{1,3}$"},
            ],
            "description": "tcp, udp, icmp, icmpv6 (any case) or an IP protocol number 0-255",
        }
    ),
]


def _bool_like(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be a boolean (true or false)")


BoolLike = Annotated[
    bool,
    BeforeValidator(_bool_like),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"},
            ]
        }
    ),
]


# --- validation ---------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: object, where: tuple[str, ...] = ()) -> M:
    """``data`` validated as ``model``, or InvalidInput in Neutron's words: the one
    check of a body, for the routes (``deps.body_of``) and the embedded client."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe(exc.errors(), where)) from None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @classmethod
    def parse(cls, data: object, where: tuple[str, ...] = ()) -> Self:
        """``data`` validated as this model (see ``parse``)."""
        return parse(cls, data, where)

    def values(self) -> dict[str, Any]:
        """The attributes the caller gave, under their API names."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Open(Model):
    """An object whose other keys are free-form JSON (kept as given)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="after")
    def _extra_is_json(self) -> Open:
        check_json(self.__pydantic_extra__ or {})
        return self


# --- networks -----------------------------------------------------------------------------


class _Network(Model):
    name: Name = ""
    description: Name = ""
    admin_state_up: BoolLike = True
    shared: BoolLike = False
    port_security_enabled: BoolLike = True


class NetworkUpdate(_Network):
    mtu: MTU = 1500


class NetworkCreate(_Network):
    mtu: MTU | None = Field(1500, description="null: the default, 1500")
    project_id: Id | None = None
    tenant_id: Id | None = None
    network_type: Short = Field("vlan", alias="provider:network_type")
    physical_network: Short | None = Field(None, alias="provider:physical_network")
    segmentation_id: VlanId | None = Field(None, alias="provider:segmentation_id")


# --- port attributes: allowed address pairs, extra DHCP options; tags ---------------------
#
# Neutron's shapes, checked here for what one value may hold; the rules that relate
# them to the port (its MAC, port security, how many pairs, merging options on PUT)
# are ``network/portattrs.py``.


def _ip_or_cidr(value: Any) -> Any:
    """An IP address, or a network in CIDR notation without host bits (Neutron
    refuses ``10.0.0.1/24`` and recommends ``10.0.0.0/24``; an IPv4 network is
    written as its canonical ``a.b.c.d/n``); not multicast."""
    if not isinstance(value, str):
        return value  # the str type refuses it
    parsed: (
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network
    )
    try:
        if "%" in value:  # an IPv6 zone (fe80::1%eth0) names an interface of no host here
            raise ValueError(value)
        if "/" in value:
            parsed = ipaddress.ip_network(value, strict=True)
            if parsed.version == 4 and str(parsed) != value:  # 10.0.0.0/255.255.255.0
                raise ValueError(value)
        else:
            parsed = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("not a valid IP address or CIDR (a network has no host bits)") from None
    if parsed.is_multicast:
        raise ValueError("a multicast address is not allowed")
    return value


def _unicast_mac(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        mac = ids.normalize_mac(value)
    except InvalidInput:
        raise ValueError("not a valid MAC address") from None
    if int(mac[:2], 16) & 1:
        raise ValueError("a multicast MAC address is not allowed")
    return mac


IpOrCidr = Annotated[Short, BeforeValidator(_ip_or_cidr)]
UnicastMac = Annotated[Short, BeforeValidator(_unicast_mac)]


class AddressPair(Model):
    """One of a port's ``allowed_address_pairs``: no MAC means the port's own."""

    ip_address: IpOrCidr
    mac_address: UnicastMac | None = None


# A DHCP option's name as dnsmasq reads it after the agent's ``tag:<port>,``: an
# option number or name, after optional tag conditions (``tag:ipxe,67``,
# ``tag:!ipxe6,bootfile-url``: Ironic's iPXE options).
DHCP_OPT_NAME = re.compile(r"(tag:!?[A-Za-z0-9_.-]+,)*([0-9]{1,5}|[A-Za-z][A-Za-z0-9-]*)")
# One item of a comma-separated value (a dnsmasq list): an address, a network or a name.
_LIST_ITEM = re.compile(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
# Options Neutron lets have an empty value (dnsmasq then sends none of them).
BLANK_DHCP_OPTS = ("router", "classless-static-route")


def _dhcp_opt_name(value: Any) -> Any:
    if isinstance(value, str) and not DHCP_OPT_NAME.fullmatch(value):
        raise ValueError(
            "not a DHCP option: a number or a name (letters, digits, '-'), "
            "optionally after tag conditions such as 'tag:ipxe,' or 'tag:!ipxe,'"
        )
    return value


def _dhcp_opt_value(value: Any) -> Any:
    """One line of a dnsmasq option: no control character, quote or backslash (they
    end the line or change how dnsmasq reads it), no comment (whitespace then '#'),
    no surrounding whitespace; a comma separates a list, so it is allowed only
    between items that are each an address, a network, a number or a domain name."""
    if not isinstance(value, str):
        return value
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or '"' in value or "\\" in value:
        raise ValueError("a DHCP option value is one line without quotes or backslashes")
    if value != value.strip() or re.search(r"\s#", value):
        raise ValueError("a DHCP option value has no surrounding whitespace and no comment")
    if "," in value and not all(_LIST_ITEM.fullmatch(item) for item in value.split(",")):
        raise ValueError(
            "a comma separates a list in dnsmasq: only between addresses, networks, "
            "numbers or domain names"
        )
    return value


DhcpOptName = Annotated[
    str, Strict(), Field(min_length=1, max_length=64), BeforeValidator(_dhcp_opt_name)
]
DhcpOptValue = Annotated[str, Strict(), Field(max_length=255), BeforeValidator(_dhcp_opt_value)]
IpVersion = Annotated[Literal[4, 6], IntLike, WithJsonSchema({"enum": [4, 6, "4", "6"]})]


class ExtraDhcpOpt(Model):
    """One of a port's ``extra_dhcp_opts``; ``opt_value`` null removes the option
    (on PUT, which merges by ``(opt_name, ip_version)``)."""

    opt_name: DhcpOptName
    opt_value: DhcpOptValue | None = Field(description="null: remove this option (PUT)")
    ip_version: IpVersion = 4

    @model_validator(mode="after")
    def _not_blank(self) -> ExtraDhcpOpt:
        if self.opt_value == "" and self.opt_name not in BLANK_DHCP_OPTS:
            raise ValueError(f"opt_value may be empty only for {', '.join(BLANK_DHCP_OPTS)}")
        return self


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("duplicate items in the list")
    return values


Tag = Annotated[Name, WithJsonSchema(text_schema(255))]
TagList = Annotated[list[Tag], Field(max_length=1000), AfterValidator(_unique)]


class Tags(Model):
    """The body of ``PUT …/tags`` (all of a resource's tags, replaced)."""

    tags: TagList


# --- ports --------------------------------------------------------------------------------


class LinkInformation(Open):
    """One NIC port the bare-metal port is cabled to (Ironic's local_link_connection)."""

    hostname: Name | None = None
    port_id: Name | None = None
    switch_id: Name | None = None
    switch_info: Name | None = None
    ssh_public_key: LongText | None = None
    ovsdb_cert: LongText | None = None
    ovsdb_ca_cert: LongText | None = None


class GroupInformation(Open):
    """A bond of several NIC ports (Ironic's port group)."""

    id: Name | None = None
    name: Name | None = None
    bond_mode: Name | None = None
    bond_properties: JsonObject = {}


class BindingProfile(Open):
    local_link_information: list[LinkInformation] = Field(default_factory=list, max_length=64)
    local_group_information: GroupInformation | None = None


# --- addresses (subnets and fixed IPs) ------------------------------------------------------


def _ip_address(value: Any) -> str:
    """An IPv4 or IPv6 address without prefix, in its normalized text."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"'{_shown(value)}' is not a valid IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"'{_shown(value)}' is not a valid IP address") from None


def _cidr(value: Any) -> str:
    """A network in CIDR notation, without host bits (Neutron's words when it has them)."""
    if not isinstance(value, str) or len(value) > 64 or "/" not in value:
        raise ValueError(f"'{_shown(value)}' is not a valid IP subnet")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"'{_shown(value)}' is not a valid IP subnet") from None
    if str(net) != value and ipaddress.ip_interface(value).ip != net.network_address:
        raise ValueError(f"'{value}' isn't a recognized IP subnet cidr, '{net}' is recommended")
    return str(net)


def _shown(value: Any) -> str:
    return value[:64] if isinstance(value, str) else type(value).__name__


IpAddress = Annotated[
    str,
    BeforeValidator(_ip_address),
    WithJsonSchema({"type": "string", "maxLength": 64, "description": "an IPv4 or IPv6 address"}),
]
Cidr = Annotated[
    str,
    BeforeValidator(_cidr),
    WithJsonSchema(
        {"type": "string", "maxLength": 64, "description": "a network: address/prefix length"}
    ),
]
Ipv6Mode = Literal["slaac", "dhcpv6-stateful", "dhcpv6-stateless"]
MAX_FIXED_IPS = 16


class AllocationPool(Model):
    start: IpAddress
    end: IpAddress


class HostRoute(Model):
    destination: Cidr
    nexthop: IpAddress


class FixedIpRequest(Model):
    """One entry of a port's ``fixed_ips``: an address, a subnet to take one from, or both."""

    ip_address: IpAddress | None = None
    subnet_id: Id | None = None

    @model_validator(mode="after")
    def _names_something(self) -> FixedIpRequest:
        if self.ip_address is None and self.subnet_id is None:
            raise ValueError("an entry needs an ip_address, a subnet_id or both")
        return self


def _no_duplicates(items: list[Any], what: str) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item in seen:
            raise ValueError(f"Duplicate {what} '{item}'")
        seen.append(item)
    return items


class _Subnet(Model):
    name: Name = ""
    description: Name = ""
    gateway_ip: IpAddress | None = Field(None, description="absent: the first address; null: none")
    allocation_pools: list[AllocationPool] = Field(default_factory=list, max_length=64)
    dns_nameservers: list[IpAddress] = Field(default_factory=list, max_length=64)
    host_routes: list[HostRoute] = Field(default_factory=list, max_length=64)
    enable_dhcp: BoolLike = True

    @model_validator(mode="after")
    def _distinct(self) -> _Subnet:
        _no_duplicates(self.dns_nameservers, "nameserver")
        _no_duplicates([(r.destination, r.nexthop) for r in self.host_routes], "hostroute")
        return self


class SubnetCreate(_Subnet):
    network_id: Id
    ip_version: IpVersion
    cidr: Cidr
    ipv6_ra_mode: Ipv6Mode | None = None
    ipv6_address_mode: Ipv6Mode | None = None
    project_id: Id | None = None
    tenant_id: Id | None = None
    subnetpool_id: None = Field(None, description="subnet pools are not supported: null")


class SubnetUpdate(_Subnet):
    pass


VnicType = Literal["normal", "baremetal", "smart-nic"]


class _Port(Model):
    name: Name = ""
    description: Name = ""
    admin_state_up: BoolLike = True
    device_id: Name = ""
    device_owner: Name = ""
    host_id: Name = Field("", alias="binding:host_id")
    vnic_type: VnicType = Field("normal", alias="binding:vnic_type")
    port_security_enabled: BoolLike = True


class PortUpdate(_Port):
    profile: BindingProfile = Field(default_factory=BindingProfile, alias="binding:profile")
    security_groups: list[Id] = Field(default_factory=list, max_length=64)
    mac_address: Short = ""
    allowed_address_pairs: list[AddressPair] | None = Field(
        None, max_length=1000, description="replaces the list; null: none"
    )
    extra_dhcp_opts: list[ExtraDhcpOpt] | None = Field(
        None, max_length=64, description="merged by (opt_name, ip_version); null: no change"
    )
    fixed_ips: list[FixedIpRequest] = Field(
        default_factory=list, max_length=MAX_FIXED_IPS, description="replaces the port's addresses"
    )


class PortCreate(_Port):
    network_id: Id
    profile: BindingProfile | None = Field(
        default_factory=BindingProfile, alias="binding:profile", description="null: {}"
    )
    security_groups: list[Id] | None = Field(
        None, max_length=64, description="absent or null: the project's default group"
    )
    mac_address: Short | None = Field(None, description="absent or null: one is made")
    project_id: Id | None = None
    tenant_id: Id | None = None
    fixed_ips: list[FixedIpRequest] | None = Field(
        None,
        max_length=MAX_FIXED_IPS,
        description="absent or null: one address per IP version from the network's subnets",
    )
    allowed_address_pairs: list[AddressPair] | None = Field(None, max_length=1000)
    extra_dhcp_opts: list[ExtraDhcpOpt] | None = Field(None, max_length=64)
    tags: TagList = Field(default_factory=list)


# --- security groups ----------------------------------------------------------------------


class SecurityGroupCreate(Model):
    name: Name = ""
    description: Name = ""
    project_id: Id | None = None
    tenant_id: Id | None = None
    stateful: BoolLike = True


class SecurityGroupUpdate(Model):
    name: Name = ""
    description: Name = ""


class SecurityGroupRuleCreate(Model):
    security_group_id: Id
    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: Protocol | None = None
    port_range_min: PortNumber | None = None
    port_range_max: PortNumber | None = None
    remote_ip_prefix: Short | None = None
    remote_group_id: Id | None = None
    description: Name = ""
    project_id: Id | None = None
    tenant_id: Id | None = None


# --- agents (the agent contract's bodies are in metalnic/contract/agent.py) ---------------


class AgentUpdate(Model):
    admin_state_up: BoolLike = True
    description: Name | None = None


class AgentGrant(Model):
    nic_hosts: list[Id] = Field(max_length=1000)


def describe(errors: Iterable[ErrorDetails], prefix: tuple[str, ...] = ()) -> str:
    """One message for all problems, in Neutron's words, naming each attribute.
    The caller's values are never echoed (they may be secrets or unprintable)."""
    unknown: list[str] = []
    problems: list[str] = []
    for error in errors:
        loc = [str(p) for p in error["loc"] if p not in ("body", "query", "path")]
        where = ".".join(loc) or ".".join(prefix) or "body"
        if error["type"] == "extra_forbidden":
            unknown.append(where)
        elif error["type"] == "string_type":
            problems.append(f"Invalid input for {where}. Reason: not a valid string.")
        else:
            reason = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"Invalid input for {where}. Reason: {reason}.")
    if unknown:
        problems.insert(0, f"Unrecognized attribute(s) '{', '.join(unknown)}'.")
    return _printable(" ".join(problems))


def _printable(message: str) -> str:
    return message.encode("utf-8", "backslashreplace").decode("utf-8")[:2000]
