"""The lab's hosts: one follower per host that does what its BMC says.

A real server does what its BMC's power state and boot device tell it; so does
this one.  Each host's ``HostFollower`` follows what its BMC tells it (see
below) and what it reads from it twice a second (through metalnic's own
Redfish and IPMI drivers — the same code the conductor uses) and, whenever that
changes, has its machine (``lab.machine``) boot.  A VM host's machine is
``lab.vm.QemuMachine`` (a QEMU VM on a tap that is port B: see there); a
namespace host's, the default, is ``NamespaceMachine`` here:

* powered off → nothing runs, port A has no address;
* on, boot device BIOS → silent (firmware set-up: no address, no packet);
* on, PXE → the firmware and then the ramdisk: a DHCP client (busybox
  udhcpc, ``metalnic.lab.dhcpclient``) asks for an address on port A — through
  the host's smart NIC, answered by the provisioning network's DHCP server (the
  lab's ``metalnic dhcp-agent``) — and, once leased, ``metalnic-ramdisk`` runs
  *inside the host's namespace* at that address, heartbeating to the server at
  the provisioning address; its disk and config drive are files in
  ``<dir>/hosts/<name>/``;
* on, disk (or no override) → the instance: it asks DHCP for its address on
  its tenant network (sending the config drive's ``meta_data.hostname``); the
  config drive carries metadata only, as on a cloud with DHCP.  The kernel
  then answers pings at the leased address.

The DHCP client keeps running (renewals) for as long as the boot lasts; each
lease is an event (``<state> lease <ip>/<prefix> from <server>``).

A real host is dark the instant its power drops, so the BMCs do not leave it
to the host to notice: every change of a host's power or boot device is pushed
to this process (``PUT`` of ``{"name", "power_state", "boot_device"}`` on
``<lab>["hosts_control"]["url"]``) *before the BMC answers the request that
made it* — sushy-tools' fake driver through its ``external_notifier``, the IPMI
BMC (``lab.ipmi_bmc``) itself.  On power-off the host's address is gone and its
ramdisk killed (SIGKILL: a power cut, not a shutdown) — a VM's qemu has quit —
before the reply leaves, so a BMC never confirms "off" for a host that can still
send.  The twice-a-second
poll stays as a reconciler (a notification that failed, and sushy-tools only
applies a due power change when someone reads it); a poll whose read raced a
notification is dropped, so it can never undo a newer pushed state.

Every boot and every lease is a line in ``<dir>/hosts/<name>/events.log``
(``<unix time> <state> <detail>``): the demo shows them, the packet test uses
them to know when a host was in BIOS.  A machine that fails to boot is an
event too (``<state> FAILED: …``); the follower keeps following.

The same control server answers ``POST /probe`` (``{"name", "kind", "address",
"port"}``): the host's machine asks its running OS whether it reaches an address
(``lab.probe``: a namespace pings from the namespace, a VM's instance answers on
its probe serial port) — how the demo measures the isolation matrix.

Run by ``metalnic lab up`` as its own process (``python -m metalnic.lab.hosts
--dir DIR``); it also serves ``<dir>/images`` over HTTP on the provisioning
address (the image server the ramdisk downloads from).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import NodeContext
from metalnic.jsontypes import JSONObject
from metalnic.lab import dhcpclient, netns
from metalnic.lab.description import Host, LabDescription
from metalnic.lab.machine import BIOS, DISK, OFF, PXE, HostLog, Machine, observed_state
from metalnic.lab.probe import Probe, ProbeError, in_namespace

__all__ = ["HostFollower", "NamespaceMachine", "observed_state", "bmc_driver_info"]
log = logging.getLogger("metalnic.lab.hosts")
POLL = 0.5
RAMDISK_PORT = 9999
HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")  # what goes into DHCP option 12


class HostFollower:
    """One host: follows its BMC (pushed and polled, see the module docstring) and
    drives its machine — a namespace (``NamespaceMachine``) or a VM (``vm.QemuMachine``)."""

    def __init__(self, lab: LabDescription, host: Host, password: str) -> None:
        self.lab, self.host = lab, host
        directory = Path(lab["dir"]) / "hosts" / host["name"]
        directory.mkdir(parents=True, exist_ok=True)
        self.log = HostLog(host["name"], directory)
        self.machine: Machine
        if host.get("kind") == "vm":
            from metalnic.lab.vm import QemuMachine

            self.machine = QemuMachine(lab, host, self.log)
        else:
            self.machine = NamespaceMachine(lab, host, self.log)
        self.ctx, self.power, self.management = _bmc_of(lab, host, password)
        self.state: str | None = None
        self.pushed = 0  # notifications received from the BMC

    @property
    def stopping(self) -> threading.Event:
        return self.log.stopping

    def run(self) -> None:
        failures = 0
        while not self.log.stopping.wait(POLL):
            with self.log.lock:
                seen = self.pushed
            try:
                observed = self._observe()
                failures = 0
            except Exception as exc:  # a BMC restarting: keep the host as it is
                failures += 1
                if failures in (1, 20):
                    log.warning("%s: cannot read its BMC: %s", self.host["name"], exc)
                continue
            with self.log.lock:
                if self.pushed == seen:  # else the BMC told us something newer meanwhile
                    self._follow(observed)
        with self.log.lock:
            self.log.boots += 1
            self.machine.power_cut()

    def pushed_state(self, power_state: str, boot_device: str | None) -> None:
        """The BMC's word (Redfish vocabulary), given before it answers its caller."""
        with self.log.lock:
            self.pushed += 1
            self._follow(observed_state(power_state, boot_device))

    def _observe(self) -> str:
        if self.power.get_power_state(self.ctx) != states.POWER_ON:
            return OFF
        device, _persistent = self.management.get_boot_device(self.ctx)
        if device == states.BOOT_BIOS:
            return BIOS
        return PXE if device == states.BOOT_PXE else DISK

    def _follow(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.log.boots += 1
            try:
                detail = self.machine.boot(state)
            except Exception as exc:  # the machine could not do it: say so, stay put
                log.exception("%s: %s failed", self.host["name"], state)
                detail = f"FAILED: {exc}"
            self.log.event(state, detail)


class NamespaceMachine:
    """A host as processes in its network namespace (see the module docstring)."""

    def __init__(self, lab: LabDescription, host: Host, life: HostLog) -> None:
        self.lab, self.host, self.life = lab, host, life
        self.dir = life.dir
        self.disk = self.dir / "disk"
        self.config_drive = self.dir / "disk.config-2"
        self.dhcp_log = self.dir / "dhcp-events.log"  # the DHCP client script's
        self.dhcp_script = dhcpclient.write_script(self.dir)
        self.running: dict[str, subprocess.Popen[bytes]] = {}  # "dhcp", "ramdisk"

    def boot(self, state: str) -> str:
        self._flush()  # first: nothing the dying processes' sockets send can leave
        self.power_cut()
        if state == PXE:
            self._start_dhcp()
            detail = f"firmware PXE: DHCP on {self.host['port_a']}"
        elif state == DISK:
            name = self._hostname()
            self._start_dhcp(*(("-x", f"hostname:{name}") if name else ()))
            detail = f"instance booted from disk: DHCP on {self.host['port_a']}"
            detail += f" as {name}" if name else ""
        elif state == BIOS:
            detail = "in BIOS set-up: silent"
        else:
            detail = "powered off"
        if state in (PXE, DISK):
            threading.Thread(
                target=self._follow_leases, args=(self.life.boots, state), daemon=True
            ).start()
        return detail

    def event(self, state: str, detail: str) -> None:
        self.life.event(state, detail)

    def probe(self, check: Probe) -> bool:
        """From the host's namespace, whatever it runs (as the tests always pinged)."""
        return in_namespace(self.host["netns"], check)

    # --- what runs on the host ----------------------------------------------------------

    def _ip(self, *cmd: str) -> None:
        netns.run(netns.in_ns(self.host["netns"], "ip", *cmd), check=False)

    def _flush(self) -> None:
        self._ip("addr", "flush", "dev", self.host["port_a"])
        self._ip("neigh", "flush", "all")

    def _spawn(self, role: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        with (self.dir / f"{role}.log").open("ab") as out:
            proc = subprocess.Popen(
                netns.in_ns(self.host["netns"], *cmd), stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.running[role] = proc
        (self.dir / f"{role}.pid").write_text(str(proc.pid))

    def power_cut(self) -> None:
        """Every process of this boot killed at once: no shutdown, no DHCP release."""
        for role, proc in self.running.items():
            proc.kill()
            proc.wait()
            (self.dir / f"{role}.pid").unlink(missing_ok=True)
        self.running.clear()

    def _start_dhcp(self, *extra: str) -> None:
        self.dhcp_log.write_text("")
        cmd = dhcpclient.command(self.host["port_a"], self.dhcp_script, *extra)
        self._spawn("dhcp", cmd, dhcpclient.environment(self.dhcp_log))

    def _follow_leases(self, boot: int, state: str) -> None:
        """This boot's DHCP events as host events; in PXE, the ramdisk once leased."""
        offset, asked = 0, False
        while not self.life.stopping.wait(0.05):
            with self.life.lock:
                if boot != self.life.boots:
                    return  # the host booted again (or lost power) meanwhile
                try:
                    with self.dhcp_log.open() as fh:
                        fh.seek(offset)
                        lines = fh.readlines()
                        offset = fh.tell()
                except OSError:
                    continue
                for line in lines:
                    got = dhcpclient.parse(line.strip())
                    if got.leased:
                        again = "renewed" if got.kind == "renew" else "from"
                        self.event(state, f"lease {got.interface} {again} {got.server}")
                        if state == PXE and "ramdisk" not in self.running:
                            self.event(state, self._start_ramdisk(got.ip))
                    elif got.kind in ("leasefail", "nak") and not asked:
                        asked = True  # once a boot: a host waiting for DHCP asks again
                        self.event(state, f"no DHCP lease yet ({got.kind}): asking again")

    def _start_ramdisk(self, address: str) -> str:
        api = self.lab["provisioning"]["api_url"]
        self._spawn(
            "ramdisk",
            [sys.executable, "-m", "metalnic.ramdisk.agent", "--api-url", api,
             "--mac", self.host["mac"], "--disk", str(self.disk),
             "--config-drive", str(self.config_drive),
             "--listen", f"{address}:{RAMDISK_PORT}", "--interval", "1"],
        )  # fmt: skip
        return f"ramdisk agent at {address}:{RAMDISK_PORT} → {api}"

    def _hostname(self) -> str:
        """The config drive's ``meta_data.hostname`` (what the instance tells DHCP)."""
        try:
            drive = json.loads(self.config_drive.read_text() or "{}")
        except (OSError, ValueError):
            return ""
        meta = drive.get("meta_data") if isinstance(drive, dict) else None
        name = meta.get("hostname") if isinstance(meta, dict) else None
        return name if isinstance(name, str) and HOSTNAME.fullmatch(name) else ""


def _bmc_of(lab: LabDescription, host: Host, password: str) -> tuple[NodeContext, Any, Any]:
    """The host's BMC as metalnic's drivers see it (driver_info as the demo enrolls it)."""
    info = bmc_driver_info(lab, host, password)
    ctx = NodeContext(host["name"], host["name"], host["bmc"], info)
    if host["bmc"] == "ipmi":
        from metalnic.baremetal.drivers.power.ipmi import IpmiManagement, IpmiPower

        return ctx, IpmiPower(), IpmiManagement()
    from metalnic.baremetal.drivers.power.redfish import RedfishManagement, RedfishPower

    return ctx, RedfishPower(), RedfishManagement()


def bmc_driver_info(lab: LabDescription, host: Host, password: str) -> dict[str, str | int]:
    """A node's ``driver_info`` for this host's BMC (what ``metalnic demo`` enrolls)."""
    user = lab["bmc"]["username"]
    if host["bmc"] == "ipmi":
        return {
            "ipmi_address": host["ipmi_address"],
            "ipmi_port": host["ipmi_port"],
            "ipmi_username": user,
            "ipmi_password": password,
        }
    return {
        "redfish_address": lab["bmc"]["url"],
        "redfish_system_id": host["redfish_system_id"],
        "redfish_username": user,
        "redfish_password": password,
    }


def serve_images(lab: LabDescription) -> ThreadingHTTPServer:
    root = Path(lab["dir"]) / "images"
    handler = functools.partial(_QuietHandler, directory=str(root))
    images = lab["images"]
    httpd = ThreadingHTTPServer((images["address"], images["port"]), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def serve_control(lab: LabDescription, sims: dict[str, HostFollower]) -> ThreadingHTTPServer:
    """The BMCs' line to their hosts: each ``PUT`` is answered once the host follows it."""
    url = urlsplit(lab["hosts_control"]["url"])  # chosen by `lab up` for the BMCs
    handler = functools.partial(_ControlHandler, sims)
    httpd = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 80), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


class _ControlHandler(BaseHTTPRequestHandler):
    def __init__(self, sims: dict[str, HostFollower], *args: Any) -> None:
        self.sims = sims
        super().__init__(*args)

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            name, power, device = str(body["name"]), str(body["power_state"]), body["boot_device"]
        except (ValueError, KeyError, TypeError):
            self.send_error(400, "expected JSON with name, power_state and boot_device")
            return
        sim = self.sims.get(name)
        if sim is None:
            self.send_error(404, f"no host {name!r} in this lab")
            return
        sim.pushed_state(power, None if device is None else str(device))
        self.send_response(204)
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        """``/probe`` ``{"name", "kind", "address", "port"}``: the host's machine probes
        (``lab.probe``); 200 ``{"reached": bool}``, 409 ``{"error"}`` when it cannot."""
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            sim = self.sims.get(str(body["name"]))
            port = body.get("port")
            check = Probe(body["kind"], str(body["address"]), None if port is None else int(port))
        except (ValueError, KeyError, TypeError, ProbeError) as exc:
            self._json(400, {"error": f"expected name, kind, address (and port): {exc}"})
            return
        if self.path != "/probe" or sim is None:
            self._json(404, {"error": f"no host {body['name']!r} in this lab"})
            return
        try:
            self._json(200, {"reached": sim.machine.probe(check)})
        except ProbeError as exc:
            self._json(409, {"error": str(exc)})

    def _json(self, status: int, body: JSONObject) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: Any) -> None:
        return None  # every change is in the host's events.log already


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("image server: %s " + fmt, self.client_address[0], *args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m metalnic.lab.hosts", description=__doc__)
    p.add_argument("--dir", type=Path, required=True, help="the lab's directory")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("sushy").setLevel(logging.ERROR)  # a new session per question
    lab = json.loads((a.dir / "description.json").read_text())
    password = Path(lab["bmc"]["password_file"]).read_text().strip()
    sims = [HostFollower(lab, host, password) for host in lab["hosts"]]
    httpd = serve_images(lab)
    control = (
        serve_control(lab, {s.host["name"]: s for s in sims}) if "hosts_control" in lab else None
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threads = [threading.Thread(target=s.run, name=s.host["name"], daemon=True) for s in sims]
    for t in threads:
        t.start()
    print("ready", flush=True)
    try:
        while not done.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    for s in sims:
        s.stopping.set()
    for t in threads:
        t.join(timeout=15)
    httpd.shutdown()
    if control is not None:
        control.shutdown()
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    raise SystemExit(main())
