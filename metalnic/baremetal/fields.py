"""The API fields of nodes, ports, port groups and chassis: since which microversion,
and who may set them.

One table per resource serves the views (hiding fields newer than the
request's microversion), the create and PATCH validation (which fields are
accepted, how each is coerced) and the ``fields`` query parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metalnic.baremetal import coerce
from metalnic.baremetal.drivers.registry import INTERFACE_KINDS
from metalnic.baremetal.states import INTERFACE_CHANGE_STATES, WIRING_CHANGE_STATES

Version = tuple[int, int]
Coercer = Callable[[str, Any], Any]


ANYONE = frozenset({"admin", "member"})
ADMINS = frozenset({"admin"})


@dataclass(frozen=True)
class Field:
    """One API field.  ``writers``: the roles that may set it (on create, to a value
    other than its default, and by PATCH).  ``change_states``: the provision states
    in which a PATCH may change it (None: any); ``maintenance_lifts``: the roles for
    whom a node in maintenance may change it in any state.  ``baremetal.policy``
    enforces these; see docs/api.md "Who may change what"."""

    name: str
    since: Version = (1, 1)
    coerce: Coercer | None = None  # None: read-only
    on_create: bool = True  # accepted in POST when writable
    writers: frozenset[str] = ANYONE
    change_states: frozenset[str] | None = None
    maintenance_lifts: frozenset[str] = ANYONE

    @property
    def writable(self) -> bool:
        return self.coerce is not None


def _wiring(name: str, since: Version, coercer: Coercer, writers: frozenset[str] = ANYONE) -> Field:
    """A connectivity field: it changes only while nothing can be plugged."""
    return Field(name, since, coercer, writers=writers, change_states=WIRING_CHANGE_STATES)


def _interface(name: str, since: Version, coercer: Coercer) -> Field:
    """The driver or an interface: fixed while an instance is (or was) on the node."""
    return Field(
        name, since, coercer, change_states=INTERFACE_CHANGE_STATES, maintenance_lifts=ADMINS
    )


def _table(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


NODE_FIELDS = _table(
    Field("uuid", coerce=lambda _f, v: v, on_create=True),
    Field("name", (1, 5), coerce.as_optional_str),
    _interface("driver", (1, 1), coerce.as_str),
    Field("driver_info", coerce=coerce.as_dict),
    Field("driver_internal_info"),
    Field("properties", coerce=coerce.as_dict),
    Field("instance_info", coerce=coerce.as_dict),
    Field("extra", coerce=coerce.as_dict),
    Field("instance_uuid", coerce=coerce.as_optional_str, on_create=False),
    Field("chassis_uuid", coerce=coerce.as_optional_str, writers=ADMINS),
    Field("power_state"),
    Field("target_power_state"),
    Field("provision_state"),
    Field("target_provision_state"),
    Field("provision_updated_at"),
    Field("last_error"),
    Field("maintenance"),
    Field("maintenance_reason"),
    Field("reservation"),
    Field("console_enabled"),
    Field("inspection_started_at", (1, 6)),
    Field("inspection_finished_at", (1, 6)),
    Field("clean_step", (1, 7)),
    Field("raid_config", (1, 12)),
    Field("target_raid_config", (1, 12)),
    # Also a connectivity field: ports are plugged by it.
    Field(
        "network_interface",
        (1, 20),
        coerce.as_optional_str,
        change_states=WIRING_CHANGE_STATES & INTERFACE_CHANGE_STATES,
        maintenance_lifts=ADMINS,
    ),
    Field("resource_class", (1, 21), coerce.as_optional_str),
    *(
        _interface(f"{kind}_interface", (1, 31), coerce.as_optional_str)
        for kind in INTERFACE_KINDS
        if kind not in ("network", "storage", "rescue", "bios")
    ),
    _interface("storage_interface", (1, 33), coerce.as_optional_str),
    Field("traits", (1, 37)),
    _interface("rescue_interface", (1, 38), coerce.as_optional_str),
    _interface("bios_interface", (1, 40), coerce.as_optional_str),
    Field("fault", (1, 42)),
    Field("deploy_step", (1, 44)),
    Field("conductor_group", (1, 46), coerce.as_str),
    Field("automated_clean", (1, 47), coerce.as_optional_bool),
    Field("protected", (1, 48), coerce.as_bool, on_create=False),
    Field("protected_reason", (1, 48), coerce.as_text, on_create=False),
    Field("conductor", (1, 49)),
    Field("owner", (1, 50), coerce.as_optional_str),
    Field("description", (1, 51), coerce.as_text),
    Field("allocation_uuid", (1, 52)),
    Field("created_at"),
    Field("updated_at"),
    Field("links"),
    Field("ports"),
    Field("portgroups", (1, 24)),
    Field("states"),
)

# What a node list shows without ``detail``.
NODE_LIST_FIELDS = (
    "uuid",
    "name",
    "instance_uuid",
    "power_state",
    "provision_state",
    "maintenance",
    "links",
)

PORT_FIELDS = _table(
    Field("uuid", coerce=lambda _f, v: v),
    Field("address", coerce=coerce.as_str),
    Field("node_uuid", coerce=coerce.as_str),
    Field("extra", coerce=coerce.as_dict),
    Field("internal_info", (1, 18)),
    # The spec: "readable by observer, writable by admin".
    _wiring("local_link_connection", (1, 19), coerce.as_dict, ADMINS),
    _wiring("pxe_enabled", (1, 19), coerce.as_bool),
    _wiring("portgroup_uuid", (1, 24), coerce.as_optional_str),
    _wiring("physical_network", (1, 34), coerce.as_optional_str),
    _wiring("is_smartnic", (1, 53), coerce.as_bool, ADMINS),
    Field("created_at"),
    Field("updated_at"),
    Field("links"),
)

PORT_LIST_FIELDS = ("uuid", "address", "links")

PORTGROUP_FIELDS = _table(
    Field("uuid", coerce=lambda _f, v: v),
    Field("address", coerce=coerce.as_optional_str),
    Field("name", coerce=coerce.as_optional_str),
    Field("node_uuid", coerce=coerce.as_str),
    Field("standalone_ports_supported", coerce=coerce.as_bool),
    Field("internal_info"),
    Field("extra", coerce=coerce.as_dict),
    Field("mode", (1, 26), coerce.as_optional_str),
    Field("properties", (1, 26), coerce.as_dict),
    Field("created_at"),
    Field("updated_at"),
    Field("links"),
    Field("ports"),
)

PORTGROUP_LIST_FIELDS = ("uuid", "address", "name", "links")

CHASSIS_FIELDS = _table(
    Field("uuid", coerce=lambda _f, v: v, writers=ADMINS),
    Field("description", coerce=coerce.as_optional_str, writers=ADMINS),
    Field("extra", coerce=coerce.as_dict, writers=ADMINS),
    Field("created_at"),
    Field("updated_at"),
    Field("links"),
    Field("nodes"),
)
CHASSIS_LIST_FIELDS = ("uuid", "description", "links")
# Port groups exist from this API version on (ports point at them from 1.24).
PORTGROUPS_SINCE: Version = (1, 23)


def visible(table: dict[str, Field], version: Version) -> list[str]:
    return [name for name, f in table.items() if f.since <= version]
