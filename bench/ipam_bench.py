"""A/B benchmark of IPAM's cost inside one metalnic server (issue 13).

Two networks on one server: ``plain`` without a subnet, ``subnet`` with an
IPv4 subnet (each port create there also claims an address).  N smart NIC
port creates alternate between them, then both lists alternate R times: both
sides see the same process, database and machine load, so on a shared machine
their ratio means more than two separate runs of ``net_bench.py``.

    python bench/ipam_bench.py --url http://127.0.0.1:6392/network \\
        --start-cmd ".venv/bin/metalnic serve --port 6392 --state-dir /tmp/ib --log-level warning"

It measures and reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
from benchlib import print_rows, start_server, stop_server, summary, timed
from net_bench import HEADERS, PROJECT, port_body

SIDES = ("plain", "subnet")


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    client = httpx.Client(base_url=url, headers=HEADERS, timeout=60)
    nets: dict[str, str] = {}
    for side in SIDES:
        r = client.post("/v2.0/networks", json={"network": {"name": side, "project_id": PROJECT}})
        r.raise_for_status()
        nets[side] = r.json()["network"]["id"]
    body = {"network_id": nets["subnet"], "ip_version": 4, "cidr": args.cidr}
    client.post(
        "/v2.0/subnets", json={"subnet": {**body, "project_id": PROJECT}}
    ).raise_for_status()
    creates: dict[str, list[float]] = {side: [] for side in SIDES}
    for i in range(args.ports):
        for side in SIDES:
            elapsed, _ = timed(client, "POST", "/v2.0/ports", json=port_body(nets[side], i))
            creates[side].append(elapsed)
    lists: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(args.list_repeats):
        for side in SIDES:
            query = {"network_id": nets[side]}
            elapsed, _ = timed(client, "GET", "/v2.0/ports", params=query)
            lists[side].append(elapsed)
    client.close()
    results: dict[str, Any] = {}
    for side in SIDES:
        results[f"create_{side}"] = summary(creates[side])
        results[f"list_{side}"] = summary(lists[side])
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:6392/network", help="metalnic API root")
    p.add_argument("--start-cmd", help="start metalnic with this command")
    p.add_argument("--ports", type=int, default=500, help="ports per network")
    p.add_argument("--list-repeats", type=int, default=40)
    p.add_argument("--cidr", default="10.128.0.0/16")
    p.add_argument("--start-timeout", type=float, default=180.0)
    args = p.parse_args()
    proc = start_server(args.start_cmd, args.url, args.start_timeout)[0] if args.start_cmd else None
    try:
        results = run(args.url, args)
    finally:
        if proc is not None:
            stop_server(proc)
    print(f"IPAM A/B, one server, {args.ports} ports per network ({args.cidr} on 'subnet')")
    print_rows(results, tuple(f"{op}_{side}" for op in ("create", "list") for side in SIDES))
    for op in ("create", "list"):
        ratio = results[f"{op}_subnet"]["p50_ms"] / max(results[f"{op}_plain"]["p50_ms"], 1e-9)
        print(f"{op}: with an address / without, p50: {ratio:.2f}")


if __name__ == "__main__":
    main()
