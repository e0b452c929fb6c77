"""The typed vocabulary of the bare-metal side: provision states, power states and
targets, boot devices — as Ironic spells them.

Each is an ``enum.StrEnum``: its members *are* the wire strings (``"wait call-back"``,
``"power on"``), so JSON, the database and comparisons with plain strings are
unchanged, while mypy (strict) refuses a misspelt or mistyped one wherever a
signature names the enum (a power *target* is not a power *state*; a provision
state is not an event).  The conductor's transition table (conductor/states.py)
is built from these; the API uses the groups below to decide which changes a
state allows.  The module-level names (``ACTIVE``, ``POWER_ON``…) are the same
members, kept short for the many places that use them.
"""

from __future__ import annotations

from enum import StrEnum


class ProvisionState(StrEnum):
    """``provision_state`` and ``target_provision_state`` of a node."""

    ENROLL = "enroll"
    VERIFYING = "verifying"
    MANAGEABLE = "manageable"
    INSPECTING = "inspecting"
    INSPECTWAIT = "inspect wait"
    INSPECTFAIL = "inspect failed"
    AVAILABLE = "available"
    DEPLOYING = "deploying"
    DEPLOYWAIT = "wait call-back"
    DEPLOYFAIL = "deploy failed"
    ACTIVE = "active"
    DELETING = "deleting"
    ERROR = "error"
    CLEANING = "cleaning"
    CLEANWAIT = "clean wait"
    CLEANFAIL = "clean failed"
    RESCUING = "rescuing"
    RESCUEWAIT = "rescue wait"
    RESCUEFAIL = "rescue failed"
    RESCUE = "rescue"
    UNRESCUING = "unrescuing"
    UNRESCUEFAIL = "unrescue failed"
    ADOPTING = "adopting"
    ADOPTFAIL = "adopt failed"


class PowerState(StrEnum):
    """``power_state``: what the BMC reports."""

    POWER_ON = "power on"
    POWER_OFF = "power off"


class PowerTarget(StrEnum):
    """``target_power_state`` and the API's power verbs: what is asked of the BMC."""

    POWER_ON = "power on"
    POWER_OFF = "power off"
    REBOOT = "rebooting"
    SOFT_POWER_OFF = "soft power off"
    SOFT_REBOOT = "soft rebooting"

    @property
    def reaches(self) -> PowerState:
        """The power state the node is in once this target is reached."""
        off = self in (PowerTarget.POWER_OFF, PowerTarget.SOFT_POWER_OFF)
        return PowerState.POWER_OFF if off else PowerState.POWER_ON


class BootDevice(StrEnum):
    PXE = "pxe"
    DISK = "disk"
    BIOS = "bios"
    CDROM = "cdrom"
    SAFE = "safe"


ENROLL = ProvisionState.ENROLL
VERIFYING = ProvisionState.VERIFYING
MANAGEABLE = ProvisionState.MANAGEABLE
INSPECTING = ProvisionState.INSPECTING
INSPECTWAIT = ProvisionState.INSPECTWAIT
INSPECTFAIL = ProvisionState.INSPECTFAIL
AVAILABLE = ProvisionState.AVAILABLE
DEPLOYING = ProvisionState.DEPLOYING
DEPLOYWAIT = ProvisionState.DEPLOYWAIT
DEPLOYFAIL = ProvisionState.DEPLOYFAIL
ACTIVE = ProvisionState.ACTIVE
DELETING = ProvisionState.DELETING
ERROR = ProvisionState.ERROR
CLEANING = ProvisionState.CLEANING
CLEANWAIT = ProvisionState.CLEANWAIT
CLEANFAIL = ProvisionState.CLEANFAIL
RESCUING = ProvisionState.RESCUING
RESCUEWAIT = ProvisionState.RESCUEWAIT
RESCUEFAIL = ProvisionState.RESCUEFAIL
RESCUE = ProvisionState.RESCUE
UNRESCUING = ProvisionState.UNRESCUING
UNRESCUEFAIL = ProvisionState.UNRESCUEFAIL
ADOPTING = ProvisionState.ADOPTING
ADOPTFAIL = ProvisionState.ADOPTFAIL

POWER_ON = PowerState.POWER_ON
POWER_OFF = PowerState.POWER_OFF
REBOOT = PowerTarget.REBOOT
SOFT_POWER_OFF = PowerTarget.SOFT_POWER_OFF
SOFT_REBOOT = PowerTarget.SOFT_REBOOT
POWER_TARGETS = tuple(PowerTarget)

BOOT_PXE = BootDevice.PXE
BOOT_DISK = BootDevice.DISK
BOOT_BIOS = BootDevice.BIOS
BOOT_CDROM = BootDevice.CDROM
BOOT_SAFE = BootDevice.SAFE
BOOT_DEVICES = tuple(BootDevice)

# States in which the wiring of a node (smart NIC flags, local link
# connections, its network interface) may change: nothing is plugged then.
WIRING_CHANGE_STATES = frozenset({ENROLL, INSPECTING, MANAGEABLE})

# States in which a node's driver and interfaces may change: no instance is on
# it (or left on its disk) and no flow holds it.  Not available's neighbours
# ``deploy failed``, ``clean failed``, ``error``, ``adopt failed``, the rescue
# states and ``active``: there the disk may hold an instance, and the undeploy or
# cleaning that follows runs with the interfaces of the moment (a deploy
# interface that skips the wipe would leave the instance's data behind).
# Maintenance lifts this for admins only (an operator repairing a broken BMC
# driver); a member can put its own node in maintenance, so it cannot lift it.
INTERFACE_CHANGE_STATES = frozenset({ENROLL, MANAGEABLE, AVAILABLE, INSPECTFAIL})

# Ironic lets a node be deleted only in these states unless it is in maintenance.
DELETE_STATES = frozenset({ENROLL, MANAGEABLE, AVAILABLE, ADOPTFAIL, INSPECTFAIL})
