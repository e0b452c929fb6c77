"""Fake power and management: an in-memory BMC per node, for fake-hardware.

``driver_info`` may ask the fake to misbehave, so that failure paths can be
tested without a real BMC: ``fake_power_fail`` ("power on" / "power off")
makes that action fail, ``fake_no_bios`` refuses the BIOS boot device, and
``fake_power_delay`` (seconds) makes power changes take that long, like a real
BMC.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import (
    DriverError,
    ManagementInterface,
    NodeContext,
    PowerInterface,
)


@dataclass
class _FakeBmc:
    power: str = states.POWER_OFF
    boot_device: str | None = None
    persistent: bool = False


class FakeBmcs:
    """The fake BMCs of one conductor process, shared by fake power and management."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bmcs: dict[str, _FakeBmc] = {}

    def get(self, uuid: str) -> _FakeBmc:
        with self._lock:
            return self._bmcs.setdefault(uuid, _FakeBmc())


class FakePower(PowerInterface):
    def __init__(self, bmcs: FakeBmcs) -> None:
        self._bmcs = bmcs

    def validate(self, ctx: NodeContext) -> None:
        return None

    def get_power_state(self, ctx: NodeContext) -> str:
        return self._bmcs.get(ctx.uuid).power

    def set_power_state(self, ctx: NodeContext, target: str, timeout: float) -> None:
        wanted = states.POWER_OFF if target == states.SOFT_POWER_OFF else target
        if ctx.driver_info.get("fake_power_fail") == wanted:
            raise DriverError(f"fake BMC refused to {wanted}")
        delay = float(ctx.driver_info.get("fake_power_delay", 0))
        if delay > timeout:
            raise DriverError(f"fake BMC did not reach {wanted} within {timeout:.0f} s")
        time.sleep(delay)
        self._bmcs.get(ctx.uuid).power = wanted

    def reboot(self, ctx: NodeContext, timeout: float, soft: bool = False) -> None:
        self.set_power_state(ctx, states.POWER_OFF, timeout)
        self.set_power_state(ctx, states.POWER_ON, timeout)


class FakeManagement(ManagementInterface):
    def __init__(self, bmcs: FakeBmcs) -> None:
        self._bmcs = bmcs

    def validate(self, ctx: NodeContext) -> None:
        return None

    def supported_boot_devices(self, ctx: NodeContext) -> list[str]:
        devices = list(states.BOOT_DEVICES)
        if ctx.driver_info.get("fake_no_bios"):
            devices.remove(states.BOOT_BIOS)
        return devices

    def get_boot_device(self, ctx: NodeContext) -> tuple[str | None, bool | None]:
        bmc = self._bmcs.get(ctx.uuid)
        return bmc.boot_device, bmc.persistent

    def set_boot_device(self, ctx: NodeContext, device: str, persistent: bool = False) -> None:
        if device not in self.supported_boot_devices(ctx):
            raise DriverError(f"fake BMC does not support boot device {device}")
        bmc = self._bmcs.get(ctx.uuid)
        bmc.boot_device, bmc.persistent = device, persistent
