"""IPMI power and management through ``pyghmi`` (IPMI 2.0 / RMCP+ over UDP).

driver_info: ``ipmi_address`` (IP address or host name), ``ipmi_port`` (UDP,
623 by default), ``ipmi_username``/``ipmi_password`` (optional: IPMI allows
the null user; at most 16 and 20 bytes).

Every pyghmi exception, socket error and malformed BMC answer is translated
here, in ``_translated``, into the driver error taxonomy (metalnic/errors.py):
refused credentials are permanent, a silent BMC, a socket error or a busy
completion code are retryable (the conductor tries again), anything else is a
plain ``DriverError``; messages name the BMC address, never the password.
Power changes wait until the BMC reports the target.
Boot devices are set and read back; metalnic's names map to pyghmi's as
pxe/network, disk/hd, bios/setup, cdrom/cdrom (read back as optical), safe/safe.

Sessions: each operation opens its own pyghmi session and logs it out at the
end (``_session``).  pyghmi keeps all sessions of the process in class-level
tables (``Session.bmc_handlers``, ``initting_sessions``, keep-alives), and
pyghmi 1.6 never removes its ``initting_sessions`` entry (it is added under
str credentials and deleted under bytes): a second ``Command`` with the same
credentials would be handed the old session — hanging forever if that one is
still logged in, failing with a TypeError if it was logged out.  So
``_session`` drops that entry before and after each use, and serialises the
operations on one BMC, which must not share a session half-way.

Timing is pyghmi's and has no settings: a BMC that does not answer the login
fails it after about 5 s; one that stops answering mid-session is given up
after retries and a re-login, about 27 s, so a power wait can overrun its
timeout by that much when the BMC vanishes.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pyghmi.exceptions as pyghmi_exc
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private import session as ipmi_session

from metalnic.baremetal import states
from metalnic.baremetal.drivers.base import (
    BmcBusy,
    BmcCredentialsRefused,
    BmcTimedOut,
    BmcUnreachable,
    DriverConfigError,
    DriverError,
    DriverUnsupported,
    ManagementInterface,
    NodeContext,
    PowerInterface,
)
from metalnic.baremetal.states import BootDevice, PowerState, PowerTarget

POLL_INTERVAL = 0.5
DEFAULT_PORT = 623
MAX_USERNAME_BYTES = 16  # IPMI 2.0 user names
MAX_PASSWORD_BYTES = 20  # IPMI 2.0 passwords

_TO_IPMI: dict[BootDevice, str] = {
    states.BOOT_PXE: "network",
    states.BOOT_DISK: "hd",
    states.BOOT_BIOS: "setup",
    states.BOOT_CDROM: "cdrom",
    states.BOOT_SAFE: "safe",
}
# pyghmi reads a CD/DVD override back as "optical".
_FROM_IPMI = {**{v: k for k, v in _TO_IPMI.items()}, "optical": states.BOOT_CDROM}
_FROM_POWER: dict[str, PowerState] = {"on": states.POWER_ON, "off": states.POWER_OFF}
# target -> (pyghmi power directive, the state to wait for)
_POWER_ACTIONS: dict[PowerTarget, tuple[str, PowerState]] = {
    PowerTarget.POWER_ON: ("on", states.POWER_ON),
    PowerTarget.POWER_OFF: ("off", states.POWER_OFF),
    states.SOFT_POWER_OFF: ("shutdown", states.POWER_OFF),
}
# Answers pyghmi cannot parse surface as these rather than as its own errors
# (e.g. a struct.error when a BMC answers with another hash length).
_MALFORMED = (struct.error, IndexError, AssertionError)
_CREDENTIAL_HINTS = ("password", "Unauthorized", "Kg")


@dataclass(frozen=True)
class IpmiInfo:
    address: str
    port: int
    username: str
    password: str = field(repr=False)

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"


def _text(info: Any, key: str, max_bytes: int) -> str:
    value = info.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DriverConfigError(f"ipmi driver_info {key} must be a string")
    if len(value.encode("utf-8")) > max_bytes:
        raise DriverConfigError(f"ipmi driver_info {key} is longer than {max_bytes} bytes")
    return value


def parse_info(info: Any) -> IpmiInfo:
    address = info.get("ipmi_address")
    if not isinstance(address, str) or not address.strip():
        raise DriverConfigError("ipmi driver_info needs ipmi_address (the BMC's IP or host name)")
    address = address.strip()
    if any(c.isspace() for c in address):
        raise DriverConfigError(f"ipmi_address {address!r} is not an IP address or host name")
    raw_port = info.get("ipmi_port", DEFAULT_PORT)
    if raw_port is None:
        raw_port = DEFAULT_PORT
    port: int | None = None
    if isinstance(raw_port, int) and not isinstance(raw_port, bool):
        port = raw_port
    elif isinstance(raw_port, str) and re.fullmatch(r"[0-9]{1,5}", raw_port.strip()):
        # ASCII digits only: str.isdigit() also passes '²', which int() then refuses.
        port = int(raw_port.strip())
    if port is None or not 1 <= port <= 65535:
        raise DriverConfigError(f"ipmi_port {raw_port!r} is not a UDP port number (1-65535)")
    return IpmiInfo(
        address=address,
        port=port,
        username=_text(info, "ipmi_username", MAX_USERNAME_BYTES),
        password=_text(info, "ipmi_password", MAX_PASSWORD_BYTES),
    )


def _scrub(text: str, info: IpmiInfo) -> str:
    return text.replace(info.password, "***") if info.password else text


# pyghmi's texts for a BMC that stopped answering (or never did).
_SILENT = ("", "None", "timeout", "Session no longer connected")
# IPMI completion codes that mean "try again later": node busy, out of space,
# command cannot be served now (IPMI 2.0, table 5-2).
_BUSY_CODES = frozenset({0xC0, 0xC4, 0xD5})


def _from_ipmi(info: IpmiInfo, action: str, exc: pyghmi_exc.IpmiException) -> DriverError:
    detail = _scrub(str(exc), info)
    if any(hint in detail for hint in _CREDENTIAL_HINTS):
        return BmcCredentialsRefused(
            f"IPMI BMC {info.where} refused the credentials while trying to {action}"
        )
    if detail in _SILENT:
        return BmcUnreachable(f"IPMI BMC {info.where} is unreachable or not answering ({action})")
    if getattr(exc, "ipmicode", 0) in _BUSY_CODES:
        return BmcBusy(f"IPMI BMC {info.where} is busy ({action}): {detail}")
    return DriverError(f"IPMI BMC {info.where} failed to {action}: {detail}")


@contextmanager
def _translated(info: IpmiInfo, action: str) -> Iterator[None]:
    """pyghmi's exceptions as the driver error taxonomy (metalnic/errors.py)."""
    try:
        yield
    except DriverError:
        raise
    except pyghmi_exc.IpmiException as exc:
        raise _from_ipmi(info, action, exc) from exc
    except pyghmi_exc.UnsupportedFunctionality as exc:
        raise DriverUnsupported(
            f"IPMI BMC {info.where} cannot {action}: {_scrub(str(exc), info)}"
        ) from exc
    except pyghmi_exc.PyghmiException as exc:
        raise DriverError(
            f"IPMI BMC {info.where} failed to {action}: {_scrub(str(exc), info)}"
        ) from exc
    except TimeoutError as exc:
        raise BmcTimedOut(f"IPMI BMC {info.where} did not answer in time ({action})") from exc
    except OSError as exc:  # socket errors, name resolution
        raise BmcUnreachable(
            f"IPMI BMC {info.where} is unreachable ({action}): {_scrub(str(exc), info)}"
        ) from exc
    except _MALFORMED as exc:
        raise DriverError(
            f"IPMI BMC {info.where} gave an answer that could not be understood while "
            f"trying to {action} ({type(exc).__name__})"
        ) from exc


_locks_guard = threading.Lock()
_locks: dict[tuple[str, int], threading.Lock] = {}


def _bmc_lock(info: IpmiInfo) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((info.address, info.port), threading.Lock())


@contextmanager
def _session(info: IpmiInfo) -> Iterator[Any]:
    """A logged-in ``pyghmi`` Command for one operation, logged out afterwards."""
    # The key pyghmi files a half-open session under (see the module docstring).
    key = (info.address, info.username, info.password, info.port, None)
    with _bmc_lock(info):
        ipmi_session.Session.initting_sessions.pop(key, None)
        cmd = None
        try:
            cmd = ipmi_command.Command(
                bmc=info.address, userid=info.username, password=info.password, port=info.port
            )
            yield cmd
        finally:
            if cmd is not None and not cmd.ipmi_session.broken:
                # Sends "close session" without waiting; removes the session
                # from pyghmi's tables and stops its keep-alives.
                with suppress(pyghmi_exc.PyghmiException, OSError):
                    cmd.ipmi_session.logout()
            ipmi_session.Session.initting_sessions.pop(key, None)


def _power_of(info: IpmiInfo, cmd: Any) -> PowerState:
    raw = cmd.get_power().get("powerstate")
    state = _FROM_POWER.get(raw)
    if state is None:
        raise DriverError(f"IPMI BMC {info.where} reports an unknown power state {raw!r}")
    return state


def _wait(
    info: IpmiInfo, cmd: Any, wanted: PowerState, deadline: float, timeout: float, asked: str
) -> None:
    while True:
        current = _power_of(info, cmd)
        if current == wanted:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DriverError(
                f"IPMI BMC {info.where} did not reach {wanted} within {timeout:g} s "
                f"after {asked} (it reports {current})"
            )
        time.sleep(min(POLL_INTERVAL, remaining))


class IpmiPower(PowerInterface):
    def validate(self, ctx: NodeContext) -> None:
        parse_info(ctx.driver_info)

    def get_power_state(self, ctx: NodeContext) -> PowerState:
        info = parse_info(ctx.driver_info)
        with _translated(info, "read the power state"), _session(info) as cmd:
            return _power_of(info, cmd)

    def set_power_state(self, ctx: NodeContext, target: PowerTarget, timeout: float) -> None:
        info = parse_info(ctx.driver_info)
        if target not in _POWER_ACTIONS:
            raise DriverUnsupported(f"IPMI cannot set power to {str(target)!r}")
        directive, wanted = _POWER_ACTIONS[target]
        deadline = time.monotonic() + timeout
        with _translated(info, f"set power to {target}"), _session(info) as cmd:
            if _power_of(info, cmd) != wanted:
                cmd.set_power(directive)
            _wait(info, cmd, wanted, deadline, timeout, target)

    def reboot(self, ctx: NodeContext, timeout: float, soft: bool = False) -> None:
        info = parse_info(ctx.driver_info)
        asked = states.SOFT_REBOOT if soft else states.REBOOT
        deadline = time.monotonic() + timeout
        with _translated(info, "reboot"), _session(info) as cmd:
            if _power_of(info, cmd) == states.POWER_OFF:
                cmd.set_power("on")
            elif soft:
                # IPMI has no soft reset: ask the OS to shut down, then power on.
                cmd.set_power("shutdown")
                _wait(info, cmd, states.POWER_OFF, deadline, timeout, asked)
                cmd.set_power("on")
            else:
                cmd.set_power("reset")
            _wait(info, cmd, states.POWER_ON, deadline, timeout, asked)


class IpmiManagement(ManagementInterface):
    def validate(self, ctx: NodeContext) -> None:
        parse_info(ctx.driver_info)

    def supported_boot_devices(self, ctx: NodeContext) -> list[BootDevice]:
        return [dev for dev, name in _TO_IPMI.items() if name in ipmi_command.boot_devices]

    def get_boot_device(self, ctx: NodeContext) -> tuple[BootDevice | None, bool | None]:
        info = parse_info(ctx.driver_info)
        with _translated(info, "read the boot device"), _session(info) as cmd:
            got = cmd.get_bootdev()
        return self._decode(got)

    @staticmethod
    def _decode(got: dict[str, Any]) -> tuple[BootDevice | None, bool | None]:
        device = got.get("bootdev")
        if device == "default":  # no override set
            return None, None
        return _FROM_IPMI.get(str(device)), bool(got.get("persistent"))

    def set_boot_device(
        self, ctx: NodeContext, device: BootDevice, persistent: bool = False
    ) -> None:
        info = parse_info(ctx.driver_info)
        if device not in self.supported_boot_devices(ctx):
            raise DriverUnsupported(f"IPMI cannot boot from {str(device)!r}")
        with _translated(info, f"set the boot device to {device}"), _session(info) as cmd:
            result = cmd.set_bootdev(_TO_IPMI[device], persist=persistent)
            if isinstance(result, dict) and "error" in result:
                raise DriverError(
                    f"IPMI BMC {info.where} refused boot device {device}: {result['error']}"
                )
            got = cmd.get_bootdev()
        read_back, _ = self._decode(got)
        # Only the device is checked: many BMCs accept but do not keep or
        # report the persistent flag (pyghmi says as much).
        if read_back != device:
            raise DriverError(
                f"IPMI BMC {info.where} did not accept boot device {device} "
                f"(it reads back {read_back or got.get('bootdev')})"
            )
