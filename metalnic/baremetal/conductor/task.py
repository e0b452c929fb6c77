"""Node locks and the context a flow works in.

A node is reserved by exactly one conductor at a time: a conditional UPDATE
(``reservation IS NULL``) takes it, so two requests racing for one node get
one winner and one 409 ``NodeLocked``.  ``Task`` is what a flow holds: the
node's identity, a fresh immutable snapshot for drivers, the node's driver
instances, and short transactions for state and history writes.

The lock is a compare-and-set on ``reservation`` alone (a Core UPDATE that
leaves the row's revision as it is: it changes no field a request edits);
every other write of a node goes through the ORM and is revision-checked
(db/session.py).  A flow's own writes retry on a fresh read (``Database.retry``)
when a request won the row meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from metalnic import jsontypes, redact
from metalnic.baremetal import rescuepw, states
from metalnic.baremetal.conductor import bmc, history
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.drivers.base import (
    BootInterface,
    DeployInterface,
    DriverError,
    ManagementInterface,
    NetworkInterface,
    NetworkPhase,
    NodeContext,
    PortGroupInfo,
    PortInfo,
    PowerInterface,
    RescueInterface,
)
from metalnic.baremetal.drivers.registry import Registry
from metalnic.baremetal.models import VIF_KEY, Node, Port, PortGroup
from metalnic.baremetal.states import BootDevice, PowerState, PowerTarget
from metalnic.db.base import utcnow
from metalnic.db.session import Database
from metalnic.errors import ConductorStopping, InvalidStateRequested, NodeLocked

# driver_internal_info keys a crash may leave behind, read by conductor/recovery.py:
# the host was powered on in BIOS for a network change (powered.py), and the
# tenant VIF change of a deployed node that was under way (service.py).
BIOS_WINDOW = "bios_window"
VIF_PENDING = "vif_pending"


# The states in which the rescue password's hash is kept (until the agent took it).
RESCUE_PASSWORD_STATES = frozenset({states.RESCUING, states.RESCUEWAIT})


def acquire(session: Session, node: Node, holder: str) -> None:
    """Reserve ``node`` for ``holder`` or raise NodeLocked (the row is re-read)."""
    result = session.execute(
        update(Node)
        .where(Node.id == node.id, Node.reservation.is_(None))
        .values(reservation=holder)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(node)
        raise NodeLocked(node.uuid, node.reservation or "another conductor")
    session.refresh(node)


def release(session: Session, node_id: int, holder: str) -> None:
    session.execute(
        update(Node)
        .where(Node.id == node_id, Node.reservation == holder)
        .values(reservation=None)
        .execution_options(synchronize_session=False)
    )


def check(node: Node, event: machine.Event) -> machine.Row:
    """The table row for ``event`` in the node's state, or an error naming the allowed verbs."""
    row = machine.lookup(node.provision_state, event)
    if row is None:
        verbs = ", ".join(machine.verbs_from(node.provision_state)) or "none"
        raise InvalidStateRequested(
            f"The requested action '{event}' can not be performed on node {node.uuid} while it "
            f"is in state '{node.provision_state}'; allowed actions there: {verbs}."
        )
    return row


def advance(node: Node, event: machine.Event) -> None:
    """Take ``event`` in the state machine: the one place provision_state is written."""
    row = check(node, event)
    node.provision_state, node.target_provision_state = machine.resolve(
        row, node.target_provision_state
    )
    node.provision_updated_at = utcnow()
    info = node.instance_info or {}
    if node.provision_state not in RESCUE_PASSWORD_STATES and rescuepw.HASH_KEY in info:
        # Ironic's remove_rescue_password, for every way out of a rescue: done (the
        # agent has it), failed, timed out, aborted, unrescue, delete.
        node.instance_info = {k: v for k, v in info.items() if k != rescuepw.HASH_KEY}


def snapshot(session: Session, node: Node) -> NodeContext:
    ports = session.scalars(
        select(Port)
        .where(Port.node_id == node.id)
        .options(joinedload(Port.portgroup))
        .order_by(Port.id)
    ).all()
    groups = session.scalars(
        select(PortGroup).where(PortGroup.node_id == node.id).order_by(PortGroup.id)
    ).all()
    # The conductor is about to hand these to drivers: keep them out of every log line.
    redact.remember(
        *redact.secret_values(node.driver_info),
        *redact.secret_values(node.instance_info),
        *redact.secret_values(node.driver_internal_info),
    )
    return NodeContext(
        uuid=node.uuid,
        name=node.name,
        driver=node.driver,
        driver_info=dict(node.driver_info),
        instance_info=dict(node.instance_info),
        driver_internal_info=dict(node.driver_internal_info),
        ports=tuple(
            PortInfo(
                uuid=p.uuid,
                address=p.address,
                is_smartnic=p.is_smartnic,
                local_link_connection=dict(p.local_link_connection),
                pxe_enabled=p.pxe_enabled,
                physical_network=p.physical_network,
                vif=jsontypes.text(p.internal_info, VIF_KEY),
                portgroup=p.portgroup_uuid,
            )
            for p in ports
        ),
        portgroups=tuple(
            PortGroupInfo(
                uuid=g.uuid,
                name=g.name,
                address=g.address,
                mode=g.mode,
                properties=dict(g.properties),
                vif=jsontypes.text(g.internal_info, VIF_KEY),
            )
            for g in groups
        ),
        properties=dict(node.properties),
    )


@dataclass
class Drivers:
    power: PowerInterface
    management: ManagementInterface
    network: NetworkInterface
    deploy: DeployInterface
    boot: BootInterface
    rescue: RescueInterface


def drivers_for(registry: Registry, node: Node) -> Drivers:
    # A node without a boot interface (rows older than the field) boots as configured
    # outside metalnic, which is what every boot interface did before ipxe.
    return Drivers(
        power=registry.implementation("power", node.power_interface or ""),
        management=registry.implementation("management", node.management_interface or ""),
        network=registry.implementation("network", node.network_interface or ""),
        deploy=registry.implementation("deploy", node.deploy_interface or ""),
        boot=registry.implementation("boot", node.boot_interface or "fake"),
        rescue=registry.implementation("rescue", node.rescue_interface or "no-rescue"),
    )


class Task:
    """A flow's handle on one locked node."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        holder: str,
        node_id: int,
        power_timeout: float,
        stopping: Callable[[], bool] = lambda: False,
        retry: bmc.RetryPolicy = bmc.NO_RETRY,
    ) -> None:
        self.db = db
        self.retry = retry  # of retryable BMC failures (conductor/bmc.py)
        self.holder = holder
        self.node_id = node_id
        self.power_timeout = power_timeout
        self.stopping = stopping
        with db.transaction() as s:
            node = s.get_one(Node, node_id)
            self.uuid = node.uuid
            self.drivers = drivers_for(registry, node)
            self.ctx = snapshot(s, node)

    @contextmanager
    def node(self) -> Iterator[Node]:
        """The node row in a short transaction of its own, for reading; writes go
        through ``update``/``set_internal``, which retry on a concurrent change."""
        with self.db.transaction() as s:
            yield s.get_one(Node, self.node_id)

    def refresh(self) -> None:
        with self.db.transaction() as s:
            self.ctx = snapshot(s, s.get_one(Node, self.node_id))

    def log(self, event_type: str, event: str, severity: str = "INFO") -> None:
        with self.db.transaction() as s:
            history.record(
                s, self.node_id, event_type, event, severity=severity, conductor=self.holder
            )

    def update(self, **values: Any) -> None:
        """Set fields of the node; retried on a fresh read when a request changed the
        node meanwhile (its revision moved on), so a flow never fails on that race."""

        def write(s: Session) -> None:
            node = s.get_one(Node, self.node_id)
            for key, value in values.items():
                setattr(node, key, value)

        self.db.retry(write)

    def set_internal(self, **values: Any) -> None:
        """Merge ``values`` into driver_internal_info (on a fresh read, as ``update``)."""

        def write(s: Session) -> None:
            node = s.get_one(Node, self.node_id)
            node.driver_internal_info = {**node.driver_internal_info, **values}

        self.db.retry(write)
        self.refresh()

    def forget_instance_info(self, key: str) -> None:
        """Drop one key of instance_info (on a fresh read, as ``update``)."""

        def write(s: Session) -> None:
            node = s.get_one(Node, self.node_id)
            node.instance_info = {k: v for k, v in node.instance_info.items() if k != key}

        self.db.retry(write)
        self.refresh()

    def checkpoint(self, step: str) -> None:
        """Before each step that moves the host forward (network, boot device, power on):
        a stopping conductor ends the flow here, so that it fails cleanly.  Powering
        off never checks: it is how a flow winds down."""
        if self.stopping():
            raise ConductorStopping(f"the flow ended before {step}")

    def wind_down(self) -> None:
        """From now on the task runs to its end even while the conductor stops (clean-up)."""
        self.stopping = lambda: False

    def journal(self, key: str, value: Any) -> None:
        """Write (or, with None, drop) one crash-recovery key of driver_internal_info
        (on a fresh read, as ``update``)."""

        def write(s: Session) -> None:
            node = s.get_one(Node, self.node_id)
            info = {k: v for k, v in node.driver_internal_info.items() if k != key}
            node.driver_internal_info = info if value is None else {**info, key: value}

        self.db.retry(write)
        self.refresh()

    # --- BMC actions, each logged -----------------------------------------------------

    def power_state(self) -> PowerState:
        state = bmc.call(
            self, "read the power state", lambda: self.drivers.power.get_power_state(self.ctx)
        )
        self.update(power_state=state)
        return state

    def set_power(self, target: PowerTarget) -> None:
        if target.reaches == states.POWER_ON:  # powering off never checks: it winds down
            self.checkpoint(target)
        self.update(target_power_state=target)
        self.log(history.POWER, f"{target} requested")
        power, timeout = self.drivers.power, self.power_timeout
        try:
            if target in (PowerTarget.REBOOT, PowerTarget.SOFT_REBOOT):
                soft = target == PowerTarget.SOFT_REBOOT
                bmc.call(self, target, lambda: power.reboot(self.ctx, timeout, soft))
            else:
                bmc.call(self, target, lambda: power.set_power_state(self.ctx, target, timeout))
        except Exception:
            self.update(target_power_state=None)
            raise
        self.update(power_state=target.reaches, target_power_state=None)
        self.log(history.POWER, f"{target.reaches} (BMC confirmed)")

    def set_boot_device(self, device: BootDevice, persistent: bool = False) -> None:
        what = f"setting the boot device to {device}"
        self.checkpoint(what)
        management = self.drivers.management
        bmc.call(self, what, lambda: management.set_boot_device(self.ctx, device, persistent))
        self.log(
            history.BOOT_DEVICE,
            f"next boot from {device}" + (" (persistent)" if persistent else ""),
        )

    def attach_network(self, phase: NetworkPhase) -> None:
        """Put the ports on ``phase``'s network, logged before and after."""
        self._network_step("attach", phase)
        self.drivers.network.attach(self.ctx, phase)
        self.log(history.NETWORK, f"attach {phase} network: done (ports ACTIVE)")

    def detach_network(self, phase: NetworkPhase) -> None:
        """Take the ports off ``phase``'s network, logged before and after."""
        self._network_step("detach", phase)
        self.drivers.network.detach(self.ctx, phase)
        self.log(history.NETWORK, f"detach {phase} network: done (ports removed)")

    def _network_step(self, action: str, phase: NetworkPhase) -> None:
        self.checkpoint(f"{action} {phase} network")
        self.log(history.NETWORK, f"{action} {phase} network: started")

    def prepare_ramdisk(self, phase: NetworkPhase) -> None:
        """Have the host's next network boot on ``phase``'s network start its ramdisk
        (the boot interface's DHCP options and scripts), logged."""
        boot = self.drivers.boot
        if not boot.configures:
            return
        self.checkpoint(f"preparing the {phase} ramdisk boot")
        ports = self.drivers.network.phase_ports(self.ctx, phase)
        # The deploy interface's kernel parameters go to the ramdisks it works through
        # (deploy and clean), not to the rescue ramdisk.
        params = (
            () if phase is NetworkPhase.RESCUING else self.drivers.deploy.ramdisk_params(self.ctx)
        )
        boot.prepare_ramdisk(self.ctx, phase, ports, params)
        self.log(history.BOOT, f"{phase} ramdisk boot prepared: DHCP options and boot script")

    def clean_up_ramdisk(self, phase: NetworkPhase, logged: bool = True) -> None:
        """Undo ``prepare_ramdisk`` (idempotent).  The boot interface's files go even when
        the network ports cannot be listed; that error is raised afterwards."""
        boot = self.drivers.boot
        if not boot.configures:
            return
        failed: DriverError | None = None
        try:
            ports = self.drivers.network.phase_ports(self.ctx, phase)
        except DriverError as exc:
            ports, failed = (), exc
        boot.clean_up_ramdisk(self.ctx, phase, ports)
        if failed is not None:
            raise failed
        if logged:
            self.log(history.BOOT, f"{phase} ramdisk boot removed: DHCP options and boot script")

    def boot_gate(self, phase: NetworkPhase) -> None:
        """Right before booting: every port must be up on the ``phase`` network."""
        self.drivers.network.verify_active(self.ctx, phase)
        self.log(history.BOOT_GATE, f"ports verified ACTIVE on the {phase} network")
