"""The packet proof of the smart NIC race, one implementation for every lab: captures on
every NIC's uplink and every host's port B, held against the node's history (when the
conductor had its ports ACTIVE on which network, when its BMC said off) and the host's
``events.log`` (when it was held in BIOS, when it network-booted).

Used by tests/root/test_e2e_smartnic.py (namespace hosts) and tests/root/test_demo.py
(QEMU hosts): a lab's kind of host changes nothing of what is asserted.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

from metalnic.baremetal import states
from metalnic.lab.capture import DHCPDISCOVER, DHCPOFFER, Capture, Frame
from metalnic.lab.scenario import Stack

Event = dict[str, Any]
Window = tuple[float, float]
_ATTACHED = re.compile(r"attach (\w+) network: done")
BOOT_PHASES = ("cleaning", "provisioning")  # the networks a host network-boots on


def start_captures(lab: dict[str, Any], to: Path) -> dict[str, Capture]:
    """``<nic>-uplink`` on every NIC's uplink and ``<host>-b`` on every host's port B
    (a VM host's tap: it exists before its first power-on)."""
    captures: dict[str, Capture] = {}
    try:
        for nic in lab["nics"]:
            captures[f"{nic['name']}-uplink"] = Capture(
                nic["netns"], nic["uplink"], to / f"{nic['name']}-uplink.pcap"
            ).start()
        for host in lab["hosts"]:
            nic_ns = f"{lab['prefix']}-{host['nic']}"
            captures[f"{host['name']}-b"] = Capture(
                nic_ns, host["port_b"], to / f"{host['name']}-b.pcap"
            ).start()
    except Exception:
        for capture in captures.values():
            capture.stop()
        raise
    return captures


def keep_lab_logs(lab_dir: Path, to: Path) -> None:
    """The hosts' events and consoles and the BMCs' logs outlive the lab (``down`` removes
    its dir): a failed packet check is read against them."""
    for log in [
        *lab_dir.glob("hosts/*/*.log"),
        *lab_dir.glob("*.log"),
        *lab_dir.glob("bmc/**/*.log"),
    ]:
        target = to / log.relative_to(lab_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log, target)


def history(stack: Stack, host: str) -> list[Event]:
    with stack.client() as c:
        r = c.get(f"/v1/nodes/{stack.nodes[host]}/history")
        return list(r.json()["history"])


def event_time(event: Event) -> float:
    return dt.datetime.fromisoformat(event["created_at"]).replace(tzinfo=dt.UTC).timestamp()


def windows(
    events: list[Event],
    vlans: dict[str, int],
    opened_by: str = "done",
    closed_by: str = "started",
) -> list[tuple[int, float, float]]:
    """(VLAN, from, to): from "attach <phase> network: done" to the matching detach's start —
    when the host may use that network (with "started"/"done": when its port may be on it)."""
    found: list[tuple[int, float, float]] = []
    opened: dict[str, float] = {}
    for e in events:
        text = e["event"]
        for phase, vlan in vlans.items():
            if text.startswith(f"attach {phase} network: {opened_by}"):
                opened[phase] = event_time(e)
            elif text.startswith(f"detach {phase} network: {closed_by}") and phase in opened:
                found.append((vlan, opened.pop(phase), event_time(e)))
    found += [(vlans[p], start, float("inf")) for p, start in opened.items()]
    return found


def off_windows(events: list[Event]) -> list[Window]:
    """From the BMC confirming "power off" to the next power-on request: a real host is dark
    then, so the lab's must be too (its BMC tells it before it confirms)."""
    found: list[Window] = []
    off: float | None = None
    for e in events:
        text = e["event"]
        if text == f"{states.POWER_OFF} (BMC confirmed)":
            off = event_time(e)
        elif off is not None and text in (
            f"{states.POWER_ON} requested",
            f"{states.REBOOT} requested",
            f"{states.SOFT_REBOOT} requested",
        ):
            found.append((off, event_time(e)))
            off = None
    return found + ([(off, float("inf"))] if off is not None else [])


def _host_events(lab_dir: Path, host: str) -> list[tuple[float, str, str]]:
    """``events.log`` as (time, state, detail)."""
    lines = (lab_dir / "hosts" / host / "events.log").read_text().splitlines()
    return [
        (float(t), state, detail) for t, state, detail in (line.split(" ", 2) for line in lines)
    ]


def bios_windows(lab_dir: Path, host: str) -> list[Window]:
    """When the host was in BIOS (from its events.log: a "bios" line to the next line)."""
    entries = _host_events(lab_dir, host)
    return [
        (t, entries[i + 1][0] if i + 1 < len(entries) else float("inf"))
        for i, (t, state, _) in enumerate(entries)
        if state == "bios"
    ]


def network_boots(lab_dir: Path, host: str) -> list[Window]:
    """Each network boot of the host (events.log: a change into "pxe" to the next change)."""
    boots: list[Window] = []
    previous = None
    for t, state, _ in _host_events(lab_dir, host):
        if state != previous:
            if previous == "pxe":
                boots[-1] = (boots[-1][0], t)
            if state == "pxe":
                boots.append((t, float("inf")))
        previous = state
    return boots


def context(frame: Frame, events: list[Event], lab_dir: Path, host: str) -> str:
    """What the conductor and the host did around ``frame`` (for a failure)."""
    near = [(event_time(e), "conductor", e["event"]) for e in events]
    near += [(t, "host", f"{state} {detail}") for t, state, detail in _host_events(lab_dir, host)]
    shown = [
        f"{t - frame.time:+.3f}s {who}: {what}"
        for t, who, what in sorted(near)
        if abs(t - frame.time) < 2
    ]
    return f"frame at {frame.time:.6f} (VLAN {frame.vlan}, type {frame.ethertype:#06x}): " + (
        "; ".join(shown) or "nothing logged within 2 s"
    )


def _within(t: float, found: list[Window]) -> bool:
    return any(a <= t <= b for a, b in found)


def tenant_vlans(stack: Stack) -> dict[str, int]:
    """Host name → the segmentation id of its tenant's network."""
    with stack.client() as c:
        nets = {n["name"]: n for n in c.get("/network/v2.0/networks").json()["networks"]}
    return {
        h["name"]: int(nets[stack.tenant_of(h["name"])]["provider:segmentation_id"])
        for h in stack.lab["hosts"]
    }


def check_host_sent_only_when_allowed(
    stack: Stack, frames: dict[str, list[Frame]], host: dict[str, Any], min_offs: int
) -> list[tuple[int, float, float]]:
    """Every frame the host sent left its NIC (the uplink) on a VLAN its port was ACTIVE
    on at that moment; at port B nothing from it while its BMC said off or while it was
    held in BIOS.  Returns the host's (VLAN, from, to) windows."""
    lab_dir = Path(stack.lab["dir"])
    name, mac = host["name"], host["mac"]
    tenant_vlan = tenant_vlans(stack)[name]
    vlans = {"provisioning": stack.lab["provisioning"]["vlan"], "tenant": tenant_vlan}
    vlans["cleaning"] = vlans["provisioning"]
    events = history(stack, name)
    allowed = windows(events, vlans)
    sent = [f for f in frames[f"{host['nic']}-uplink"] if f.src == mac]
    # The capture saw the host on both networks (so this check can fail) ...
    assert {f.vlan for f in sent} == {vlans["provisioning"], tenant_vlan}, (
        name,
        {f.vlan for f in sent},
    )
    # ... and every frame inside a window where its port was ACTIVE on that VLAN.
    stray = [f for f in sent if not any(v == f.vlan and a <= f.time <= b for v, a, b in allowed)]
    assert stray == [], (
        f"{name}: {len(stray)} frames outside their network's window: "
        + " | ".join(context(f, events, lab_dir, name) for f in stray[:3])
    )
    # Once its BMC confirmed "off", the host sent nothing until it was powered on again
    # (port B sees everything it sends).
    at_b = [f for f in frames[f"{name}-b"] if f.src == mac]
    assert at_b, f"{name}: nothing captured at port B"
    off = off_windows(events)
    assert len(off) >= min_offs, (name, off)
    after_off = [f for f in at_b if any(a <= f.time < b for a, b in off)]
    assert after_off == [], (
        f"{name} sent {len(after_off)} frames while its BMC said off: "
        + " | ".join(context(f, events, lab_dir, name) for f in after_off[:3])
    )
    # In BIOS the host sent nothing at all.
    bios = bios_windows(lab_dir, name)
    assert bios, f"{name} was never held in BIOS"
    in_bios = [f for f in at_b if any(a <= f.time < b for a, b in bios)]
    assert in_bios == [], f"{name} sent {len(in_bios)} frames while in BIOS: " + " | ".join(
        context(f, events, lab_dir, name) for f in in_bios[:3]
    )
    return allowed


def check_no_other_tenant_heard(
    stack: Stack, frames: dict[str, list[Frame]], allowed: dict[str, list[tuple[int, float, float]]]
) -> None:
    """Another tenant's host is heard at a host's port B only while both share the
    provisioning network: never on a tenant network.  A port is on a network from its
    attach's start to its detach's end; outside the window where its host may send
    (``allowed``), i.e. while the port is being moved, the host must be held in BIOS."""
    lab, lab_dir = stack.lab, Path(stack.lab["dir"])
    provisioning = stack.lab["provisioning"]["vlan"]
    for host in lab["hosts"]:
        name, mine = host["name"], stack.tenant_of(host["name"])
        foreign = {h["mac"] for h in lab["hosts"] if stack.tenant_of(h["name"]) != mine}
        events = history(stack, name)
        may_send = [(a, b) for v, a, b in allowed[name] if v == provisioning]
        phases = dict.fromkeys(BOOT_PHASES, provisioning)
        shared = [(a, b) for _, a, b in windows(events, phases, "started", "done")]
        bios = bios_windows(lab_dir, name)
        heard = [f for f in frames[f"{name}-b"] if f.src in foreign]
        leaked = [
            f
            for f in heard
            if not _within(f.time, may_send)
            and not (_within(f.time, shared) and _within(f.time, bios))
        ]
        assert leaked == [], f"{name} heard another tenant: " + " | ".join(
            context(f, events, lab_dir, name) for f in leaked[:3]
        )


def check_dhcp_after_attach(
    stack: Stack, frames: dict[str, list[Frame]], host: dict[str, Any]
) -> list[str]:
    """Each network boot of the host began, and its first DHCPDISCOVER reached port B and
    then the uplink, only after the conductor's "attach <phase> network: done" (its ports
    ACTIVE, the NIC programmed) — and that network was not being detached meanwhile; the
    first DHCPOFFER for it came after that request.  Returns each boot's phase."""
    lab_dir = Path(stack.lab["dir"])
    name, mac = host["name"], host["mac"]
    events = history(stack, name)
    attached = [
        (event_time(e), m.group(1))
        for e in events
        if (m := _ATTACHED.match(e["event"])) and m.group(1) in BOOT_PHASES
    ]
    detaching = [
        (event_time(e), phase)
        for e in events
        for phase in BOOT_PHASES
        if e["event"].startswith(f"detach {phase} network: started")
    ]
    uplink, at_b = frames[f"{host['nic']}-uplink"], frames[f"{name}-b"]
    phases = []
    for start, end in network_boots(lab_dir, name):
        boot = (start, end)
        asked = _first(uplink, boot, DHCPDISCOVER, mac, f"{name}: no DHCPDISCOVER at the uplink")
        asked_b = _first(at_b, boot, DHCPDISCOVER, mac, f"{name}: no DHCPDISCOVER at port B")
        offered = _first(at_b, boot, DHCPOFFER, mac, f"{name}: no DHCPOFFER for it at port B")
        done = [(t, phase) for t, phase in attached if t < start]
        assert done, f"{name}: network boot at {start:.6f} before any attach was done"
        ready, phase = done[-1]
        assert not any(ready < t < asked.time and p == phase for t, p in detaching), (
            f"{name}: the {phase} network was being detached before the boot's DHCPDISCOVER"
        )
        assert ready < start <= asked_b.time <= asked.time, (name, ready, start, asked_b, asked)
        assert asked.time < offered.time, (name, asked, offered)
        phases.append(phase)
    return phases


def _first(frames: list[Frame], boot: Window, kind: int, client: str, what: str) -> Frame:
    """The first DHCP message ``kind`` from or for ``client`` captured during ``boot``."""
    found = [
        f
        for f in frames
        if f.dhcp == kind and f.dhcp_client == client and boot[0] <= f.time < boot[1]
    ]
    assert found, f"{what} in its network boot at {boot[0]:.6f}"
    return min(found, key=lambda f: f.time)
