"""The smart NIC power rule, in one place (spec: "Deployment Interfaces").

A smart NIC shares power with its host, so its OVS can only be programmed
while the host is on — and the host must not boot anything meanwhile.  Every
network configuration call of every flow runs inside ``network_power``:
remember the power state; if the host is off, set the next boot device to
BIOS and power on; run the network calls; then restore the remembered state,
in a ``finally`` so that a failure never leaves the host powered in BIOS.
Nodes whose network interface does not need power are left alone.

The window is written down (``driver_internal_info.bios_window``) before the
power-on and cleared after the power-off, so that when the process dies inside
it the next conductor knows the host may sit in BIOS and powers it off
(``conductor/recovery.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from metalnic.baremetal import states
from metalnic.baremetal.conductor import history
from metalnic.baremetal.conductor.task import BIOS_WINDOW, Task
from metalnic.baremetal.states import PowerTarget


@contextmanager
def network_power(task: Task) -> Iterator[None]:
    if not task.drivers.network.need_power_on(task.ctx):
        yield
        return
    remembered = task.power_state()
    if remembered == states.POWER_OFF:
        task.journal(BIOS_WINDOW, True)
        try:
            task.set_boot_device(states.BOOT_BIOS)
        except BaseException:
            task.journal(BIOS_WINDOW, None)  # the host never left power off
            raise
        task.set_power(PowerTarget.POWER_ON)  # on failure the host may be on: the flag stays
        task.log(history.POWER, "host held in BIOS while its smart NICs are configured")
    try:
        yield
    finally:
        if remembered == states.POWER_OFF:
            task.set_power(PowerTarget.POWER_OFF)
            task.journal(BIOS_WINDOW, None)
