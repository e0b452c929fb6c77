"""What the API benchmarks share: timing, percentiles, starting a server, concurrent GETs.

``api_bench.py`` (bare-metal, against metalnic or Ironic) and ``net_bench.py``
(network, against metalnic or Neutron) run different workloads with the same
measuring: one client timing each request, a server optionally started by a
command (spawn to first answer, resident memory of its process tree), and C
threads each with its own connection GETting one resource for a fixed time.
Benchmarks measure and report; they assert nothing about speed.
"""

from __future__ import annotations

import os
import shlex
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_s: list[float]) -> dict[str, float]:
    """Count, p50, p99, mean (ms) and requests per second of one client's timings."""
    ms = [s * 1000 for s in samples_s]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "per_s": round(len(ms) / sum(samples_s), 1) if sum(samples_s) else 0.0,
    }


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def start_server(
    cmd: str, url: str, timeout: float, probe: str = "/"
) -> tuple[subprocess.Popen[bytes], float]:
    """Run ``cmd`` in its own session; return it and the seconds until ``probe`` answers 200."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        shlex.split(cmd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    with httpx.Client(timeout=1) as c:
        while time.perf_counter() - began < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode} before answering")
            try:
                if c.get(url + probe).status_code == 200:
                    return proc, time.perf_counter() - began
            except httpx.HTTPError:
                time.sleep(0.005)
    stop_server(proc)
    raise SystemExit(f"server did not answer within {timeout}s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group (it was started in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def timed(client: httpx.Client, method: str, path: str, **kw: Any) -> tuple[float, httpx.Response]:
    """One request and its duration; any error status ends the benchmark."""
    t0 = time.perf_counter()
    r = client.request(method, path, **kw)
    elapsed = time.perf_counter() - t0
    if r.status_code >= 400:
        raise SystemExit(f"{method} {path} -> {r.status_code}: {r.text[:300]}")
    return elapsed, r


def concurrent_get(
    url: str, path: str, clients: int, seconds: float, **client_kw: Any
) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, GET ``path`` for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = [0.0]  # set when every client has connected

    def set_clock() -> None:
        stop_at[0] = time.perf_counter() + seconds

    barrier = threading.Barrier(clients, action=set_clock)

    def worker(idx: int) -> None:
        with httpx.Client(base_url=url, timeout=30, **client_kw) as c:
            c.get(path)  # connect before the clock starts
            barrier.wait()
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                r = c.get(path)
                latencies[idx].append(time.perf_counter() - t0)
                errors[idx] += r.status_code != 200

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    flat = [x for per in latencies for x in per]
    out: dict[str, Any] = dict(summary(flat))
    out["per_s"] = round(len(flat) / wall, 1)
    out.update(clients=clients, seconds=round(wall, 2), errors=sum(errors))
    return out


def print_rows(results: dict[str, Any], keys: tuple[str, ...]) -> None:
    """The timing table: one row per measured operation."""
    print(f"{'operation':<22}{'count':>7}{'p50 ms':>10}{'p99 ms':>10}{'per s':>10}")
    for key in keys:
        r = results[key]
        print(f"{key:<22}{r['count']:>7}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['per_s']:>10}")
