"""The driver interfaces: one small ABC per concern, as Ironic splits them.

Drivers receive an immutable ``NodeContext`` (a snapshot of the node and its
ports) and return values or raise a ``DriverError``; they never touch the
database, the node lock or the state machine.  Vendor exceptions (sushy,
pyghmi, HTTP) are translated inside each driver module into the driver error
taxonomy of metalnic/errors.py (retryable ``BmcUnreachable``/``BmcTimedOut``/
``BmcBusy`` vs permanent ``BmcCredentialsRefused``/``DriverUnsupported``/
``DriverConfigError``), with messages that never carry credentials.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metalnic.baremetal.states import BootDevice, PowerState, PowerTarget

# The driver error taxonomy lives with every other error (metalnic/errors.py);
# drivers import these names from here or from there.
from metalnic.errors import BmcBusy as BmcBusy
from metalnic.errors import BmcCredentialsRefused as BmcCredentialsRefused
from metalnic.errors import BmcRetryable as BmcRetryable
from metalnic.errors import BmcTimedOut as BmcTimedOut
from metalnic.errors import BmcUnreachable as BmcUnreachable
from metalnic.errors import DriverConfigError as DriverConfigError
from metalnic.errors import DriverError as DriverError
from metalnic.errors import DriverUnsupported as DriverUnsupported


@dataclass(frozen=True)
class PortInfo:
    uuid: str
    address: str
    is_smartnic: bool
    local_link_connection: Mapping[str, str]
    pxe_enabled: bool = True
    physical_network: str | None = None
    vif: str | None = None  # the tenant network port attached through /v1/nodes/{id}/vifs
    portgroup: str | None = None  # the uuid of the port group (bond) it is a member of


@dataclass(frozen=True)
class PortGroupInfo:
    uuid: str
    name: str | None
    address: str | None
    mode: str | None
    properties: Mapping[str, Any] = field(default_factory=dict)
    vif: str | None = None


@dataclass(frozen=True)
class Link:
    """What one network port serves on a smart NIC: a port, or a bond of ports.

    A bond's members share one NIC host (the port group rules guarantee it).
    """

    uuid: str  # of the bare-metal port or port group
    kind: str  # "port" or "port group"
    address: str
    members: tuple[PortInfo, ...]
    vif: str | None = None
    group: PortGroupInfo | None = None

    @property
    def host(self) -> str:
        return self.members[0].local_link_connection["hostname"]


@dataclass(frozen=True)
class NodeContext:
    uuid: str
    name: str | None
    driver: str
    # Secrets live in these: keep them out of reprs (tracebacks, logs).
    driver_info: Mapping[str, Any] = field(repr=False)
    instance_info: Mapping[str, Any] = field(default_factory=dict, repr=False)
    driver_internal_info: Mapping[str, Any] = field(default_factory=dict, repr=False)
    ports: tuple[PortInfo, ...] = ()
    portgroups: tuple[PortGroupInfo, ...] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def smartnic_ports(self) -> tuple[PortInfo, ...]:
        return tuple(p for p in self.ports if p.is_smartnic)

    @property
    def smartnic_links(self) -> tuple[Link, ...]:
        """Smart NIC port groups (bonds), then smart NIC ports outside any group."""
        links: list[Link] = []
        for group in self.portgroups:
            members = tuple(p for p in self.smartnic_ports if p.portgroup == group.uuid)
            if members:
                address = group.address or members[0].address
                links.append(Link(group.uuid, "port group", address, members, group.vif, group))
        for port in self.smartnic_ports:
            if port.portgroup is None:
                links.append(Link(port.uuid, "port", port.address, (port,), port.vif))
        return tuple(links)


class PowerInterface(abc.ABC):
    @abc.abstractmethod
    def validate(self, ctx: NodeContext) -> None:
        """Raise DriverConfigError when driver_info cannot work."""

    @abc.abstractmethod
    def get_power_state(self, ctx: NodeContext) -> PowerState:
        """``power on`` or ``power off``, as the BMC reports it now."""

    @abc.abstractmethod
    def set_power_state(self, ctx: NodeContext, target: PowerTarget, timeout: float) -> None:
        """Reach ``target`` (power on/off, soft power off) and wait until the BMC says so."""

    @abc.abstractmethod
    def reboot(self, ctx: NodeContext, timeout: float, soft: bool = False) -> None:
        """Power cycle (or soft reboot) and wait until the node is on again."""


class ManagementInterface(abc.ABC):
    @abc.abstractmethod
    def validate(self, ctx: NodeContext) -> None: ...

    @abc.abstractmethod
    def supported_boot_devices(self, ctx: NodeContext) -> list[BootDevice]: ...

    @abc.abstractmethod
    def get_boot_device(self, ctx: NodeContext) -> tuple[BootDevice | None, bool | None]:
        """The next boot device and whether it is persistent (None when unknown)."""

    @abc.abstractmethod
    def set_boot_device(
        self, ctx: NodeContext, device: BootDevice, persistent: bool = False
    ) -> None:
        """Set and verify the next boot device (``bios`` included)."""


class NetworkPhase(enum.StrEnum):
    """Which network a node's ports are on for what it does; Ironic's
    add/remove_{provisioning,cleaning,rescuing,inspection,tenant}_network family
    collapsed into ``attach(ctx, phase)`` / ``detach(ctx, phase)``.  Tenant ports
    are the VIFs attached through ``/v1/nodes/{id}/vifs``; every other phase has a
    network of its own (settings).  Listed in the order a clean-up detaches them."""

    TENANT = "tenant"
    PROVISIONING = "provisioning"
    CLEANING = "cleaning"
    RESCUING = "rescuing"
    INSPECTION = "inspection"


class NetworkInterface(abc.ABC):
    """Moves a node's ports between the networks of its phases (``NetworkPhase``)."""

    @abc.abstractmethod
    def validate(self, ctx: NodeContext) -> None: ...

    @abc.abstractmethod
    def need_power_on(self, ctx: NodeContext) -> bool:
        """True when the ports can only be configured with the host powered (smart NICs)."""

    @abc.abstractmethod
    def attach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        """Put the node's ports on the network of ``phase`` and wait until they are up."""

    @abc.abstractmethod
    def detach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        """Take the node's ports off the network of ``phase`` and wait until they are gone."""

    @abc.abstractmethod
    def verify_active(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        """The boot gate: raise unless every port is up on the network of ``phase``."""

    def plug_vif(self, ctx: NodeContext, link: str) -> None:
        """Plug the tenant VIF recorded on ``link`` (a port or port group uuid) of a
        deployed node now, and wait until it is up.  Interfaces that switch nothing
        have nothing to do."""
        return None

    def unplug_vif(self, ctx: NodeContext, link: str) -> None:
        """Take the tenant VIF on ``link`` off the NIC of a deployed node and wait."""
        return None

    def phase_ports(self, ctx: NodeContext, phase: NetworkPhase) -> tuple[str, ...]:
        """The ids of the network ports that carry the node on ``phase``'s network (the
        ports a boot interface puts its DHCP options on); none for interfaces that
        make no network ports."""
        return ()


class BootInterface(abc.ABC):
    """How a host boots the ramdisk of a phase (deploy, clean, rescue): what its DHCP
    options say and what the boot server hands it, as Ironic's boot interfaces do.

    ``ports`` are the network ports that carry the node on the phase's network
    (``NetworkInterface.phase_ports``).  ``clean_up_ramdisk`` must be idempotent:
    failure paths call it for phases the node may never have reached."""

    #: False: the interface sets nothing up (the conductor skips its calls).
    configures: bool = True

    @abc.abstractmethod
    def validate(self, ctx: NodeContext) -> None:
        """Raise DriverConfigError when this node cannot boot this way."""

    @abc.abstractmethod
    def prepare_ramdisk(
        self,
        ctx: NodeContext,
        phase: NetworkPhase,
        ports: Sequence[str],
        params: Sequence[str] = (),
    ) -> None:
        """Make the host's next network boot on ``phase``'s network start its ramdisk,
        with ``params`` added to its kernel command line."""

    @abc.abstractmethod
    def clean_up_ramdisk(self, ctx: NodeContext, phase: NetworkPhase, ports: Sequence[str]) -> None:
        """Undo ``prepare_ramdisk``: nothing of it is left behind."""


Say = Callable[[str], None]


def say_nothing(message: str) -> None:
    """The progress reporter of a caller that keeps no history."""


class DeployInterface(abc.ABC):
    """How the image gets onto the disk; the conductor's flows do the rest."""

    #: Whether deploying waits for a ramdisk agent to heartbeat (direct).
    uses_agent: bool = False
    #: Whether the booted ramdisk is the instance itself (ramdisk).
    ramdisk_is_instance: bool = False

    @abc.abstractmethod
    def validate(self, ctx: NodeContext) -> None:
        """Raise DriverConfigError when this node cannot be deployed this way."""

    def ramdisk_params(self, ctx: NodeContext) -> tuple[str, ...]:
        """Kernel parameters the deploy and cleaning ramdisks need for this interface
        (ansible: the conductor's SSH public key); none by default."""
        return ()

    def write_image(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        """Write and verify the image on the host whose ramdisk agent is at
        ``agent_url``; ``say`` tells the node's history how it goes."""
        raise DriverError(f"{type(self).__name__} does not write images through an agent")

    def clean_disk(self, ctx: NodeContext, agent_url: str, say: Say = say_nothing) -> None:
        """Erase the disk's metadata on the host whose ramdisk agent is at ``agent_url``."""
        raise DriverError(f"{type(self).__name__} does not clean through an agent")


class RescueInterface(abc.ABC):
    """How a rescued host gets its rescue environment (Ironic's rescue interface);
    the conductor's flows do the network and power sequencing around it."""

    #: Whether rescuing waits for the rescue ramdisk's agent to heartbeat (agent).
    uses_agent: bool = False

    @abc.abstractmethod
    def validate(self, ctx: NodeContext) -> None:
        """Raise DriverConfigError when this node cannot be rescued this way."""

    def finalize(self, ctx: NodeContext, agent_url: str, hashed_password: str) -> None:
        """Hand the rescue ramdisk's agent the password hash; it then stops being an agent."""
        raise DriverError(f"{type(self).__name__} does not rescue through an agent")
