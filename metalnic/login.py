"""Failed logins must not starve good ones: a bounded bcrypt pool and back-off.

bcrypt takes a quarter of a second on purpose.  Run in Starlette's shared
threadpool — which also runs every sync route — forty wrong passwords at once
held every worker and a logged-in request waited 17 s.  So:

* ``HashingPool``: password checks run in their own small executor (one
  worker per two cores, at most four), never on the event loop and never in
  the routes' threadpool; at most ``max_pending`` checks wait for it, more are
  refused at once with 503 (the server is busy; nothing is hashed);
* ``Backoff``: after ``free`` failed logins for a user name (5), or from a
  client address (20: it may be a NAT or a proxy), each further failure shuts
  that key out for a doubling time (1 s, 2 s, … up to ``ceiling``, 60 s);
  while shut out, a login that needs bcrypt is refused
  at once with 401 and no hashing.  A password bcrypt already accepted (the
  authenticator's cache) is never refused: a flood against a user does not
  log out its working clients.  Success clears the user's count (not the
  source's: one valid account must not reset a flood from that address).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from metalnic.errors import Unavailable

T = TypeVar("T")


class HashingPool:
    """A bounded executor for password checks, used from the event loop."""

    def __init__(self, workers: int | None = None, max_pending: int = 16) -> None:
        cores = os.cpu_count() or 2
        self.workers = workers or min(4, max(1, cores // 2))
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="metalnic-bcrypt")
        self._pending = 0  # touched only on the event loop thread

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self.max_pending:
            raise Unavailable("The server is busy checking passwords; retry in a moment.")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
        finally:
            self._pending -= 1


_POOL: HashingPool | None = None


def hashing_pool() -> HashingPool:
    """The process's pool (made on first use, inside the server's event loop)."""
    global _POOL
    if _POOL is None:
        _POOL = HashingPool()
    return _POOL


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0  # monotonic time the key is shut out until
    last: float = 0.0


class Backoff:
    """Failed-login counts per key (a user name, or a client address), thread-safe
    and bounded in memory (the least recently failed keys are forgotten first)."""

    def __init__(
        self,
        free: int = 5,
        first: float = 1.0,
        ceiling: float = 60.0,
        forget_after: float = 900.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.first, self.ceiling = free, first, ceiling
        self.forget_after, self.max_keys, self.clock = forget_after, max_keys, clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            f = self._keys.get(key)
        return max(0.0, f.until - self.clock()) if f is not None else 0.0

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            f = self._keys.pop(key, None) or _Failures()
            if now - f.last > self.forget_after:
                f = _Failures()
            f.count, f.last = f.count + 1, now
            if f.count > self.free:
                exponent = min(f.count - self.free - 1, 32)
                f.until = now + min(self.ceiling, self.first * 2**exponent)
            self._keys[key] = f  # most recent last
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)
