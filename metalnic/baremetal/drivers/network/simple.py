"""Network interfaces that need no network service: noop, flat and fake.

``noop`` and ``flat`` do nothing (a flat network is wired by hand).  ``fake``
behaves like a smart NIC interface without a network service: it needs the
host powered when the node has smart NIC ports, keeps per-node attachments in
memory, and fails on request (``driver_info.fake_network_fail`` =
"attach:tenant", "detach:provisioning", "verify:tenant", …) so the conductor's
failure paths can be tested.
"""

from __future__ import annotations

import threading

from metalnic.baremetal.drivers.base import (
    DriverError,
    NetworkInterface,
    NetworkPhase,
    NodeContext,
)


class NoopNetwork(NetworkInterface):
    def validate(self, ctx: NodeContext) -> None:
        return None

    def need_power_on(self, ctx: NodeContext) -> bool:
        return False

    def attach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        return None

    def detach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        return None

    def verify_active(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        return None


class FakeNetwork(NetworkInterface):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attached: dict[str, set[NetworkPhase]] = {}

    def _maybe_fail(self, ctx: NodeContext, action: str, phase: NetworkPhase) -> None:
        if ctx.driver_info.get("fake_network_fail") == f"{action}:{phase}":
            raise DriverError(f"fake network refused to {action} the {phase} network")

    def validate(self, ctx: NodeContext) -> None:
        return None

    def need_power_on(self, ctx: NodeContext) -> bool:
        return bool(ctx.smartnic_ports)

    def attach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        self._maybe_fail(ctx, "attach", phase)
        with self._lock:
            self.attached.setdefault(ctx.uuid, set()).add(phase)

    def detach(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        self._maybe_fail(ctx, "detach", phase)
        with self._lock:
            self.attached.setdefault(ctx.uuid, set()).discard(phase)

    def verify_active(self, ctx: NodeContext, phase: NetworkPhase) -> None:
        self._maybe_fail(ctx, "verify", phase)
        with self._lock:
            if phase not in self.attached.get(ctx.uuid, set()):
                raise DriverError(f"ports are not active on the {phase} network")
