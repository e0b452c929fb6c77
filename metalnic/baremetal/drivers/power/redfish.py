"""Redfish power and management through ``sushy``.

driver_info: ``redfish_address`` (URL), ``redfish_system_id`` (the system's
path, optional when the BMC has one system), ``redfish_username``/
``redfish_password``, ``redfish_verify_ca`` (true by default; false, or a CA
bundle path).

Every sushy exception is translated here, in ``_translated``, into the driver
error taxonomy (metalnic/errors.py): refused credentials (401/403) are
permanent; no connection, a read timeout or a busy answer (429/503) are
retryable (the conductor tries again); a TLS failure and any other HTTP
error are plain ``DriverError``s; messages name the BMC address (``where``: credentials an
address may carry, ``https://user:pass@bmc``, are masked) and drop the
password from sushy's text; ``DriverError`` redacts the rest.  Each
call opens one sushy connection (a Redfish session when the BMC offers one,
else basic auth) and closes it, session included, when done: BMCs have few
session slots.  Power changes wait until the BMC reports the target (BMCs
apply them late: sushy-tools' fake driver 0–11 s).  Some BMCs do not list
``BiosSetup`` among the allowed boot targets although they accept it; then the
override is PATCHed directly, through the same connection, and read back.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sushy
from sushy.auth import AuthBase, SessionOrBasicAuth
from sushy.connector import Connector
from sushy.resources.system.system import System

from metalnic import redact
from metalnic.baremetal import states
from metalnic.baremetal.coerce import as_bool
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
from metalnic.errors import InvalidInput

POLL_INTERVAL = 0.5
_TO_REDFISH: dict[BootDevice, str] = {
    states.BOOT_PXE: "Pxe",
    states.BOOT_DISK: "Hdd",
    states.BOOT_CDROM: "Cd",
    states.BOOT_BIOS: "BiosSetup",
}
_FROM_REDFISH = {v: k for k, v in _TO_REDFISH.items()}


@dataclass(frozen=True)
class RedfishInfo:
    address: str
    system_id: str | None
    username: str | None
    password: str | None = field(repr=False)
    verify: bool | str

    def __repr__(self) -> str:  # the address may carry credentials
        return f"RedfishInfo(where={self.where!r}, system_id={self.system_id!r})"

    @property
    def where(self) -> str:
        """The address as messages show it."""
        return redact.redact_text(self.address)

    def scrub(self, text: str) -> str:
        """A vendor's message without this BMC's credentials."""
        shown = text.replace(self.address, self.where)
        return redact.redact_text(redact.scrub_values(shown, [self.password or ""]))


def parse_info(info: Any) -> RedfishInfo:
    address = info.get("redfish_address")
    if not isinstance(address, str) or not address:
        raise DriverConfigError("redfish driver_info needs redfish_address (the BMC's URL)")
    if "://" not in address:
        address = "https://" + address
    verify_raw = info.get("redfish_verify_ca", True)
    verify: bool | str
    try:
        verify = as_bool("redfish_verify_ca", verify_raw)
    except InvalidInput:
        if not Path(str(verify_raw)).exists():
            raise DriverConfigError(
                f"redfish_verify_ca {verify_raw!r} is neither a boolean nor an existing CA file"
            ) from None
        verify = str(verify_raw)
    system_id = info.get("redfish_system_id") or None
    if system_id is not None and not (isinstance(system_id, str) and system_id.startswith("/")):
        raise DriverConfigError(
            f"redfish_system_id {system_id!r} is not a path such as /redfish/v1/Systems/1"
        )
    return RedfishInfo(
        address=address.rstrip("/"),
        system_id=system_id,
        username=info.get("redfish_username"),
        password=info.get("redfish_password"),
        verify=verify,
    )


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The exception of ``kind`` behind a sushy ConnectionError (requests chains it), if any."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# HTTP answers that mean "busy, ask again later" (Redfish spec: 503 with Retry-After).
_BUSY = (429, 503)


@contextmanager
def _translated(info: RedfishInfo, action: str) -> Iterator[None]:
    """sushy's exceptions as the driver error taxonomy (metalnic/errors.py)."""
    try:
        yield
    except sushy.exceptions.AccessError as exc:
        raise BmcCredentialsRefused(
            f"Redfish BMC {info.where} refused the credentials while trying to {action}"
        ) from exc
    except sushy.exceptions.ConnectionError as exc:
        tls = _cause(exc, ssl.SSLError)
        if isinstance(tls, ssl.SSLError):  # a certificate does not change on its own
            reason = getattr(tls, "verify_message", None) or tls.reason or type(tls).__name__
            raise DriverError(
                f"Redfish BMC {info.where}: TLS failed ({reason}) while trying to {action}; "
                "is redfish_verify_ca the CA bundle of its certificate?"
            ) from exc
        if _cause(exc, requests.exceptions.ReadTimeout) is not None:
            raise BmcTimedOut(
                f"Redfish BMC {info.where} did not answer in time ({action})"
            ) from exc
        raise BmcUnreachable(f"Redfish BMC {info.where} is unreachable ({action})") from exc
    except sushy.exceptions.HTTPError as exc:
        if exc.status_code in _BUSY:
            raise BmcBusy(
                f"Redfish BMC {info.where} is busy (HTTP {exc.status_code}) while trying to "
                f"{action}"
            ) from exc
        raise DriverError(
            f"Redfish BMC {info.where} failed to {action}: {info.scrub(str(exc))}"
        ) from exc
    except sushy.exceptions.SushyError as exc:
        raise DriverError(
            f"Redfish BMC {info.where} failed to {action}: {info.scrub(str(exc))}"
        ) from exc


class _NoAuth(AuthBase):  # type: ignore[misc]
    """No credentials configured: send no Authorization header at all."""

    def _do_authenticate(self) -> None:
        pass

    def can_refresh_session(self) -> bool:
        return False


@contextmanager
def _connected(info: RedfishInfo) -> Iterator[tuple[Connector, System]]:
    """The node's system on one connection, closed (Redfish session deleted) on exit."""
    conn = Connector(
        info.address,
        verify=info.verify,
        server_side_retries=2,
        server_side_retries_delay=1,
        default_request_timeout=30,
    )
    auth = (
        SessionOrBasicAuth(username=info.username, password=info.password or "")
        if info.username
        else _NoAuth()
    )
    try:
        root = sushy.Sushy(info.address, auth=auth, connector=conn)
        system_id = info.system_id
        if system_id is None:
            members = list(root.get_system_collection().members_identities)
            if len(members) != 1:
                raise DriverConfigError(
                    f"Redfish BMC {info.where} has {len(members)} systems; set redfish_system_id"
                )
            system_id = members[0]
        yield conn, root.get_system(system_id)
    finally:
        with suppress(sushy.exceptions.SushyError):
            auth.close()
        conn.close()


def _power_of(system: System) -> PowerState | None:
    state = system.power_state
    if state == sushy.PowerState.ON:
        return states.POWER_ON
    if state == sushy.PowerState.OFF:
        return states.POWER_OFF
    return None  # powering on/off: not there yet


class RedfishPower(PowerInterface):
    def validate(self, ctx: NodeContext) -> None:
        parse_info(ctx.driver_info)

    def get_power_state(self, ctx: NodeContext) -> PowerState:
        info = parse_info(ctx.driver_info)
        with _translated(info, "read the power state"), _connected(info) as (_, system):
            state = _power_of(system)
        if state is None:
            raise BmcBusy(f"Redfish BMC {info.where} reports a power transition in progress")
        return state

    def set_power_state(self, ctx: NodeContext, target: PowerTarget, timeout: float) -> None:
        info = parse_info(ctx.driver_info)
        reset = {
            PowerTarget.POWER_ON: sushy.ResetType.ON,
            PowerTarget.POWER_OFF: sushy.ResetType.FORCE_OFF,
            PowerTarget.SOFT_POWER_OFF: sushy.ResetType.GRACEFUL_SHUTDOWN,
        }.get(target)
        if reset is None:
            raise DriverUnsupported(
                f"Redfish power cannot be set to {str(target)!r} (reboots use reboot())"
            )
        wanted = states.POWER_ON if target == PowerTarget.POWER_ON else states.POWER_OFF
        with _translated(info, f"set power to {wanted}"), _connected(info) as (_, system):
            if _power_of(system) != wanted:
                system.reset_system(reset)
            self._wait(info, system, wanted, timeout)

    def reboot(self, ctx: NodeContext, timeout: float, soft: bool = False) -> None:
        info = parse_info(ctx.driver_info)
        with _translated(info, "reboot"), _connected(info) as (_, system):
            if _power_of(system) == states.POWER_OFF:
                system.reset_system(sushy.ResetType.ON)
            else:
                system.reset_system(
                    sushy.ResetType.GRACEFUL_RESTART if soft else sushy.ResetType.FORCE_RESTART
                )
            self._wait(info, system, states.POWER_ON, timeout)

    @staticmethod
    def _wait(info: RedfishInfo, system: System, wanted: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            system.refresh()
            current = _power_of(system)
            if current == wanted:
                return
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"Redfish BMC {info.where} did not reach {wanted} within {timeout:.0f} s "
                    f"(it reports {current or 'a transition'})"
                )
            time.sleep(POLL_INTERVAL)


class RedfishManagement(ManagementInterface):
    def validate(self, ctx: NodeContext) -> None:
        parse_info(ctx.driver_info)

    def supported_boot_devices(self, ctx: NodeContext) -> list[BootDevice]:
        return list(_TO_REDFISH)

    def get_boot_device(self, ctx: NodeContext) -> tuple[BootDevice | None, bool | None]:
        info = parse_info(ctx.driver_info)
        with _translated(info, "read the boot device"), _connected(info) as (_, system):
            boot = system.boot
        target = getattr(boot.target, "value", boot.target)
        if boot.enabled is None:  # the BMC does not say
            return _FROM_REDFISH.get(str(target)), None
        persistent = boot.enabled == sushy.BootSourceOverrideEnabled.CONTINUOUS
        return _FROM_REDFISH.get(str(target)), persistent

    def set_boot_device(
        self, ctx: NodeContext, device: BootDevice, persistent: bool = False
    ) -> None:
        info = parse_info(ctx.driver_info)
        if device not in _TO_REDFISH:
            raise DriverUnsupported(f"Redfish cannot boot from {str(device)!r}")
        target = _TO_REDFISH[device]
        enabled = (
            sushy.BootSourceOverrideEnabled.CONTINUOUS
            if persistent
            else sushy.BootSourceOverrideEnabled.ONCE
        )
        action = f"set the boot device to {device}"
        with _translated(info, action), _connected(info) as (conn, system):
            allowed = system.get_allowed_system_boot_source_values()
            if sushy.BootSource(target) in allowed:
                system.set_system_boot_options(target=sushy.BootSource(target), enabled=enabled)
            else:
                # The BMC does not advertise it; many accept it anyway.  Same
                # connection (session or basic auth, TLS settings), same errors.
                boot = {
                    "BootSourceOverrideTarget": target,
                    "BootSourceOverrideEnabled": enabled.value,
                }
                etag = conn.get(system.path).headers.get("ETag")
                conn.patch(system.path, data={"Boot": boot}, etag=etag)
            system.refresh()
            got = getattr(system.boot.target, "value", system.boot.target)
        if got != target:
            raise DriverError(
                f"Redfish BMC {info.where} did not accept boot device {device} "
                f"(it reads back {got})"
            )
