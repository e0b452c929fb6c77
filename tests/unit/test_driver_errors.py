"""The driver error taxonomy: each vendor failure lands in the right class (retryable
or permanent, HTTP status), and the conductor retries only the retryable ones."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyghmi.exceptions as pyghmi_exc
import pytest
import requests
import sushy

from metalnic.baremetal.conductor import bmc, history
from metalnic.baremetal.drivers.power import ipmi, redfish
from metalnic.errors import (
    BmcBusy,
    BmcCredentialsRefused,
    BmcRetryable,
    BmcTimedOut,
    BmcUnreachable,
    ConductorStopping,
    DriverConfigError,
    DriverError,
    DriverUnsupported,
)

RF = redfish.parse_info({"redfish_address": "http://bmc.example:8000", "redfish_password": "pw"})
IPMI = ipmi.parse_info({"ipmi_address": "10.0.0.9", "ipmi_password": "s3cret-pw"})


def _response(status: int) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = b'{"error": {"code": "Base.1.0.GeneralError", "message": "nope"}}'
    return r


def _http(kind: type[sushy.exceptions.HTTPError], status: int) -> Exception:
    return kind(method="GET", url="http://bmc.example:8000/redfish/v1", response=_response(status))


def _chained(outer: Callable[[], Exception], inner: Exception) -> Exception:
    """``outer()`` raised while handling ``inner``, as sushy's connector raises it."""
    try:
        try:
            raise inner
        except Exception:
            raise outer() from None
    except Exception as exc:
        exc.__context__ = inner
        return exc


def _connection(inner: Exception) -> Exception:
    url = "http://bmc.example:8000"
    return _chained(lambda: sushy.exceptions.ConnectionError(url=url, error=inner), inner)


REDFISH_CASES = [
    (lambda: _http(sushy.exceptions.AccessError, 401), BmcCredentialsRefused),
    (lambda: _http(sushy.exceptions.AccessError, 403), BmcCredentialsRefused),
    (lambda: _http(sushy.exceptions.ServerSideError, 503), BmcBusy),
    (lambda: _http(sushy.exceptions.HTTPError, 429), BmcBusy),
    (lambda: _http(sushy.exceptions.ServerSideError, 500), DriverError),
    (lambda: _http(sushy.exceptions.ResourceNotFoundError, 404), DriverError),
    (lambda: _connection(requests.exceptions.ReadTimeout("read timed out")), BmcTimedOut),
    (lambda: _connection(requests.exceptions.ConnectionError("refused")), BmcUnreachable),
    (lambda: _connection(requests.exceptions.ConnectTimeout("no route")), BmcUnreachable),
    (lambda: sushy.exceptions.MissingAttributeError(attribute="a", resource="r"), DriverError),
]


@pytest.mark.parametrize(("make", "kind"), REDFISH_CASES)
def test_redfish_failures_map_to_the_taxonomy(make: Callable[[], Exception], kind: type) -> None:
    with pytest.raises(DriverError) as caught, redfish._translated(RF, "read the power state"):
        raise make()
    assert type(caught.value) is kind
    assert "bmc.example:8000" in caught.value.message
    assert "read the power state" in caught.value.message


IPMI_CASES: list[tuple[Exception, type]] = [
    (pyghmi_exc.IpmiException("Incorrect password provided"), BmcCredentialsRefused),
    (pyghmi_exc.IpmiException("Unauthorized name"), BmcCredentialsRefused),
    (pyghmi_exc.IpmiException("timeout"), BmcUnreachable),
    (pyghmi_exc.IpmiException("Session no longer connected"), BmcUnreachable),
    (pyghmi_exc.IpmiException("Node busy", 0xC0), BmcBusy),
    (pyghmi_exc.IpmiException("Invalid data field in request", 0xCC), DriverError),
    (pyghmi_exc.UnsupportedFunctionality("no such command"), DriverUnsupported),
    (pyghmi_exc.PyghmiException("odd"), DriverError),
    (TimeoutError("timed out"), BmcTimedOut),
    (ConnectionRefusedError(111, "refused"), BmcUnreachable),
    (socket.gaierror(-2, "Name or service not known"), BmcUnreachable),
    (struct.error("unpack requires a buffer of 20 bytes"), DriverError),
]


@pytest.mark.parametrize(("raised", "kind"), IPMI_CASES)
def test_ipmi_failures_map_to_the_taxonomy(raised: Exception, kind: type) -> None:
    with pytest.raises(DriverError) as caught, ipmi._translated(IPMI, "set power to power on"):
        raise raised
    assert type(caught.value) is kind
    assert "10.0.0.9:623" in caught.value.message
    assert "s3cret-pw" not in caught.value.message


@pytest.mark.parametrize(
    ("kind", "status", "retryable"),
    [
        (BmcUnreachable, 503, True),
        (BmcTimedOut, 503, True),
        (BmcBusy, 503, True),
        (BmcCredentialsRefused, 500, False),  # as Ironic (IPMIFailure / RedfishError)
        (DriverUnsupported, 400, False),  # as Ironic (InvalidParameterValue)
        (DriverConfigError, 400, False),
        (DriverError, 500, False),
    ],
)
def test_each_class_answers_with_its_status(kind: type, status: int, retryable: bool) -> None:
    error = kind("x")
    assert (error.status, error.retryable) == (status, retryable)
    assert isinstance(error, BmcRetryable) == retryable


# --- the conductor's bounded retries (conductor/bmc.py) -------------------------------


@dataclass
class FakeTask:
    """What bmc.call needs of a Task: its policy, its history and its stop flag."""

    retry: bmc.RetryPolicy
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    stop_after: int | None = None

    def log(self, event_type: str, event: str, severity: str = "INFO") -> None:
        self.rows.append((event_type, event, severity))

    def checkpoint(self, step: str) -> None:
        if self.stop_after is not None and len(self.rows) >= self.stop_after:
            raise ConductorStopping(f"the flow ended before {step}")


class FlakyBmc:
    """Fails with ``error`` for the first ``failures`` calls, then answers."""

    def __init__(self, failures: int, error: DriverError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "power on"


def _call(task: FakeTask, step: Callable[[], Any]) -> Any:
    return bmc.call(task, "read the power state", step)  # type: ignore[arg-type]


POLICY = bmc.RetryPolicy(retries=3, interval=0.0)


def test_a_bmc_that_comes_back_within_the_retries_succeeds() -> None:
    task, flaky = FakeTask(POLICY), FlakyBmc(2, BmcUnreachable("BMC x is unreachable"))
    assert _call(task, flaky) == "power on"
    assert flaky.calls == 3
    assert [r[0] for r in task.rows] == [history.RETRY, history.RETRY]
    assert "retry 1 of 3" in task.rows[0][1] and "retry 2 of 3" in task.rows[1][1]
    assert all(r[2] == "WARNING" for r in task.rows)


@pytest.mark.parametrize("error", [BmcUnreachable("down"), BmcTimedOut("slow"), BmcBusy("busy")])
def test_retryable_failures_are_retried_n_times_then_fail(error: DriverError) -> None:
    task, flaky = FakeTask(POLICY), FlakyBmc(99, error)
    with pytest.raises(type(error)) as caught:
        _call(task, flaky)
    assert flaky.calls == 4  # the first try and three retries
    assert len(task.rows) == 3
    assert "gave up after 3 retries" in caught.value.message
    assert caught.value.status == 503


@pytest.mark.parametrize(
    "error",
    [BmcCredentialsRefused("refused"), DriverUnsupported("no"), DriverError("boom")],
)
def test_permanent_failures_are_not_retried(error: DriverError) -> None:
    task, flaky = FakeTask(POLICY), FlakyBmc(99, error)
    with pytest.raises(type(error)) as caught:
        _call(task, flaky)
    assert flaky.calls == 1
    assert task.rows == []
    assert caught.value is error


def test_no_retry_policy_answers_at_once() -> None:
    task, flaky = FakeTask(bmc.NO_RETRY), FlakyBmc(1, BmcUnreachable("down"))
    with pytest.raises(BmcUnreachable) as caught:
        _call(task, flaky)
    assert flaky.calls == 1 and task.rows == []
    assert "gave up" not in caught.value.message


def test_a_stopping_conductor_ends_the_retries() -> None:
    task, flaky = FakeTask(POLICY, stop_after=1), FlakyBmc(99, BmcUnreachable("down"))
    with pytest.raises(ConductorStopping):
        _call(task, flaky)
    assert flaky.calls == 1 and len(task.rows) == 1


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [
        (BmcUnreachable("BMC down"), 503, True),
        (BmcBusy("BMC busy"), 503, True),
        (DriverError("port not ACTIVE within 60 s"), 503, True),  # a NIC agent not answering
        (BmcCredentialsRefused("refused"), 500, False),
        (DriverUnsupported("no bios"), 400, False),
        (DriverConfigError("no network for tenant"), 400, False),
    ],
)
def test_a_failed_hot_plug_answers_by_its_class(
    error: DriverError, status: int, retryable: bool
) -> None:
    answer = bmc.request_error(error, "VIF v could not be plugged")
    assert (answer.status, answer.retryable) == (status, retryable)
    assert answer.message == f"VIF v could not be plugged: {error.message}"
