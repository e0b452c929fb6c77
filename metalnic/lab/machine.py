"""What a lab host *is* to the code that follows its BMC: a machine behind a seam.

The follower (``metalnic.lab.hosts.HostFollower``) knows BMCs — what they push,
what they answer when polled — and turns that into one of four states; the
machine does what a real server does in that state.  Two machines implement
the seam: ``hosts.NamespaceMachine`` (processes in a network namespace: fast,
for most tests) and ``vm.QemuMachine`` (a QEMU VM whose NIC is a tap that is
port B on the smart NIC's OVS).

Both share a ``HostLog``: the host's directory, the lock that serialises every
change of state (a poll, a push, a lease, a VM that exits by itself), the boot
counter a background watcher checks to know it is stale, and ``events.log``
(``<unix time> <state> <detail>``, one line per boot, lease or machine event:
the demo prints them, the packet tests read them to know when a host was in BIOS).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from metalnic.lab.probe import Probe

log = logging.getLogger("metalnic.lab.hosts")

OFF, BIOS, PXE, DISK = "off", "bios", "pxe", "disk"


def observed_state(power_state: str, boot_device: str | None) -> str:
    """The state of a host whose BMC says ``power_state``/``boot_device`` (Redfish names)."""
    if power_state != "On":
        return OFF
    return {"BiosSetup": BIOS, "Pxe": PXE}.get(boot_device or "", DISK)


@dataclass
class HostLog:
    """What a host's follower and its machine share (see the module docstring)."""

    name: str
    dir: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    boots: int = 0  # which boot is current: a watcher of an older boot ends

    def event(self, state: str, detail: str) -> None:
        log.info("%s: %s — %s", self.name, state, detail)
        with (self.dir / "events.log").open("a") as out:
            out.write(f"{time.time():.6f} {state} {detail}\n")


class Machine(Protocol):
    """A host's hardware.  ``boot`` and ``power_cut`` are called with ``HostLog.lock``
    held; ``probe`` without it (it may take seconds, and a BMC's push must not wait)."""

    def boot(self, state: str) -> str:
        """Go to ``state`` (OFF, BIOS, PXE or DISK) now — by the time this returns an
        OFF machine sends nothing; returns the detail of the state's event.
        ``HostLog.boots`` already counts this boot."""
        ...

    def power_cut(self) -> None:
        """Off at once (the follower is stopping); no event."""
        ...

    def probe(self, check: Probe) -> bool:
        """Does the host's running OS reach ``check``'s target (ping, a TCP connect)?
        Raises ``probe.ProbeError`` when there is no OS to ask."""
        ...
