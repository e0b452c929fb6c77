"""The lab's hosts: one simulator per host that follows what its BMC says.

A real server does what its BMC's power state and boot device tell it; so does
this one.  Each host follows what its BMC tells it (see below) and what it
reads from it twice a second (through metalnic's own Redfish and IPMI drivers —
the same code the conductor uses) and, whenever that changes, "boots":

* powered off → nothing runs, port A has no address;
* on, boot device BIOS → silent (firmware set-up: no address, no packet);
* on, PXE → the ramdisk: ``metalnic-ramdisk`` runs *inside the host's
  namespace* with the host's provisioning address, heartbeating to the server
  at the provisioning address through the host's smart NIC; its disk and
  config drive are files in ``<dir>/hosts/<name>/``;
* on, disk (or no override) → the instance: it reads ``network_data`` from the
  config drive the ramdisk wrote and configures those addresses on port A
  (the kernel then answers pings on the tenant network).

A real host is dark the instant its power drops, so the BMCs do not leave it
to the host to notice: every change of a host's power or boot device is pushed
to this process (``PUT`` of ``{"name", "power_state", "boot_device"}`` on
``<lab>["hosts_control"]["url"]``) *before the BMC answers the request that
made it* — sushy-tools' fake driver through its ``external_notifier``, the IPMI
BMC (``lab.ipmi_bmc``) itself.  On power-off the host's address is gone and its
ramdisk killed (SIGKILL: a power cut, not a shutdown) before the reply leaves,
so a BMC never confirms "off" for a host that can still send.  The twice-a-second
poll stays as a reconciler (a notification that failed, and sushy-tools only
applies a due power change when someone reads it); a poll whose read raced a
notification is dropped, so it can never undo a newer pushed state.

Every boot is a line in ``<dir>/hosts/<name>/events.log``
(``<unix time> <state> <detail>``): the demo shows them, the packet test uses
them to know when a host was in BIOS.

Run by ``metalnic lab up`` as its own process (``python -m metalnic.lab.hosts
--dir DIR``); it also serves ``<dir>/images`` over HTTP on the provisioning
address (the image server the ramdisk downloads from).
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import NodeContext
from metalnic.jsontypes import JSONObject, JSONValue
from metalnic.lab import netns
from metalnic.lab.description import Host, LabDescription

log = logging.getLogger("metalnic.lab.hosts")
POLL = 0.5
RAMDISK_PORT = 9999
OFF, BIOS, PXE, DISK = "off", "bios", "pxe", "disk"


class HostSimulator:
    def __init__(self, lab: LabDescription, host: Host, password: str) -> None:
        self.lab, self.host = lab, host
        self.dir = Path(lab["dir"]) / "hosts" / host["name"]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk = self.dir / "disk"
        self.config_drive = self.dir / "disk.config-2"
        self.ctx, self.power, self.management = _bmc_of(lab, host, password)
        self.state: str | None = None
        self.ramdisk: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # one change of state at a time: poll or push
        self.pushed = 0  # notifications received from the BMC

    # --- following the BMC ------------------------------------------------------------

    def run(self) -> None:
        failures = 0
        while not self.stopping.wait(POLL):
            with self.lock:
                seen = self.pushed
            try:
                observed = self._observe()
                failures = 0
            except Exception as exc:  # a BMC restarting: keep the host as it is
                failures += 1
                if failures in (1, 20):
                    log.warning("%s: cannot read its BMC: %s", self.host["name"], exc)
                continue
            with self.lock:
                if self.pushed == seen:  # else the BMC told us something newer meanwhile
                    self._follow(observed)
        with self.lock:
            self._stop_ramdisk()

    def pushed_state(self, power_state: str, boot_device: str | None) -> None:
        """The BMC's word (Redfish vocabulary), given before it answers its caller."""
        with self.lock:
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
            self._boot(state)

    def _boot(self, state: str) -> None:
        self._flush()  # first: nothing the dying ramdisk's sockets send can leave
        self._stop_ramdisk()
        if state == PXE:
            detail = self._start_ramdisk()
        elif state == DISK:
            detail = self._start_instance()
        elif state == BIOS:
            detail = "in BIOS set-up: silent"
        else:
            detail = "powered off"
        self.event(state, detail)

    def event(self, state: str, detail: str) -> None:
        log.info("%s: %s — %s", self.host["name"], state, detail)
        with (self.dir / "events.log").open("a") as out:
            out.write(f"{time.time():.6f} {state} {detail}\n")

    # --- what runs on the host ----------------------------------------------------------

    def _ip(self, *cmd: str) -> None:
        netns.run(netns.in_ns(self.host["netns"], "ip", *cmd), check=False)

    def _flush(self) -> None:
        self._ip("addr", "flush", "dev", self.host["port_a"])
        self._ip("neigh", "flush", "all")

    def _start_ramdisk(self) -> str:
        prov = self.lab["provisioning"]
        address = self.host["provisioning_ip"]
        self._ip("addr", "add", f"{address}/{prov['prefix']}", "dev", self.host["port_a"])
        with (self.dir / "ramdisk.log").open("ab") as out:
            self.ramdisk = subprocess.Popen(
                netns.in_ns(
                    self.host["netns"],
                    sys.executable,
                    "-m",
                    "metalnic.ramdisk.agent",
                    "--api-url",
                    prov["api_url"],
                    "--mac",
                    self.host["mac"],
                    "--disk",
                    str(self.disk),
                    "--config-drive",
                    str(self.config_drive),
                    "--listen",
                    f"{address}:{RAMDISK_PORT}",
                    "--interval",
                    "1",
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        (self.dir / "ramdisk.pid").write_text(str(self.ramdisk.pid))
        return f"ramdisk agent at {address}:{RAMDISK_PORT} → {prov['api_url']}"

    def _stop_ramdisk(self) -> None:
        if self.ramdisk is None:
            return
        self.ramdisk.kill()  # the power is gone: no shutdown, no last words
        self.ramdisk.wait()
        self.ramdisk = None
        (self.dir / "ramdisk.pid").unlink(missing_ok=True)

    def _start_instance(self) -> str:
        try:
            drive = json.loads(self.config_drive.read_text() or "{}")
        except (OSError, ValueError):
            drive = {}
        addresses = instance_addresses(drive.get("network_data") or {}, self.host["mac"])
        for cidr in addresses:
            self._ip("addr", "add", cidr, "dev", self.host["port_a"])
        if not addresses:
            return "instance booted from disk: no network_data for its MAC"
        return f"instance booted from disk with {', '.join(addresses)}"


def observed_state(power_state: str, boot_device: str | None) -> str:
    """The state of a host whose BMC says ``power_state``/``boot_device`` (Redfish names)."""
    if power_state != "On":
        return OFF
    return {"BiosSetup": BIOS, "Pxe": PXE}.get(boot_device or "", DISK)


def instance_addresses(network_data: JSONValue, mac: str) -> list[str]:
    """The IPv4 addresses OpenStack ``network_data`` gives the link with ``mac``."""
    doc = network_data if isinstance(network_data, dict) else {}
    links = {
        link.get("id")
        for link in _objects(doc.get("links"))
        if str(link.get("ethernet_mac_address", "")).lower() == mac.lower()
    }
    found = []
    for net in _objects(doc.get("networks")):
        if net.get("link") in links and net.get("type") == "ipv4" and net.get("ip_address"):
            iface = ipaddress.ip_interface(f"{net['ip_address']}/{net.get('netmask', '32')}")
            found.append(str(iface))
    return found


def _objects(value: JSONValue) -> list[JSONObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


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


def serve_control(lab: LabDescription, sims: dict[str, HostSimulator]) -> ThreadingHTTPServer:
    """The BMCs' line to their hosts: each ``PUT`` is answered once the host follows it."""
    url = urlsplit(lab["hosts_control"]["url"])  # chosen by `lab up` for the BMCs
    handler = functools.partial(_ControlHandler, sims)
    httpd = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 80), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


class _ControlHandler(BaseHTTPRequestHandler):
    def __init__(self, sims: dict[str, HostSimulator], *args: Any) -> None:
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
    sims = [HostSimulator(lab, host, password) for host in lab["hosts"]]
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
