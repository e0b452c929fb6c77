"""Benchmark of a bare-metal API: metalnic or OpenStack Ironic, unchanged.

Workload (issue 2): create N nodes, one smart NIC port each, list the ports
with detail, then C concurrent clients GET one port.  With ``--start-cmd`` it
also starts the server itself and reports start-up time (spawn to first
answered request) and the resident memory of its process tree.

    python bench/api_bench.py --url http://127.0.0.1:6385 --nodes 500
    python bench/api_bench.py --start-cmd "metalnic serve --port 6390 --state-dir /tmp/b" \\
        --url http://127.0.0.1:6390

It prints a table and, with ``--json``, writes the numbers to a file.  It is
a benchmark: it measures and reports, it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    concurrent_get,
    print_rows,
    start_server,
    stop_server,
    summary,
    timed,
    tree_rss_kib,
)

HEADERS = {"X-OpenStack-Ironic-API-Version": "1.53", "Content-Type": "application/json"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"url": args.url, "nodes": args.nodes}
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    client = httpx.Client(base_url=args.url, headers=HEADERS, auth=auth, timeout=60)  # type: ignore[arg-type]
    tag = secrets.token_hex(3)

    node_times, node_ids = [], []
    for i in range(args.nodes):
        body = {"driver": "fake-hardware", "name": f"bench-{tag}-{i}"}
        elapsed, r = timed(client, "POST", "/v1/nodes", json=body)
        node_times.append(elapsed)
        node_ids.append(r.json()["uuid"])
    results["node_create"] = summary(node_times)

    port_times, port_ids = [], []
    for i, node in enumerate(node_ids):
        body = {
            "node_uuid": node,
            "address": f"02:{tag[:2]}:{tag[2:4]}:{tag[4:6]}:{i // 256:02x}:{i % 256:02x}",
            "is_smartnic": True,
            "local_link_connection": {"hostname": f"nic-{i}", "port_id": "pf0hpf"},
        }
        elapsed, r = timed(client, "POST", "/v1/ports", json=body)
        port_times.append(elapsed)
        port_ids.append(r.json()["uuid"])
    results["port_create"] = summary(port_times)

    list_times = []
    for _ in range(args.list_repeats):
        elapsed, r = timed(client, "GET", "/v1/ports", params={"detail": "True", "limit": 1000})
        list_times.append(elapsed)
    listed = len(r.json()["ports"])
    results["list_ports_detail"] = {**summary(list_times), "ports_listed": listed}

    results["concurrent_get"] = concurrent_get(
        args.url,
        f"/v1/ports/{port_ids[len(port_ids) // 2]}",
        args.concurrency,
        args.get_seconds,
        headers=HEADERS,
        auth=auth,
    )

    if args.cleanup:
        for node in node_ids:
            client.delete(f"/v1/nodes/{node}")
    client.close()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:6385")
    p.add_argument("--auth", help="user:password for HTTP basic auth")
    p.add_argument("--nodes", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--get-seconds", type=float, default=10.0)
    p.add_argument("--list-repeats", type=int, default=20)
    p.add_argument("--start-cmd", help="start the server with this command and measure it")
    p.add_argument("--start-timeout", type=float, default=120.0)
    p.add_argument("--cleanup", action="store_true", help="delete the nodes afterwards")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()

    proc = None
    startup = None
    if args.start_cmd:
        proc, startup = start_server(args.start_cmd, args.url, args.start_timeout)
    try:
        results = run(args)
        if proc is not None:
            results["startup_s"] = round(startup or 0.0, 3)
            results["rss_mib"] = round(tree_rss_kib(proc.pid) / 1024, 1)
    finally:
        if proc is not None:
            stop_server(proc)
    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any]) -> None:
    print(f"API benchmark against {results['url']} with {results['nodes']} nodes")
    print_rows(results, ("node_create", "port_create", "list_ports_detail", "concurrent_get"))
    print(f"ports listed per list: {results['list_ports_detail']['ports_listed']}")
    cg = results["concurrent_get"]
    print(f"concurrent GET: {cg['clients']} clients, {cg['seconds']} s, errors {cg['errors']}")
    if "startup_s" in results:
        print(f"start-up to first answer: {results['startup_s']} s; RSS {results['rss_mib']} MiB")


if __name__ == "__main__":
    main()
