"""Names of provision and power states, as Ironic spells them.

The conductor's transition table builds on these; the API uses the groups
below to decide which changes a node's current state allows.
"""

from __future__ import annotations

ENROLL = "enroll"
VERIFYING = "verifying"
MANAGEABLE = "manageable"
AVAILABLE = "available"
ACTIVE = "active"
INSPECTING = "inspecting"
INSPECTWAIT = "inspect wait"
INSPECTFAIL = "inspect failed"
ADOPTFAIL = "adopt failed"
DEPLOYING = "deploying"
CLEANING = "cleaning"

POWER_ON = "power on"
POWER_OFF = "power off"

# States in which the wiring of a node (smart NIC flags, local link
# connections, its network interface) may change: nothing is plugged then.
WIRING_CHANGE_STATES = frozenset({ENROLL, INSPECTING, MANAGEABLE})

# Ironic lets a node be deleted only in these states unless it is in maintenance.
DELETE_STATES = frozenset({ENROLL, MANAGEABLE, AVAILABLE, ADOPTFAIL, INSPECTFAIL})
