"""Nodes a conductor left behind: what the next one (or it, while stopping) does with them.

A conductor that stops — killed, crashed, or asked to stop — may leave nodes
reserved, mid-flow, with a host held in BIOS or a tenant VIF half plugged.
``orphan`` releases such a node in the caller's transaction and puts it in a
clear state with a ``last_error`` that says what happened (as Ironic does when
it takes over a dead conductor's nodes); the work it returns then runs under
a fresh lock:

* a node mid-flow goes to the flow's ``*failed`` state; when the flow powers
  the host and moves its ports (deploy, clean, rescue, unrescue, delete) the
  host is powered off and its ports are taken off every network (``unwire``),
  so that no network port stays bound;
* a deployed node whose VIF change was under way (``vif_pending``) has that VIF
  unplugged and forgotten again, inside the smart NIC power rule;
* a host the journal says may sit in BIOS (``bios_window``) is powered off.

Until that work has succeeded the node carries
``driver_internal_info.recovery_pending``; the periodic pass retries it every
``RETRY_AFTER`` seconds (a restarted server usually runs before the smart NIC
agents have reconnected) as long as the node stays in the state ``orphan``
left it in — once a user moves it on, its flows own its ports again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.orm import Session

from metalnic.baremetal import nodes, states, vifs
from metalnic.baremetal.conductor import flows, history
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.conductor import task as tasks
from metalnic.baremetal.conductor.powered import network_power
from metalnic.baremetal.conductor.states import Event
from metalnic.baremetal.conductor.task import BIOS_WINDOW, VIF_PENDING, Task
from metalnic.baremetal.drivers.base import DriverError, NetworkPhase
from metalnic.baremetal.models import Node
from metalnic.baremetal.states import PowerTarget

log = logging.getLogger(__name__)

Work = Callable[[Task], None]
PENDING = "recovery_pending"
# Flows that power the host and move its ports; the others (verify, inspect, adopt)
# never do, and a host being adopted may run an instance: it is not touched.
POWERED_FLOWS = flows.POWER_OFF_ON_FAILURE
RETRY_AFTER = 3.0  # seconds between attempts of a clean-up that failed
# Every network a node's ports can be on; detaching one they are not on does nothing.
PHASES = tuple(NetworkPhase)


def orphan(session: Session, node: Node, gone: str, by: str) -> Work | None:
    """Take ``node`` over from conductor ``gone``: the work left to do, for which the
    node stays reserved by ``by`` (who must run it and release), or None: released."""
    node.reservation = None
    node.target_power_state = None
    info = node.driver_internal_info
    pending = info.get(VIF_PENDING)
    work: str
    if node.provision_state in machine.ACTIVE_FLOW_STATES:
        state = node.provision_state
        tasks.advance(node, Event.FAIL)
        if state not in POWERED_FLOWS:  # verifying, inspecting, adopting: left as they are
            node.last_error = f"The conductor ({gone}) stopped while the node was {state}."
            history.record(
                session, node.id, history.ERROR, node.last_error, severity="ERROR", conductor=by
            )
            return None
        node.last_error = (
            f"The conductor ({gone}) stopped while the node was {state}; the flow was failed, "
            "the host is powered off and its ports are taken off every network."
        )
        work = "unwire"
    elif isinstance(pending, dict):
        node.last_error = (
            f"The conductor ({gone}) stopped during the {pending.get('op')} of VIF "
            f"{pending.get('vif')}; the VIF is unplugged and detached again."
        )
        work = "undo_vif"
    elif info.get(BIOS_WINDOW):
        node.last_error = (
            f"The conductor ({gone}) stopped while the host was held in BIOS for a "
            "network change; the host is powered off."
        )
        work = "leave_bios"
    else:
        return None
    mark(node, work)
    node.reservation = by
    history.record(session, node.id, history.ERROR, node.last_error, severity="ERROR", conductor=by)
    return attempt


def mark(node: Node, work: str, delay: float = 0.0) -> None:
    """Write down the clean-up ``work`` still owed to ``node`` in its current state."""
    node.driver_internal_info = {
        **node.driver_internal_info,
        PENDING: {"work": work, "state": node.provision_state, "not_before": time.time() + delay},
    }


class _Pending(Protocol):
    """What ``due`` reads: a node, or a row of just these columns."""

    @property
    def driver_internal_info(self) -> Mapping[str, object]: ...
    @property
    def reservation(self) -> str | None: ...
    @property
    def provision_state(self) -> str: ...


def due(node: _Pending, now: float) -> bool:
    """Whether the periodic pass should try the pending clean-up of ``node`` now."""
    pending = node.driver_internal_info.get(PENDING)
    return (
        isinstance(pending, dict)
        and node.reservation is None
        and pending.get("state") == node.provision_state
        and isinstance(not_before := pending.get("not_before", 0), int | float)
        and not_before <= now
    )


def attempt(task: Task) -> None:
    """Run the pending clean-up; on failure it stays pending and is retried later."""
    pending = task.ctx.driver_internal_info.get(PENDING)
    if not isinstance(pending, dict):
        return
    try:
        WORKS[str(pending.get("work"))](task)
    except Exception as exc:  # retried by the periodic pass; the node stays where it is
        message = exc.message if isinstance(exc, DriverError) else str(exc)
        log.info("clean-up of node %s after a conductor stop: %s (retrying)", task.uuid, message)
        work = str(pending.get("work"))
        task.db.retry(lambda s: mark(s.get_one(Node, task.node_id), work, RETRY_AFTER))
        return
    task.journal(PENDING, None)
    task.log(history.PROVISION, f"clean-up after the conductor stop done ({pending.get('work')})")


def _power_off(task: Task) -> None:
    task.set_power(PowerTarget.POWER_OFF)
    task.journal(BIOS_WINDOW, None)


def unwire(task: Task) -> None:
    """Power off, remove the boot set-up and take every port off every network (each
    phase tried)."""
    task.wind_down()
    task.set_internal(agent_token=None, agent_token_given=False, agent_url=None)
    _power_off(task)
    errors: list[str] = []
    for phase in flows.RAMDISK_PHASES:  # before the ports go: their options are found on them
        try:
            task.clean_up_ramdisk(phase, logged=False)
        except DriverError as exc:
            errors.append(exc.message)
    with network_power(task):
        for phase in PHASES:
            try:
                task.detach_network(phase)
            except DriverError as exc:
                errors.append(exc.message)
    if errors:
        raise DriverError("could not take the ports off the network: " + "; ".join(errors))


def undo_vif(task: Task) -> None:
    """Unplug and forget the VIF whose attach or detach was under way."""
    task.wind_down()
    pending: dict[str, Any] = dict(task.ctx.driver_internal_info.get(VIF_PENDING) or {})
    vif, link = str(pending.get("vif")), str(pending.get("link"))
    if not any(item.uuid == link and item.vif == vif for item in task.ctx.smartnic_links):
        task.journal(VIF_PENDING, None)  # no longer recorded there: nothing to unplug
        with task.db.transaction() as s:
            vifs.forget(s, task.uuid, vif)
        return
    if task.ctx.driver_internal_info.get(BIOS_WINDOW):
        _power_off(task)
    was_off = task.power_state() == states.POWER_OFF
    with network_power(task):
        task.drivers.network.unplug_vif(task.ctx, link)
    task.log(history.NETWORK, f"tenant VIF {vif} unplugged after the stop")
    task.db.retry(lambda s: vifs.forget(s, task.uuid, vif))
    task.journal(VIF_PENDING, None)
    if was_off and task.drivers.network.need_power_on(task.ctx):
        task.set_boot_device(states.BOOT_DISK, persistent=True)


def leave_bios(task: Task) -> None:
    task.wind_down()
    _power_off(task)
    with task.node() as node:
        deployed = node.provision_state == states.ACTIVE
    if deployed:
        task.set_boot_device(states.BOOT_DISK, persistent=True)


def forget_vif(s: Session, node_uuid: str, vif: str) -> None:
    vifs.forget(s, node_uuid, vif)
    set_vif_pending(s, node_uuid, None)


def set_vif_pending(s: Any, node_uuid: str, value: dict[str, str] | None) -> None:
    """The VIF change of a deployed node under way (None: none), for crash recovery."""
    node = nodes.find(s, node_uuid, for_update=True)
    info = {k: v for k, v in node.driver_internal_info.items() if k != VIF_PENDING}
    node.driver_internal_info = info if value is None else {**info, VIF_PENDING: {**value}}


def unwire_quietly(task: Task) -> bool:
    """A flow the stopping conductor ended: host off, ports off every network.
    False when that failed: ``_finish`` then leaves the clean-up pending."""
    try:
        unwire(task)
    except Exception as exc:
        task.log(history.ERROR, f"could not clean up after the stop: {exc}", "ERROR")
        return False
    return True


WORKS: dict[str, Work] = {"unwire": unwire, "undo_vif": undo_vif, "leave_bios": leave_bios}
