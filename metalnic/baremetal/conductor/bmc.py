"""Bounded retries of retryable BMC failures, each one written to the node's history.

The drivers sort every BMC failure into the taxonomy of metalnic/errors.py; this
module is the one place that acts on it.  A *retryable* failure (unreachable,
timed out, busy) of a flow's BMC step is tried again up to ``retries`` times,
``interval`` seconds apart (settings ``bmc_retries``/``bmc_retry_interval``),
each retry a ``retry`` row in the node's history; a permanent one (credentials
refused, unsupported, a bad driver_info) fails the step at once.  When the
retries run out, the last error is raised with the count added to its message,
still retryable: the API answers it with 503.

Synchronous API calls (boot device, VIF hot plug) use ``NO_RETRY``: the client
gets its 503 at once and decides itself, instead of a request held for the
whole back-off (``request_error`` says how a VIF hot plug answers a failure).
A stopping conductor ends the retries (``Task.checkpoint``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from metalnic.baremetal.conductor import history
from metalnic.errors import DriverError, MetalnicError, Unavailable

if TYPE_CHECKING:
    from metalnic.baremetal.conductor.task import Task

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # tries after the first one
    interval: float = 2.0  # seconds between two tries


NO_RETRY = RetryPolicy(retries=0, interval=0.0)


def call(task: Task, what: str, step: Callable[[], T]) -> T:
    """``step()``, tried again on retryable driver errors as the task's policy allows."""
    policy = task.retry
    for attempt in range(policy.retries + 1):
        try:
            return step()
        except DriverError as exc:
            if not exc.retryable or policy.retries == 0:
                raise
            if attempt == policy.retries:
                raise type(exc)(
                    f"{exc.message} (gave up after {policy.retries} "
                    f"{'retry' if policy.retries == 1 else 'retries'})"
                ) from exc
            task.log(
                history.RETRY,
                f"{what}: {exc.message}; retry {attempt + 1} of {policy.retries} "
                f"in {policy.interval:g} s",
                severity="WARNING",
            )
        time.sleep(policy.interval)
        task.checkpoint(f"retrying {what}")
    raise AssertionError("unreachable")


def request_error(exc: DriverError, what: str) -> MetalnicError:
    """A failed synchronous step (a VIF hot plug) as the API answers it: 503 when
    retrying can help (a NIC agent or BMC not answering, a port not up in time); a
    permanent driver error (credentials refused, unsupported, bad driver_info)
    keeps its own status."""
    message = f"{what}: {exc.message}"
    if exc.retryable or type(exc) is DriverError:
        return Unavailable(message)
    return type(exc)(message)
