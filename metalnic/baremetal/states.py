"""Names of provision and power states and boot devices, as Ironic spells them.

The conductor's transition table (conductor/states.py) is built from these;
the API uses the groups below to decide which changes a state allows.
"""

from __future__ import annotations

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

POWER_ON = "power on"
POWER_OFF = "power off"
REBOOT = "rebooting"
SOFT_POWER_OFF = "soft power off"
SOFT_REBOOT = "soft rebooting"
POWER_TARGETS = (POWER_ON, POWER_OFF, REBOOT, SOFT_POWER_OFF, SOFT_REBOOT)

BOOT_PXE = "pxe"
BOOT_DISK = "disk"
BOOT_BIOS = "bios"
BOOT_CDROM = "cdrom"
BOOT_SAFE = "safe"
BOOT_DEVICES = (BOOT_PXE, BOOT_DISK, BOOT_BIOS, BOOT_CDROM, BOOT_SAFE)

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
