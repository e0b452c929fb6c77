"""What the bare-metal side needs from a network service: seven typed calls.

The ``smartnic`` network interface (and the VIF API) reach the network service
only through ``NetworkClient``; ``server.py`` injects one of its two
implementations: the embedded network service (``metalnic.embedded_network``)
or a real Neutron through openstacksdk (``drivers/network/neutron.py``).  The
protocol and its values live here, on the side that uses them, so the network
package never has to know the bare-metal one (the adapter at the composition
root knows both).  ``tests/integration/test_network_client_conformance.py``
runs the same cases against both implementations.

A call either returns a typed value or raises one of the errors below (every
one a ``DriverError``, so a flow records it as the node's ``last_error``)::

    NetworkClientError           the network service refused or failed the call
    ├── NetworkObjectNotFound    404  no such network or port
    ├── NetworkConflict          409  a name that fits several networks, a MAC in use
    └── NetworkUnreachable       503  the service cannot be reached (a retry may help)

What a port *did* (ACTIVE, or why not) is an answer, not an error: ``plug``
returns it, so that the caller can roll back what it created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict

from metalnic.baremetal.drivers.base import DriverError

# The bare-metal service marks the ports it makes with this device_owner and only
# ever looks for its own ports among those so marked (a tenant cannot mark a port so).
DEVICE_OWNER = "baremetal:none"
OWNER_PREFIX = "baremetal:"
VNIC_TYPE = "smart-nic"
ACTIVE = "ACTIVE"


class NetworkClientError(DriverError):
    """The network service refused or failed a call; the message says which and why."""


class NetworkObjectNotFound(NetworkClientError):
    status = 404


class NetworkConflict(NetworkClientError):
    status = 409


class NetworkUnreachable(NetworkClientError):
    status = 503
    retryable = True


class LinkInformation(TypedDict, total=False):
    """One member's ``local_link_connection`` as Neutron's binding profile carries it."""

    hostname: str
    port_id: str
    switch_id: str
    switch_info: str
    ssh_public_key: str
    ovsdb_ca_cert: str
    ovsdb_cert: str


class GroupInformation(TypedDict):
    """A bond, in the shape Neutron uses for bare-metal port groups."""

    id: str
    name: str | None
    bond_mode: str | None
    bond_properties: dict[str, object]


class BindingProfile(TypedDict, total=False):
    """A smart-nic port's ``binding:profile``: what the NIC's agent needs to plug it."""

    local_link_information: list[LinkInformation]
    baremetal_node: str
    baremetal_port: str
    baremetal_portgroup: str
    local_group_information: GroupInformation


@dataclass(frozen=True)
class NetworkPort:
    """A port as the network service shows it (only what the bare-metal side reads)."""

    id: str
    name: str
    network_id: str
    project_id: str
    mac: str
    device_id: str
    device_owner: str
    nic_host: str  # binding:host_id; "" when unbound
    status: str  # DOWN, BUILD, ACTIVE or ERROR
    vif_type: str  # unbound, ovs or binding_failed
    reason: str  # why it is not ACTIVE, as the service says ("" when it says nothing)
    port_security: bool
    security_groups: tuple[str, ...]
    ip_versions: tuple[int, ...] = ()  # of its fixed IPs, sorted, once each

    @staticmethod
    def versions_of(addresses: Sequence[str]) -> tuple[int, ...]:
        """The sorted IP versions of ``addresses`` (the ``ip_versions`` field)."""
        return tuple(sorted({6 if ":" in a else 4 for a in addresses}))

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


@dataclass(frozen=True)
class Binding:
    """Where a smart-nic port is plugged: the NIC host, and the bare-metal link's MAC
    (the host sends with it, and the NIC lets only it out, as Ironic does)."""

    nic_host: str
    mac: str
    device_id: str  # the node
    profile: BindingProfile


# The default of Ironic's ``[neutron]dhcpv6_stateful_address_count`` (the setting
# ``dhcpv6_stateful_address_count``): firmware, iPXE and the ramdisk each ask DHCPv6
# with an identifier (DUID/IAID) of their own, and a DHCPv6 server leases an address
# to one identifier only, so a phase port holds several.
DHCPV6_STATEFUL_ADDRESSES = 4


@dataclass(frozen=True)
class NewPort:
    """A port ``plug`` creates on ``network_id``.  With ``security_groups`` those
    groups filter it; without, port security is off (the phase networks' default).
    On each ``dhcpv6-stateful`` subnet it gets ``dhcpv6_addresses`` addresses."""

    network_id: str
    name: str
    security_groups: tuple[str, ...] = ()
    dhcpv6_addresses: int = DHCPV6_STATEFUL_ADDRESSES


def more_dhcpv6_addresses(
    fixed_ips: Sequence[tuple[str, str]], stateful: Sequence[str], count: int
) -> list[dict[str, str]] | None:
    """The ``fixed_ips`` a new port's update gives it (None: none needed): its
    addresses ((subnet id, address)) and, per subnet of ``stateful`` (its
    dhcpv6-stateful ones) it has an address on, ``count - 1`` more."""
    extra = [
        {"subnet_id": subnet}
        for subnet in dict.fromkeys(s for s, _ in fixed_ips if s in stateful)
        for _ in range(count - 1)
    ]
    if not extra:
        return None
    return [{"subnet_id": s, "ip_address": ip} for s, ip in fixed_ips] + extra


@dataclass(frozen=True)
class Plugged:
    """What ``plug`` did: the port (``created``: made now, else a VIF bound) and
    whether it came up ACTIVE within the timeout (``reason``: why not)."""

    port_id: str
    created: bool
    active: bool
    reason: str = ""


@dataclass(frozen=True)
class DhcpOption:
    """One of a port's ``extra_dhcp_opts`` as Neutron has them: a dnsmasq option name
    or number, optionally behind a tag (``tag:ipxe,67``), its value, and the IP
    version it is for.  ``value`` None removes the option (Neutron's way: an update
    merges by name and version, and a null value deletes)."""

    name: str
    value: str | None
    ip_version: int = 4

    def body(self) -> dict[str, object]:
        """The option in the port body's shape."""
        return {"opt_name": self.name, "opt_value": self.value, "ip_version": self.ip_version}


@dataclass(frozen=True)
class Verdict:
    """The agent's read-back of one port from OVS."""

    plugged: bool
    reason: str = ""


class NetworkClient(Protocol):
    def network_id(self, name_or_id: str) -> str:
        """Resolve a network by id or name (NetworkObjectNotFound; NetworkConflict
        when a name fits several networks: never guess which one carries the hosts)."""

    def agent_alive(self, nic_host: str) -> bool:
        """True when a live agent serves exactly ``nic_host``."""

    def ports(
        self, *, ids: Sequence[str] = (), device_id: str | None = None, name_prefix: str = ""
    ) -> list[NetworkPort]:
        """The ports ``ids`` that exist (any owner), or with ``device_id`` the ports the
        bare-metal service made for that device (``OWNER_PREFIX``) whose names start
        with ``name_prefix``; given both, the ports matching both."""

    def plug(self, port: NewPort | str, binding: Binding, timeout: float) -> Plugged:
        """Create ``port`` (a ``NewPort``) or bind the existing port with that id (a
        tenant VIF) as ``binding`` says, then wait, up to ``timeout`` seconds, for the
        agent to report it ACTIVE.  An error means nothing was created or changed."""

    def unplug(self, port_id: str, nic_host: str, *, delete: bool, timeout: float) -> bool:
        """Delete the port (``delete``) or unbind it (a VIF), then wait until the agent
        of ``nic_host`` has taken it off the NIC: False when it did not within
        ``timeout``.  A port that does not exist (any more) is removed already."""

    def verify_plugged(
        self, nic_host: str, port_ids: Sequence[str], timeout: float
    ) -> dict[str, Verdict]:
        """Ask the agent of ``nic_host`` to confirm, read from OVS, that the ports are
        plugged as desired: a verdict per port."""

    def set_dhcp_options(self, port_id: str, options: Sequence[DhcpOption]) -> None:
        """Update the port's ``extra_dhcp_opts`` with ``options`` (merged by name and IP
        version; a None value removes that option).  NetworkObjectNotFound when the
        port does not exist."""


def get_port(client: NetworkClient, port_id: str) -> NetworkPort | None:
    """The port ``port_id``, or None when it does not exist."""
    found = client.ports(ids=(port_id,))
    return found[0] if found else None


def selected(port: NetworkPort, device_id: str | None, name_prefix: str) -> bool:
    """The filter of ``NetworkClient.ports`` beyond ``ids``, for its implementations."""
    if device_id is None:
        return port.name.startswith(name_prefix)
    return (
        port.device_id == device_id
        and port.device_owner.startswith(OWNER_PREFIX)
        and port.name.startswith(name_prefix)
    )
