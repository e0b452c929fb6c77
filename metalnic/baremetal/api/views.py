"""JSON shapes of nodes, ports, port groups and drivers as Ironic renders them.

Fields newer than the request's microversion are left out.  Every free-form
value (objects such as driver_info or extra, lists, free text) is shown
through ``metalnic.redact``: secret-named keys read ``******`` at any depth and
credentials inside strings are masked.  Timestamps stay datetime objects: the
JSON response class renders them (see metalnic.httpjson).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from metalnic import redact
from metalnic.baremetal.drivers.registry import INTERFACE_KINDS, HardwareType
from metalnic.baremetal.fields import Field, Version
from metalnic.errors import InvalidInput, NotAcceptable
from metalnic.jsontypes import JSONObject

# A resource as an answer shows it; timestamps stay datetime objects until the
# JSON response class renders them, so this is not a JSON document yet.
View = dict[str, object]


class Record(Protocol):
    """What the views read: a stored node, port or port group, or a listing row of one.

    The services hand either an ORM object or a plain row (the list paths read
    rows: no ORM objects to build); the views only read attributes by field name,
    so they never name the models.
    """

    @property
    def uuid(self) -> str: ...


class NodeStates(Protocol):
    """The attributes of a node that ``GET /v1/nodes/{ident}/states`` shows."""

    @property
    def power_state(self) -> str | None: ...
    @property
    def target_power_state(self) -> str | None: ...
    @property
    def provision_state(self) -> str: ...
    @property
    def target_provision_state(self) -> str | None: ...
    @property
    def provision_updated_at(self) -> datetime | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def console_enabled(self) -> bool: ...
    @property
    def raid_config(self) -> JSONObject: ...
    @property
    def target_raid_config(self) -> JSONObject: ...


# Fields that hold whatever a client (or a driver) put there: objects where a
# secret-named key may sit, and free text.  The other fields are validated
# values (names, UUIDs, states, MACs); URL credentials anywhere are caught by
# the JSON response class.  A port's local_link_connection has a fixed key set
# and refuses private keys; internal_info is written by the server.
_NODE_FREE_FORM = frozenset(
    {
        "driver_info",
        "instance_info",
        "driver_internal_info",
        "extra",
        "properties",
        "clean_step",
        "deploy_step",
        "raid_config",
        "target_raid_config",
        "last_error",
        "maintenance_reason",
        "protected_reason",
        "description",
        "fault",
    }
)


def shown(value: object) -> object:
    """A stored value as answers show it: objects, lists and text through the redaction rule."""
    if value and isinstance(value, dict | list | str):
        return redact.redact(value)
    return value


def links(base: str, kind: str, ident: str, suffix: str = "") -> list[dict[str, str]]:
    return [
        {"href": f"{base}/v1/{kind}/{ident}{suffix}", "rel": "self"},
        {"href": f"{base}/{kind}/{ident}{suffix}", "rel": "bookmark"},
    ]


def select_fields(
    table: dict[str, Field], requested: str | None, version: Version, default: Iterable[str]
) -> list[str]:
    """The fields to render: the ``fields`` query parameter, checked, or ``default``."""
    if requested is None:
        return [f for f in default if table[f].since <= version]
    names = [n.strip() for n in requested.split(",") if n.strip()]
    invalid = [n for n in names if n not in table]
    if invalid or not names:
        raise InvalidInput(f"Field(s) {', '.join(invalid) or requested!r} are not valid.")
    too_new = [n for n in names if table[n].since > version]
    if too_new:
        raise NotAcceptable(f"Field(s) {', '.join(too_new)} need a newer API version.")
    return names


def all_fields(table: dict[str, Field], version: Version) -> list[str]:
    return [name for name, f in table.items() if f.since <= version]


def node(n: Record, base: str, fields: Iterable[str]) -> View:
    """A node (ORM object or listing row) as Ironic shows it."""
    out: View = {}
    for name in fields:
        if name == "links":
            out[name] = links(base, "nodes", n.uuid)
        elif name in ("ports", "portgroups", "states"):
            out[name] = links(base, "nodes", n.uuid, f"/{name}")
        elif name in ("allocation_uuid", "conductor"):
            # No allocations in metalnic; no conductor owns a node (any one runs its flows).
            out[name] = None
        elif name in _NODE_FREE_FORM:
            out[name] = shown(getattr(n, name))
        else:
            out[name] = getattr(n, name)
    return out


def port(p: Record, base: str, fields: Iterable[str]) -> View:
    """A port (ORM object or listing row with ``node_uuid``, ``portgroup_uuid``)."""
    out: View = {}
    for name in fields:
        if name == "links":
            out[name] = links(base, "ports", p.uuid)
        elif name == "extra":
            out[name] = shown(getattr(p, name))
        else:
            out[name] = getattr(p, name)
    return out


def portgroup(g: Record, base: str, fields: Iterable[str]) -> View:
    """A port group (ORM object or listing row with ``node_uuid``) as Ironic shows it."""
    out: View = {}
    for name in fields:
        if name == "links":
            out[name] = links(base, "portgroups", g.uuid)
        elif name == "ports":
            out[name] = links(base, "portgroups", g.uuid, "/ports")
        elif name in ("extra", "properties"):
            out[name] = shown(getattr(g, name))
        else:
            out[name] = getattr(g, name)
    return out


def chassis(c: Record, base: str, fields: Iterable[str]) -> View:
    """A chassis (ORM object or listing row) as Ironic shows it."""
    out: View = {}
    for name in fields:
        if name == "links":
            out[name] = links(base, "chassis", c.uuid)
        elif name == "nodes":
            out[name] = links(base, "chassis", c.uuid, "/nodes")
        elif name == "extra":
            out[name] = shown(getattr(c, name))
        else:
            out[name] = getattr(c, name)
    return out


def node_states(n: NodeStates, version: Version) -> View:
    out: View = {
        "power_state": n.power_state,
        "target_power_state": n.target_power_state,
        "provision_state": n.provision_state,
        "target_provision_state": n.target_provision_state,
        "provision_updated_at": n.provision_updated_at,
        "last_error": shown(n.last_error),
        "console_enabled": n.console_enabled,
    }
    if version >= (1, 12):
        out["raid_config"] = shown(n.raid_config)
        out["target_raid_config"] = shown(n.target_raid_config)
    return out


def driver(hw: HardwareType, base: str, hosts: list[str], detail: bool) -> View:
    out: View = {
        "name": hw.name,
        "hosts": hosts,
        "type": "dynamic",
        "links": [
            {"href": f"{base}/v1/drivers/{hw.name}", "rel": "self"},
            {"href": f"{base}/drivers/{hw.name}", "rel": "bookmark"},
        ],
        "properties": [
            {"href": f"{base}/v1/drivers/{hw.name}/properties", "rel": "self"},
            {"href": f"{base}/drivers/{hw.name}/properties", "rel": "bookmark"},
        ],
    }
    if detail:
        for kind in INTERFACE_KINDS:
            out[f"default_{kind}_interface"] = hw.default(kind)
            out[f"enabled_{kind}_interfaces"] = list(hw.interfaces[kind])
    return out
