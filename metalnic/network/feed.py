"""Change notification between the network service, its agents and the bare-metal side.

Every change an agent must see bumps its NIC host's revision (in the same
transaction as the change); after the commit, ``notify`` wakes whoever waits:
agents long-polling the feed (asyncio) and conductor threads waiting for a
port to become ACTIVE or to be gone from its NIC (threading).  Waiters also
re-check the database on a slow timer, so a notification from another server
process (PostgreSQL scale-out) is never required for correctness.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from metalnic.network.models import FeedRevision


def bump(session: Session, host: str) -> int:
    row = session.get(FeedRevision, host)
    if row is None:
        row = FeedRevision(host=host, revision=0, applied=0)
        session.add(row)
    row.revision += 1
    return row.revision


def revisions(session: Session, host: str) -> tuple[int, int]:
    row = session.get(FeedRevision, host)
    return (row.revision, row.applied) if row else (0, 0)


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._generation = 0
        self._async: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._async)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    async def wait_async(self, timeout: float) -> None:
        """Return after the next notification, or after ``timeout`` seconds."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._async.add(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._async.discard(entry)

    def wait_for(self, check: Callable[[], bool], timeout: float, recheck: float = 1.0) -> bool:
        """Block until ``check()`` is true (re-evaluated on every notification)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = self._generation
            if check():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                if self._generation == seen:  # nothing happened since the check
                    self._cond.wait(min(remaining, recheck))
