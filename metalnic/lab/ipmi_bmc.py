"""A fake IPMI BMC: real RMCP+ (IPMI 2.0 lanplus) on UDP, state in memory.

Built on ``pyghmi.ipmi.bmc.Bmc``; it keeps the chassis power state and the
boot flags (device, persistent) of one machine.  Run it as its own process —
pyghmi keeps client and server sessions in the same class-level tables, so a
BMC and a client in one process would see each other's packets::

    METALNIC_BMC_PASSWORD=… python -m metalnic.lab.ipmi_bmc --port 6230 --user admin \
        [--password-file F] [--power-delay 1.0] [--notify-url URL --host NAME] \
        [--faults-dir DIR]

The password comes from ``--password-file`` or ``METALNIC_BMC_PASSWORD``, never
from the command line (other users can read that).

It listens on 127.0.0.1 only.  With ``--power-delay S`` a power change takes
effect S seconds after it was asked for (a reset drops the power at once and
restores it after S), so that a driver has to wait for it.

With ``--notify-url`` every change of power or boot device that takes effect is
``PUT`` to that URL as ``{"name": NAME, "power_state": "On"|"Off",
"boot_device": <Redfish name>|null}`` (what sushy-tools' fake driver sends) and
the request that caused it is answered only after that ``PUT`` returned: the
lab's host simulator (``lab.hosts``) is dark by then, as a real host is the
instant its power drops.  A reset is pushed as off, then on.  A notification
that fails fails the request (completion code 0xFF): "off" is never confirmed
for a host that was not told.  Each change is also a ``<unix time> power …``
line on stdout.

What pyghmi's stock server lacks and this adds:

* It only does cipher suite 3 (HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) but
  answers every open-session request as if that suite had been proposed.
  pyghmi's client proposes SHA-256 first and then fails on the SHA-1 sized
  RAKP 2 (a struct error).  Here other proposals get RMCP+ status 0x11 (no
  matching cipher suite), upon which pyghmi's client retries with SHA-1.
* An unknown user gets RAKP 2 status 0x0d (unauthorized name) instead of
  silence, so clients fail at once instead of after their retries.
* A client that opens a new session from the port of an old one (pyghmi's
  client does) is not taken for a replay of the old one.
* The boot flags keep the "persistent" bit and can be cleared.

With ``--faults-dir`` it has the lab's fault knob (``lab.bmcfaults``): while
``<DIR>/<NAME>/refuse-bios-setup`` exists, setting the boot device to BIOS set-up
is answered with completion code 0xCC and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyghmi.ipmi.bmc as bmc
import pyghmi.ipmi.private.constants as constants
import pyghmi.ipmi.private.serversession as serversession

from metalnic.lab.bmcfaults import refuses_bios_setup

# RMCP+ algorithm numbers of cipher suite 3, the only one pyghmi's server does.
_AUTH_HMAC_SHA1 = 1
_INTEGRITY_HMAC_SHA1_96 = 1
_CONF_AES_CBC_128 = 1
_NO_CIPHER_SUITE_MATCH = 0x11
_UNAUTHORIZED_NAME = 0x0D

# Boot flags parameter (5), data 1: valid, persistent; data 2 bits 5..2: device.
_BOOT_VALID = 0x80
_BOOT_PERSISTENT = 0x40
# The host simulator is on loopback: never through a proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Device numbers (data 2 bits 5..2) as the Redfish names the host simulator reads.
_REDFISH_DEVICE = {1: "Pxe", 2: "Hdd", 5: "Cd", 6: "BiosSetup"}
_BIOS_SETUP = 6
_INVALID_DATA_FIELD = 0xCC


class _Session(serversession.ServerSession):  # type: ignore[misc]
    """A server session that refuses suites it cannot do and unknown users."""

    def create_open_session_response(self, request: bytearray) -> bytearray:
        # Open session request: tag, privilege, 2 reserved, console session id,
        # then three 8-byte algorithm payloads with the algorithm in byte 4.
        proposed = (request[12], request[20], request[28]) if len(request) >= 32 else ()
        if proposed != (_AUTH_HMAC_SHA1, _INTEGRITY_HMAC_SHA1_96, _CONF_AES_CBC_128):
            self.clientsessionid = request[4:8]
            return bytearray([request[0], _NO_CIPHER_SUITE_MATCH, 0, 0]) + request[4:8]
        # pyghmi's client reuses its UDP port for its next session, which then
        # lands on this (old) session object: forget the old sequence number,
        # or the new session's first packets would be dropped as replays.
        self.remseqnumber = None
        return bytearray(super().create_open_session_response(request))

    def sessionless_data(self, data: bytes, sockaddr: Any) -> None:
        # pyghmi's loop queues a packet for this session, and when the session has
        # left its handler table before the packet is processed (the client closed
        # it and, reusing its UDP port, already asks for the next one: seen under
        # load) it calls this method, which ServerSession lacks — the
        # AttributeError killed the emulator mid-demo.  It is the BMC's now.
        self.bmc.sessionless_data(data, sockaddr)

    def _got_rakp1(self, data: bytearray) -> None:
        name = bytes(data[28:])
        if data[27] and self.authdata.get(name.decode("utf-8", "replace")) is None:
            reply = bytearray([data[0], _UNAUTHORIZED_NAME, 0, 0]) + self.clientsessionid
            self.send_payload(reply, constants.payload_types["rakp2"], retry=False)
            return
        super()._got_rakp1(data)


class FakeBmc(bmc.Bmc):  # type: ignore[misc]
    def __init__(
        self,
        authdata: dict[str, str],
        port: int,
        power_delay: float = 0.0,
        notify: tuple[str, str] | None = None,  # (URL, host name)
        faults: tuple[Path, str] | None = None,  # (lab.bmcfaults' dir, host name)
    ) -> None:
        # An IPv6 socket bound to the v4-mapped loopback: reachable at
        # 127.0.0.1 only, and pyghmi's internal wake-up packets (sent to ::1
        # or ::ffff:127.0.0.1) can be sent from it.
        super().__init__(authdata, port=port, address="::ffff:127.0.0.1")
        self.power_delay = power_delay
        self.notify = notify
        self.faults = faults
        self._lock = threading.Lock()
        self._power = "off"
        self._pending: tuple[str, float] | None = None  # (state, monotonic due time)
        self._boot_device = 0  # pyghmi's device number; 0 = no override
        self._boot_flags = 0

    # --- power --------------------------------------------------------------

    def _settle(self) -> None:
        if self._pending is not None and time.monotonic() >= self._pending[1]:
            self._power = self._pending[0]
            self._pending = None
            self._push()

    def _push(self) -> None:
        """Tell the host what it now is, and wait for it (called with the lock held)."""
        print(f"{time.time():.6f} power {self._power} boot {self._boot_device}", flush=True)
        if self.notify is None:
            return
        url, name = self.notify
        body = {
            "name": name,
            "power_state": "On" if self._power == "on" else "Off",
            "boot_device": _REDFISH_DEVICE.get(self._boot_device),
        }
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="PUT"
        )
        with _DIRECT.open(request, timeout=10):
            pass  # raises on failure: pyghmi answers the request with 0xFF
        print(f"{time.time():.6f} host {name} follows", flush=True)

    def _change(self, state: str) -> None:
        with self._lock:
            self._settle()
            if self.power_delay <= 0:
                self._power, self._pending = state, None
                self._push()
            else:
                self._pending = (state, time.monotonic() + self.power_delay)

    def get_power_state(self) -> str:
        with self._lock:
            self._settle()
            return self._power

    def power_on(self) -> None:
        self._change("on")

    def power_off(self) -> None:
        self._change("off")

    def power_shutdown(self) -> None:
        self._change("off")

    def power_reset(self) -> None:
        with self._lock:
            self._settle()
            if self._power != "on":
                return  # resetting a machine that is off does nothing
            # The host goes dark and boots again: it is told both.
            self._power = "off"
            self._push()
            if self.power_delay <= 0:
                self._power = "on"
                self._push()
        if self.power_delay > 0:
            self._change("on")

    def power_cycle(self) -> None:
        self.power_reset()

    def pulse_diag(self) -> None:
        return None

    def cold_reset(self) -> int:
        return 0

    # --- boot flags -----------------------------------------------------------

    def get_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        if not request["data"] or request["data"][0] & 0x7F != 5:
            session.send_ipmi_response(code=0x80)  # parameter not supported
            return
        with self._lock:
            flags, device = self._boot_flags, self._boot_device
        session.send_ipmi_response(data=[1, 5, flags, device << 2, 0, 0, 0])

    def set_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        data = request["data"]
        if not data:
            session.send_ipmi_response(code=0xCC)
            return
        param = data[0] & 0x7F
        if param in (0, 3, 4):  # set-in-progress, info acknowledge, timer: nod
            session.send_ipmi_response()
            return
        if param != 5 or len(data) < 3:
            session.send_ipmi_response(code=0x80)
            return
        flags = data[1] & (_BOOT_VALID | _BOOT_PERSISTENT | 0x20)
        device = (data[2] >> 2) & 0x0F
        if flags & _BOOT_VALID and device == _BIOS_SETUP and self._refuses_bios():
            print(f"{time.time():.6f} refused boot device BIOS set-up (lab fault)", flush=True)
            session.send_ipmi_response(code=_INVALID_DATA_FIELD)
            return
        with self._lock:
            if flags & _BOOT_VALID:
                self._boot_flags, self._boot_device = flags, device
            else:
                self._boot_flags, self._boot_device = 0, 0
            self._push()
        session.send_ipmi_response()

    def _refuses_bios(self) -> bool:
        return self.faults is not None and refuses_bios_setup(*self.faults)

    # --- sessions ---------------------------------------------------------------

    def sessionless_data(self, data: bytes, sockaddr: Any) -> None:
        raw = bytearray(data)
        # An RMCP+ open session request (IPMI 2.0, payload type 0x10) starts a
        # session: use ours, which can refuse cipher suites.
        if len(raw) >= 22 and raw[0] == 6 and raw[2:4] == b"\xff\x07" and raw[4:6] == b"\x06\x10":
            _Session(
                self.authdata, self.kg, sockaddr, self.serversocket, raw[16:], self.uuid, bmc=self
            )
            return
        super().sessionless_data(data, sockaddr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", help="else METALNIC_BMC_PASSWORD")
    parser.add_argument(
        "--power-delay", type=float, default=0.0, help="seconds before a power change takes effect"
    )
    parser.add_argument("--notify-url", help="PUT every power/boot change here before answering")
    parser.add_argument("--host", default="", help="the host's name in those notifications")
    parser.add_argument("--faults-dir", type=Path, help="lab.bmcfaults' knobs: <DIR>/<host>/…")
    args = parser.parse_args(argv)
    if args.password_file:
        with open(args.password_file) as fh:
            password = fh.read().strip()
    else:
        password = os.environ.get("METALNIC_BMC_PASSWORD", "")
    if not password:
        parser.error("no password: give --password-file or set METALNIC_BMC_PASSWORD")
    notify = (args.notify_url, args.host) if args.notify_url else None
    faults = (args.faults_dir, args.host) if args.faults_dir else None
    fake = FakeBmc({args.user: password}, args.port, args.power_delay, notify, faults)
    print(f"fake IPMI BMC on 127.0.0.1:{args.port}/udp", flush=True)
    fake.listen(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
