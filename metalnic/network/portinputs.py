"""The request values of a port's Neutron extensions and of the tag API: allowed address
pairs, extra DHCP options, tags.

What one value may hold, checked at the edge like every input of
``network/inputs.py`` (which builds ``PortCreate``/``PortUpdate`` from these); the
rules that relate them to the port (its MAC, port security, how many pairs,
merging options on PUT) are ``network/portattrs.py``.  A module of its own only to
keep ``inputs.py`` readable; it imports nothing of it (``inputs`` imports this).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    model_validator,
)

from metalnic import ids
from metalnic.contract.values import Name, Short, text_schema
from metalnic.errors import InvalidInput


class _Body(BaseModel):
    """As ``inputs.Model``: unknown attributes are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _ip_version(value: Any) -> Any:
    """4 or 6, also as the decimal strings clients send (``ip-version=6``)."""
    if isinstance(value, str) and value in ("4", "6"):
        return int(value)
    if isinstance(value, bool):
        raise ValueError("must be 4 or 6, not a boolean")
    return value


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


class AddressPair(_Body):
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
IpVersion = Annotated[
    Literal[4, 6], BeforeValidator(_ip_version), WithJsonSchema({"enum": [4, 6, "4", "6"]})
]


class ExtraDhcpOpt(_Body):
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


class Tags(_Body):
    """The body of ``PUT …/tags`` (all of a resource's tags, replaced)."""

    tags: TagList
