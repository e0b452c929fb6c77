"""The feed's one wait rule, for threads and asyncio tasks alike.

A change committed between a waiter's check and its sleep must still wake it
(the waiter subscribes before it checks): a lost wake-up would leave a
conductor thread or an agent's long poll asleep until the slow re-check.
Here every re-check is 60 s away, so a waiter that returns within the join
timeout was woken by the notification, not by its timer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from metalnic.network.feed import Notifier

SLOW = 60.0  # timeout and re-check: never reached by a waiter that is woken


def _changes_during_first_check(notifier: Notifier) -> tuple[Callable[[], bool], list[int]]:
    """A check that sees no change, while the change lands (and is notified) right
    after its read: the worst moment for a waiter that subscribes too late."""
    state = {"changed": False}
    calls: list[int] = []

    def check() -> bool:
        seen = state["changed"]
        calls.append(1)
        if not seen and len(calls) == 1:
            state["changed"] = True
            notifier.notify()
        return seen

    return check, calls


def test_thread_waiter_is_woken_by_a_change_during_its_check() -> None:
    notifier = Notifier()
    check, calls = _changes_during_first_check(notifier)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(notifier.wait_for(check, SLOW, SLOW)))
    waiter.start()
    waiter.join(10)
    assert not waiter.is_alive(), "the waiter missed the notification"
    assert result == [True] and len(calls) == 2


def test_async_waiter_is_woken_by_a_change_during_its_check() -> None:
    notifier = Notifier()
    check, calls = _changes_during_first_check(notifier)

    async def scenario() -> bool:
        return await asyncio.wait_for(notifier.wait_for_async(check, SLOW, SLOW), 10)

    assert asyncio.run(scenario()) is True
    assert len(calls) == 2


@pytest.mark.parametrize("flavour", ["thread", "async"])
def test_waiter_gives_up_at_its_timeout_without_a_change(flavour: str) -> None:
    notifier = Notifier()
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        return False

    if flavour == "thread":
        done = notifier.wait_for(never, 0.2, recheck=0.05)
    else:
        done = asyncio.run(notifier.wait_for_async(never, 0.2, recheck=0.05))
    assert done is False
    assert len(calls) >= 2  # re-checked on its timer meanwhile


def test_one_notification_wakes_thread_and_async_waiters() -> None:
    notifier = Notifier()
    flag = threading.Event()
    thread_result: list[bool] = []
    waiter = threading.Thread(
        target=lambda: thread_result.append(notifier.wait_for(flag.is_set, SLOW, SLOW))
    )
    waiter.start()

    async def scenario() -> bool:
        task = asyncio.ensure_future(notifier.wait_for_async(flag.is_set, SLOW, SLOW))
        await asyncio.sleep(0.2)  # both waiters are asleep now
        flag.set()
        notifier.notify()
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(scenario()) is True
    waiter.join(10)
    assert thread_result == [True]
