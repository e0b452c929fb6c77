"""Fake power and management: an in-memory BMC per node, for fake-hardware.

``driver_info`` may ask the fake to misbehave, so that failure paths can be
tested without a real BMC: ``fake_power_fail`` ("power on" / "power off")
makes that action fail, ``fake_no_bios`` refuses the BIOS boot device, and
``fake_power_delay`` (seconds) makes power changes take that long, like a real
BMC.  The driver error taxonomy (metalnic/errors.py) can be driven too:
``fake_bmc_down`` (a count, or ``"always"``) makes that many of the node's next
BMC calls fail as unreachable (retryable; the BMC "comes back" afterwards),
``fake_bmc_busy`` the same as busy, and ``fake_credentials_refused`` refuses
every call (permanent).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import (
    BmcBusy,
    BmcCredentialsRefused,
    BmcUnreachable,
    DriverError,
    DriverUnsupported,
    ManagementInterface,
    NodeContext,
    PowerInterface,
)
from metalnic.baremetal.states import BootDevice, PowerState, PowerTarget


@dataclass
class _FakeBmc:
    power: PowerState = states.POWER_OFF
    boot_device: BootDevice | None = None
    persistent: bool = False
    failed: dict[str, int] = field(default_factory=dict)  # knob -> calls failed so far


class FakeBmcs:
    """The fake BMCs of one conductor process, shared by fake power and management."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bmcs: dict[str, _FakeBmc] = {}

    def get(self, uuid: str) -> _FakeBmc:
        with self._lock:
            return self._bmcs.setdefault(uuid, _FakeBmc())


_OUTAGES = {"fake_bmc_down": BmcUnreachable, "fake_bmc_busy": BmcBusy}


def _answer(bmc: _FakeBmc, ctx: NodeContext, action: str) -> None:
    """Fail the way driver_info asks (see the module docstring), else return."""
    info: Any = ctx.driver_info
    if info.get("fake_credentials_refused"):
        raise BmcCredentialsRefused(f"fake BMC refused the credentials while trying to {action}")
    for knob, error in _OUTAGES.items():
        wanted = info.get(knob)
        if wanted is None:
            continue
        done = bmc.failed.get(knob, 0)
        if wanted == "always" or done < int(wanted):
            bmc.failed[knob] = done + 1
            raise error(f"fake BMC is {'busy' if error is BmcBusy else 'unreachable'} ({action})")


class FakePower(PowerInterface):
    def __init__(self, bmcs: FakeBmcs) -> None:
        self._bmcs = bmcs

    def validate(self, ctx: NodeContext) -> None:
        return None

    def get_power_state(self, ctx: NodeContext) -> PowerState:
        bmc = self._bmcs.get(ctx.uuid)
        _answer(bmc, ctx, "read the power state")
        return bmc.power

    def set_power_state(self, ctx: NodeContext, target: PowerTarget, timeout: float) -> None:
        off = target in (PowerTarget.POWER_OFF, PowerTarget.SOFT_POWER_OFF)
        wanted = states.POWER_OFF if off else states.POWER_ON
        _answer(self._bmcs.get(ctx.uuid), ctx, f"set power to {wanted}")
        if ctx.driver_info.get("fake_power_fail") == wanted:
            raise DriverError(f"fake BMC refused to {wanted}")
        delay = float(ctx.driver_info.get("fake_power_delay", 0))
        if delay > timeout:
            raise DriverError(f"fake BMC did not reach {wanted} within {timeout:.0f} s")
        time.sleep(delay)
        self._bmcs.get(ctx.uuid).power = wanted

    def reboot(self, ctx: NodeContext, timeout: float, soft: bool = False) -> None:
        self.set_power_state(ctx, PowerTarget.POWER_OFF, timeout)
        self.set_power_state(ctx, PowerTarget.POWER_ON, timeout)


class FakeManagement(ManagementInterface):
    def __init__(self, bmcs: FakeBmcs) -> None:
        self._bmcs = bmcs

    def validate(self, ctx: NodeContext) -> None:
        return None

    def supported_boot_devices(self, ctx: NodeContext) -> list[BootDevice]:
        devices = list(states.BOOT_DEVICES)
        if ctx.driver_info.get("fake_no_bios"):
            devices.remove(states.BOOT_BIOS)
        return devices

    def get_boot_device(self, ctx: NodeContext) -> tuple[BootDevice | None, bool | None]:
        bmc = self._bmcs.get(ctx.uuid)
        _answer(bmc, ctx, "read the boot device")
        return bmc.boot_device, bmc.persistent

    def set_boot_device(
        self, ctx: NodeContext, device: BootDevice, persistent: bool = False
    ) -> None:
        if device not in self.supported_boot_devices(ctx):
            raise DriverUnsupported(f"fake BMC does not support boot device {device}")
        bmc = self._bmcs.get(ctx.uuid)
        _answer(bmc, ctx, f"set the boot device to {device}")
        bmc.boot_device, bmc.persistent = device, persistent
