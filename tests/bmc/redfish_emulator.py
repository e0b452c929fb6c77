"""The Redfish BMC of the tests is the lab's (metalnic.lab.redfish); re-exported here."""

from metalnic.lab.redfish import (
    DEFAULT_SYSTEMS,
    PASSWORD,
    TWO_SYSTEMS,
    USERNAME,
    RedfishEmulator,
    start_redfish_emulator,
)

__all__ = [
    "DEFAULT_SYSTEMS",
    "PASSWORD",
    "TWO_SYSTEMS",
    "USERNAME",
    "RedfishEmulator",
    "start_redfish_emulator",
]
