"""A fake smart NIC agent speaking metalnic's real HTTP agent contract.

It heartbeats, long-polls the desired state of its NIC host, and reports every
desired port ACTIVE (after ``--delay`` seconds) and the revision it "programmed"
— without any OVS — and answers boot-gate verifications from memory.
``--error REASON`` reports ports in ERROR instead;
``--mode remote`` registers it as a remote-mode agent (it binds the ports of
remote NICs, those with an ``ovsdb_cert``);
``--silent`` never reports (an agent that is alive but stuck); ``--delay-file F``
reads the delay from F before each report (a test slows it down at a chosen
point).  It appends ``seen <port> <monotonic time>`` lines to ``--log`` when it
first sees a port.
It outlives its server: while the server is down (a crash test restarts it)
it retries every 0.2 s, as a real agent would.

    python -m tests.fake_agent --url http://127.0.0.1:6385 --host nic-a
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from pathlib import Path

import httpx


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--delay-file", type=Path)
    p.add_argument("--error")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--log", type=Path)
    p.add_argument("--auth", help="user:password")
    p.add_argument("--mode", choices=["local", "remote"], default="local")
    a = p.parse_args()
    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    client = httpx.Client(base_url=a.url.rstrip("/") + "/network/v2.0", timeout=30, auth=auth)  # type: ignore[arg-type]

    def heartbeat() -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):  # the server is down: try again
                client.post(
                    "/metalnic/agents/heartbeat",
                    json={
                        "host": a.host,
                        "configurations": {
                            "mode": a.mode,
                            "smartnic": True,
                            "nic_hosts": [a.host],
                        },
                    },
                )
            time.sleep(0.5)

    threading.Thread(target=heartbeat, daemon=True).start()
    seen: set[str] = set()
    revision = -1
    while True:
        try:
            revision = serve_once(client, a, seen, revision)
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.2)  # the server is down or restarting: start over
            revision = -1


def serve_once(client: httpx.Client, a: argparse.Namespace, seen: set[str], revision: int) -> int:
    """One long poll of the desired state and its report; the revision now known."""
    params = {"since": revision, "wait": 10} if revision >= 0 else {}
    state = client.get(f"/metalnic/hosts/{a.host}/desired", params=params).json()
    revision = state["revision"]
    for port in state["ports"]:
        if port["id"] not in seen:
            seen.add(port["id"])
            if a.log:
                with a.log.open("a") as fh:
                    fh.write(f"seen {port['id']} {time.monotonic()}\n")
    if a.silent:
        return revision
    delay = a.delay
    if a.delay_file is not None and a.delay_file.exists():
        delay = float(a.delay_file.read_text() or 0)
    time.sleep(delay)
    reports = {
        p["id"]: ({"status": "ERROR", "reason": a.error} if a.error else {"status": "ACTIVE"})
        for p in state["ports"]
    }
    # Boot-gate questions: a fake has no OVS to read back, it answers from what it saw.
    desired = {p["id"] for p in state["ports"]}
    verified = {
        v["id"]: {p: {"plugged": p in desired and not a.error} for p in v["ports"]}
        for v in state.get("verify", [])
    }
    client.post(
        f"/metalnic/hosts/{a.host}/report",
        json={"ports": reports, "applied_revision": revision, "verified": verified},
    ).raise_for_status()
    return revision


if __name__ == "__main__":
    main()
