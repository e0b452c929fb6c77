"""The provisioning flows, shared by every deploy interface.

Each flow takes a locked node (``Task``) and returns the machine event that
ends it: ``done``, or ``wait`` when a ramdisk agent has to call back first.
Every network change goes through ``rewire`` (host off, then the smart NIC
power rule of ``network_power``), and every boot through ``boot`` (the boot
gate) — no deploy interface carries its own copy of either.  A ramdisk booted
on a phase network (deploy, clean, rescue) is prepared by the boot interface
right before that boot (``boot_ramdisk``) and cleaned up when the node leaves
the phase (``leave_phase``), or, on any failure, for every phase
(``clean_up_boot``).  A tenant VIF
plugged into or unplugged from a deployed node goes through ``hot_plug``: the
same power rule, without powering a running instance off.  Rescue follows
Ironic's agent rescue: the rescue ramdisk's agent heartbeats from the rescuing
network, takes the password hash (``finalize_rescue``) and keeps running while
its ports move to the tenant network (``rewire(running=True)``).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

from metalnic.baremetal import rescuepw, states
from metalnic.baremetal.conductor import history
from metalnic.baremetal.conductor.powered import network_power
from metalnic.baremetal.conductor.states import Event
from metalnic.baremetal.conductor.task import BIOS_WINDOW, Task
from metalnic.baremetal.drivers.base import DriverConfigError, DriverError
from metalnic.baremetal.drivers.base import NetworkPhase as Phase
from metalnic.baremetal.states import BootDevice, PowerTarget


def validate(task: Task) -> None:
    d, ctx = task.drivers, task.ctx
    for iface in (d.power, d.management, d.network, d.deploy, d.boot):
        iface.validate(ctx)


# The phases whose network a ramdisk boots on; their boot set-up is undone on failure.
RAMDISK_PHASES = (Phase.PROVISIONING, Phase.CLEANING, Phase.RESCUING)


def boot_ramdisk(task: Task, phase: Phase) -> None:
    """Prepare the ramdisk boot on ``phase``'s network (ports attached), then boot it."""
    task.prepare_ramdisk(phase)
    boot(task, states.BOOT_PXE, phase)


def leave_phase(task: Task, phase: Phase) -> None:
    """The node's ramdisk on ``phase`` is done: the boot set-up goes before its ports."""
    task.clean_up_ramdisk(phase)


def power_off_quietly(task: Task) -> None:
    try:
        task.set_power(PowerTarget.POWER_OFF)
        task.journal(BIOS_WINDOW, None)
    except Exception as exc:
        task.log(history.ERROR, f"could not power off after the failure: {exc}", "ERROR")


def wind_down_quietly(task: Task) -> None:
    """After a failed, aborted or timed-out flow: the host off, and no boot set-up
    (DHCP options, boot scripts) left behind; the node's ports stay where they are,
    as in Ironic, until its next flow moves them — except a failed rescue's: as
    Ironic's rescue clean-up, they leave the rescuing network (and the agent's
    token goes), so that nothing of the node stays there."""
    power_off_quietly(task)
    clean_up_boot(task)
    with task.node() as node:
        rescuing = node.provision_state in _RESCUE_STATES
    if rescuing:
        forget_agent(task)
        try:
            rewire(task, detach=(Phase.RESCUING,))
        except Exception as exc:  # a failure path: record it, the flow's error is reported
            task.log(history.ERROR, f"could not detach the rescuing network: {exc}", "ERROR")


# States a failed, aborted or timed-out rescue winds down in (before or after the failure).
_RESCUE_STATES = frozenset({states.RESCUING, states.RESCUEWAIT, states.RESCUEFAIL})


def clean_up_boot(task: Task) -> None:
    """After a failure: the boot set-up of every ramdisk phase goes (each is tried;
    errors are logged, not raised: the flow's own error is the one to report)."""
    if not task.drivers.boot.configures:
        return
    removed = True
    for phase in RAMDISK_PHASES:
        try:
            task.clean_up_ramdisk(phase, logged=False)
        except Exception as exc:  # a failure path: record it, go on with the others
            removed = False
            task.log(history.ERROR, f"could not remove the {phase} boot set-up: {exc}", "ERROR")
    if removed:
        task.log(history.BOOT, "ramdisk boot removed after the failure: DHCP options and scripts")


def rewire(
    task: Task,
    detach: tuple[Phase, ...] = (),
    attach: tuple[Phase, ...] = (),
    running: bool = False,
) -> None:
    """Power the host off, then move its ports between networks inside a BIOS window.

    The only way flows touch the network: nothing the host runs can see a
    network while it changes, and a smart NIC is powered just for the change.
    ``running``: the host keeps running what it booted (Ironic's _finalize_rescue:
    the rescue ramdisk moves to the tenant network); its NICs have power, so the
    power rule (``network_power``) holds nothing in BIOS and powers nothing off.
    """
    if not running:
        task.set_power(PowerTarget.POWER_OFF)
    with network_power(task):
        for phase in detach:
            task.detach_network(phase)
        for phase in attach:
            task.attach_network(phase)


def hot_plug(task: Task, action: str, vif: str, link: str) -> None:
    """Plug (``plug``) or unplug one tenant VIF of a deployed node under the power rule.

    A running host keeps running (its NIC is powered); a host that is off is held in
    BIOS for the change (``network_power``) and gets the disk back as its boot
    device afterwards.  A plug passes the boot gate before the NIC loses power
    again; when plug or gate fail, the VIF is unplugged again.
    """
    was_off = task.power_state() == states.POWER_OFF
    network = task.drivers.network
    with network_power(task):
        task.checkpoint(f"{action}ging VIF {vif}")
        task.log(history.NETWORK, f"tenant VIF {vif}: {action}ging on {link}")
        if action == "plug":
            try:
                network.plug_vif(task.ctx, link)
                task.boot_gate(Phase.TENANT)
            except DriverError:
                with contextlib.suppress(DriverError):  # the first error is the one to report
                    network.unplug_vif(task.ctx, link)
                raise
            task.log(history.NETWORK, f"tenant VIF {vif} plugged on {link}")
        else:
            network.unplug_vif(task.ctx, link)
            task.log(history.NETWORK, f"tenant VIF {vif} unplugged from {link}")
    if was_off and network.need_power_on(task.ctx):
        task.set_boot_device(states.BOOT_DISK, persistent=True)


def boot(task: Task, device: BootDevice, phase: Phase, persistent: bool = False) -> None:
    """Set the boot device, check the network (boot gate), then (re)start the host."""
    task.set_boot_device(device, persistent)
    task.boot_gate(phase)
    if task.power_state() == states.POWER_ON:
        task.set_power(states.REBOOT)
    else:
        task.set_power(PowerTarget.POWER_ON)


def boot_agent(task: Task, phase: Phase) -> None:
    """Boot the ramdisk agent on ``phase``'s network with a fresh one-time token."""
    task.set_internal(
        agent_token=secrets.token_urlsafe(32), agent_token_given=False, agent_url=None
    )
    boot_ramdisk(task, phase)
    task.log(history.AGENT, f"waiting for the ramdisk agent on the {phase} network")


def forget_agent(task: Task) -> None:
    task.set_internal(agent_token=None, agent_token_given=False, agent_url=None)


def _say(task: Task) -> Callable[[str], None]:
    """A deploy interface's progress, into the node's history."""
    return lambda message: task.log(history.AGENT, message)


def agent_url(task: Task) -> str:
    url = task.ctx.driver_internal_info.get("agent_url")
    if not url:
        raise DriverError("the ramdisk agent has not called back with its URL")
    return str(url)


# --- manage / inspect / adopt ------------------------------------------------------------


def verify(task: Task) -> Event:
    task.drivers.power.validate(task.ctx)
    task.drivers.management.validate(task.ctx)
    state = task.power_state()
    task.log(history.POWER, f"BMC credentials verified; power is {state}")
    return Event.DONE


def inspect(task: Task) -> Event:
    with task.node() as node:
        iface = node.inspect_interface
    if iface != "fake":
        raise DriverConfigError(f"inspect interface {iface!r} cannot inspect hardware")
    task.log(history.PROVISION, "inspection (fake): nothing to discover")
    return Event.DONE


def adopt(task: Task) -> Event:
    validate(task)
    task.power_state()
    return Event.DONE


# --- deploy --------------------------------------------------------------------------------


def deploy(task: Task) -> Event:
    """Prepare and boot; a rebuild starts from a running instance, so power off first."""
    validate(task)
    d = task.drivers.deploy
    rewire(
        task,
        detach=(Phase.TENANT,),
        attach=(Phase.TENANT,) if d.ramdisk_is_instance else (Phase.PROVISIONING,),
    )
    if d.ramdisk_is_instance:
        boot(task, states.BOOT_PXE, Phase.TENANT)
        return Event.DONE
    if d.uses_agent:
        boot_agent(task, Phase.PROVISIONING)
        return Event.WAIT
    return finish_deploy(task)


def continue_deploy(task: Task) -> Event:
    task.log(history.AGENT, "ramdisk agent called back; writing the image")
    task.drivers.deploy.write_image(task.ctx, agent_url(task), _say(task))
    task.log(history.AGENT, "image written and its checksum verified")
    return finish_deploy(task)


def finish_deploy(task: Task) -> Event:
    """Ironic's reboot_and_finish_deploy: provisioning → tenant, then boot the disk."""
    forget_agent(task)
    leave_phase(task, Phase.PROVISIONING)
    rewire(task, detach=(Phase.PROVISIONING,), attach=(Phase.TENANT,))
    boot(task, states.BOOT_DISK, Phase.TENANT, persistent=True)
    return Event.DONE


def tear_down(task: Task) -> Event:
    leave_phase(task, Phase.RESCUING)  # an undeployed rescue ramdisk
    rewire(task, detach=(Phase.TENANT, Phase.RESCUING))
    return Event.DONE


# --- cleaning ------------------------------------------------------------------------------


def clean(task: Task) -> Event:
    rewire(task, attach=(Phase.CLEANING,))
    if task.drivers.deploy.uses_agent:
        boot_agent(task, Phase.CLEANING)
        return Event.WAIT
    for step in _clean_steps(task):
        task.log(history.PROVISION, f"clean step {step} (nothing to do for this deploy interface)")
    return finish_clean(task)


def _clean_steps(task: Task) -> list[str]:
    """The requested manual steps, or the automated default."""
    steps = task.ctx.driver_internal_info.get("clean_steps") or [
        {"interface": "deploy", "step": "erase_devices_metadata"}
    ]
    return [f"{s['interface']}.{s['step']}" for s in steps]


def continue_clean(task: Task) -> Event:
    for step in _clean_steps(task):
        if step != "deploy.erase_devices_metadata":
            raise DriverError(f"clean step {step} is not supported by the ramdisk agent")
        task.drivers.deploy.clean_disk(task.ctx, agent_url(task), _say(task))
        task.log(history.AGENT, "disk metadata erased by the ramdisk agent")
    return finish_clean(task)


def finish_clean(task: Task) -> Event:
    forget_agent(task)
    task.set_internal(clean_steps=None)
    leave_phase(task, Phase.CLEANING)
    rewire(task, detach=(Phase.CLEANING,))
    return Event.DONE


# --- rescue --------------------------------------------------------------------------------


def rescue(task: Task) -> Event:
    """Ironic's agent::rescue: tenant → rescuing network, boot the rescue ramdisk and
    wait for its agent (``rescue wait``); a fake rescue has nothing to wait for."""
    validate(task)
    task.drivers.rescue.validate(task.ctx)
    rewire(task, detach=(Phase.TENANT,), attach=(Phase.RESCUING,))
    if not task.drivers.rescue.uses_agent:
        boot_ramdisk(task, Phase.RESCUING)
        return Event.DONE
    boot_agent(task, Phase.RESCUING)
    return Event.WAIT


def finalize_rescue(task: Task) -> Event:
    """Ironic's _finalize_rescue: the agent takes the password hash and stops being an
    agent (its token goes, and the hash with it); the rescue ramdisk keeps running
    while its ports leave the rescuing network for the tenant one, checked ACTIVE
    there before the node is announced ``rescue``."""
    hashed = task.ctx.instance_info.get(rescuepw.HASH_KEY)
    if not isinstance(hashed, str) or not hashed:
        raise DriverError("the rescue password is gone; rescue the node again with one")
    task.log(history.AGENT, "ramdisk agent called back; handing it the rescue password (hashed)")
    task.drivers.rescue.finalize(task.ctx, agent_url(task), hashed)
    task.log(history.AGENT, "rescue password set by the ramdisk agent (user rescue)")
    forget_agent(task)
    task.forget_instance_info(rescuepw.HASH_KEY)  # Ironic's remove_rescue_password
    leave_phase(task, Phase.RESCUING)
    rewire(task, detach=(Phase.RESCUING,), attach=(Phase.TENANT,), running=True)
    task.boot_gate(Phase.TENANT)
    return Event.DONE


def unrescue(task: Task) -> Event:
    leave_phase(task, Phase.RESCUING)
    rewire(task, detach=(Phase.RESCUING,), attach=(Phase.TENANT,))
    boot(task, states.BOOT_DISK, Phase.TENANT, persistent=True)
    return Event.DONE


# The flow that runs while a node is in each busy state (after an API verb or a
# previous flow's "done" led there).
FLOWS = {
    states.VERIFYING: verify,
    states.INSPECTING: inspect,
    states.ADOPTING: adopt,
    states.DEPLOYING: deploy,
    states.DELETING: tear_down,
    states.CLEANING: clean,
    states.RESCUING: rescue,
    states.UNRESCUING: unrescue,
}
# After an agent's heartbeat resumes a waiting node.
RESUMED = {
    states.DEPLOYING: continue_deploy,
    states.CLEANING: continue_clean,
    states.RESCUING: finalize_rescue,
}
# Flows after whose failure the host is powered off (it may run a ramdisk).
POWER_OFF_ON_FAILURE = frozenset(
    {states.DEPLOYING, states.CLEANING, states.RESCUING, states.UNRESCUING, states.DELETING}
)
