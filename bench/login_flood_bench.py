"""Benchmark: a logged-in request's latency without and with a flood of wrong passwords.

It starts ``metalnic serve`` with http_basic (on loopback, in a temporary
directory), logs a user in once (its password is then cached), and measures
``GET /v1/nodes`` for that user: first alone, then while ``--flood`` clients
keep sending wrong passwords (each a bcrypt check).  By default the flood uses
a new user name per request and the per-address back-off is off, so every
flood request really costs bcrypt — the worst case for starvation; with
``--backoff`` the server's default back-off stays on.

    .venv/bin/python bench/login_flood_bench.py --samples 30 --flood 40

To measure another version of the server, put its source first on PYTHONPATH
(e.g. ``git archive <commit> metalnic | tar -x -C /tmp/old`` then
``PYTHONPATH=/tmp/old``).  It prints numbers; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import H153, Server, add_user, start_server  # noqa: E402

GOOD = ("bench-admin", "bench-admin-pw")


def latencies(server: Server, samples: int) -> list[float]:
    out = []
    with httpx.Client(base_url=server.url, auth=GOOD, headers=H153, timeout=300) as c:
        for _ in range(samples):
            began = time.perf_counter()
            c.get("/v1/nodes").raise_for_status()
            out.append(time.perf_counter() - began)
            time.sleep(0.05)
    return out


def flood(url: str, clients: int, stop: Event, counts: dict[int, int]) -> None:
    """In its own process (the bench's own threads must not delay the measured client):
    ``clients`` threads, each sending a wrong password as soon as its last one was answered."""

    def one(k: int) -> None:
        with httpx.Client(base_url=url, headers=H153, timeout=300) as c:
            i = 0
            while not stop.is_set():
                i += 1
                r = c.get("/v1/nodes", auth=(f"guess-{k}-{i}", "wrong"))
                counts[r.status_code] = counts.get(r.status_code, 0) + 1

    threads = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def show(label: str, xs: list[float]) -> None:
    ms = sorted(x * 1000 for x in xs)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"{label:<28} median {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms"
        f"   max {ms[-1]:8.1f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--flood", type=int, default=40, help="parallel wrong-password clients")
    p.add_argument("--backoff", action="store_true", help="keep the per-address back-off on")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="metalnic-login-bench-"))
    users = tmp / "users.toml"
    add_user(users, *GOOD, "admin", "ops")
    env = {"METALNIC_LOG_LEVEL": "warning"}
    if not a.backoff:
        env["METALNIC_LOGIN_SOURCE_FAILURES"] = "1000000000"
    args = ("--auth", "http_basic", "--users-file", str(users))
    server = start_server(tmp / "state", *args, env=env)
    try:
        latencies(server, 3)  # log in (bcrypt once) and warm up
        show("logged-in, no flood", latencies(server, a.samples))
        with multiprocessing.Manager() as manager:
            stop, counts = manager.Event(), manager.dict()
            proc = multiprocessing.Process(target=flood, args=(server.url, a.flood, stop, counts))
            proc.start()
            time.sleep(1.0)
            show(f"logged-in, flood of {a.flood}", latencies(server, a.samples))
            stop.set()
            proc.join(60)
            print("flood answers by status:", dict(sorted(counts.items())))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
