"""A port's ``allowed_address_pairs`` and ``extra_dhcp_opts``: the rules that relate them
to the port.

The values arrive checked one by one (``network/inputs.py``: an IP or CIDR, a
unicast MAC, a DHCP option name and a one-line value); here, as Neutron:

* address pairs: at most ``max_allowed_address_pair`` (400
  ``AllowedAddressPairExhausted``); a pair without a MAC takes the port's; the
  same (MAC, IP) twice is a 400 ``DuplicateAddressPairInRequest``; pairs need
  port security (409 ``AddressPairAndPortSecurityRequired``, also when port
  security is switched off on a port that has pairs).  A PUT replaces the list.
* extra DHCP options: keyed by ``(opt_name, ip_version)``; a PUT merges into the
  stored list (a new key is added, a known one takes the new value, a null
  ``opt_value`` removes it; options not named stay), a create stores those with
  a value.  The stored shape is Neutron's list of dicts.
"""

from __future__ import annotations

from collections.abc import Sequence

from metalnic.errors import (
    AddressPairAndPortSecurityRequired,
    AllowedAddressPairExhausted,
    DuplicateAddressPairInRequest,
    InvalidInput,
)
from metalnic.network.inputs import AddressPair, ExtraDhcpOpt, PortUpdate
from metalnic.network.models import AddressPairRecord, DhcpOptRecord, NetworkPort

# More options than this on one port is refused (Neutron has no limit; a DHCP
# reply has room for far fewer).
MAX_DHCP_OPTS = 64


def address_pairs(
    given: Sequence[AddressPair] | None, port_mac: str, secured: bool, limit: int
) -> list[AddressPairRecord]:
    """The pairs to store for a port with MAC ``port_mac``."""
    pairs = list(given or [])
    if len(pairs) > limit:
        raise AllowedAddressPairExhausted(limit)
    stored: list[AddressPairRecord] = []
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        mac = pair.mac_address or port_mac
        if (mac, pair.ip_address) in seen:
            raise DuplicateAddressPairInRequest(mac, pair.ip_address)
        seen.add((mac, pair.ip_address))
        stored.append({"ip_address": pair.ip_address, "mac_address": mac})
    if stored and not secured:
        raise AddressPairAndPortSecurityRequired()
    return stored


def dhcp_opts(
    current: Sequence[DhcpOptRecord], given: Sequence[ExtraDhcpOpt]
) -> list[DhcpOptRecord]:
    """``given`` merged into ``current`` (a create: into ``[]``)."""
    keys = [(o.opt_name, o.ip_version) for o in given]
    if len(set(keys)) != len(keys):
        raise InvalidInput(
            "Invalid input for extra_dhcp_opts. Reason: an option (opt_name, ip_version) "
            "is given twice."
        )
    merged = {(o["opt_name"], o["ip_version"]): o for o in current}
    for opt in given:
        key = (opt.opt_name, opt.ip_version)
        if opt.opt_value is None:
            merged.pop(key, None)
        else:
            merged[key] = {
                "opt_name": opt.opt_name,
                "opt_value": opt.opt_value,
                "ip_version": opt.ip_version,
            }
    if len(merged) > MAX_DHCP_OPTS:
        raise InvalidInput(f"A port has at most {MAX_DHCP_OPTS} extra DHCP options.")
    return list(merged.values())


def update(port: NetworkPort, change: PortUpdate, limit: int) -> None:
    """Apply a PUT's pairs and options to ``port`` (its MAC and port security already
    updated).  The agent programs the pairs: the update bumps the port's feed, as
    every update of a port does (``ports._bump_changed``)."""
    given = change.model_fields_set
    before = port.allowed_address_pairs
    if "allowed_address_pairs" in given:
        pairs = address_pairs(
            change.allowed_address_pairs, port.mac_address, port.port_security_enabled, limit
        )
        if pairs != before:
            port.allowed_address_pairs = pairs
    elif before and not port.port_security_enabled:
        raise AddressPairAndPortSecurityRequired()
    if change.extra_dhcp_opts:
        opts = dhcp_opts(port.extra_dhcp_opts, change.extra_dhcp_opts)
        if opts != port.extra_dhcp_opts:
            port.extra_dhcp_opts = opts
