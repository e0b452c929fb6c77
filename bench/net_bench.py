"""Benchmark of a Neutron-compatible network API: metalnic, and OpenStack Neutron.

Workload (issue 12): create a network, N smart NIC ports on it
(``binding:vnic_type`` smart-nic, ``binding:host_id`` and a ``binding:profile``
with ``local_link_information`` naming a NIC host and its port, as the smart
NIC ports of the tests), list all ports, then C client threads GET one port.
With ``--neutron-url`` the same workload then runs against a Neutron server
(keystone-less: ``auth_strategy = noauth``; the admin role and a project travel
in the X-Roles / X-Project-Id headers that Neutron's noauth context reads) and
both are printed side by side.  ``--start-cmd`` / ``--neutron-start-cmd`` start
each server (spawn to first answer, RSS of its process tree after the workload).

    python bench/net_bench.py --url http://127.0.0.1:6391/network \\
        --start-cmd "metalnic serve --port 6391 --state-dir /tmp/nb --log-level warning" \\
        --neutron-url http://127.0.0.1:9696 --neutron-start-cmd /opt/neutron-bench/start.sh

With ``--subnet CIDR`` the network gets an IPv4 subnet of that range first, so
that each port create also allocates an address (IPAM, issue 13) and each
listed port shows one.

It measures and reports; it asserts nothing about speed.
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

PROJECT = "bench"  # named in bodies too: Neutron without keystone requires it
HEADERS = {
    "Content-Type": "application/json",
    # Read by Neutron's noauth context (oslo.context); metalnic's noauth caller is an admin.
    "X-Roles": "admin",
    "X-Project-Id": PROJECT,
    "X-User-Id": "bench",
}
ROWS = ("network_create", "port_create", "list_ports", "concurrent_get")


def port_body(network_id: str, i: int) -> dict[str, Any]:
    host = f"nic-{i}"
    return {
        "port": {
            "network_id": network_id,
            "project_id": PROJECT,
            "name": f"bench-{i}",
            "binding:vnic_type": "smart-nic",
            "binding:host_id": host,
            "binding:profile": {
                "local_link_information": [{"hostname": host, "port_id": "pf0hpf"}]
            },
        }
    }


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"url": url, "ports": args.ports}
    client = httpx.Client(base_url=url, headers=HEADERS, timeout=60)
    network_body = {"network": {"name": f"nb-{secrets.token_hex(3)}", "project_id": PROJECT}}
    elapsed, r = timed(client, "POST", "/v2.0/networks", json=network_body)
    results["network_create"] = summary([elapsed])
    network_id = r.json()["network"]["id"]
    if args.subnet:
        subnet = {"network_id": network_id, "ip_version": 4, "cidr": args.subnet}
        r = client.post("/v2.0/subnets", json={"subnet": {**subnet, "project_id": PROJECT}})
        r.raise_for_status()
        results["subnet"] = args.subnet

    port_times, port_ids = [], []
    for i in range(args.ports):
        elapsed, r = timed(client, "POST", "/v2.0/ports", json=port_body(network_id, i))
        port_times.append(elapsed)
        port_ids.append(r.json()["port"]["id"])
    results["port_create"] = summary(port_times)

    list_times = []
    for _ in range(args.list_repeats):
        elapsed, r = timed(client, "GET", "/v2.0/ports", params={"network_id": network_id})
        list_times.append(elapsed)
    listed = r.json()["ports"]
    results["list_ports"] = {
        **summary(list_times),
        "ports_listed": len(listed),
        "fixed_ips_listed": sum(len(p["fixed_ips"]) for p in listed),
    }

    path = f"/v2.0/ports/{port_ids[len(port_ids) // 2]}"
    results["concurrent_get"] = concurrent_get(
        url, path, args.concurrency, args.get_seconds, headers=HEADERS
    )
    if args.cleanup:
        for port in port_ids:
            client.delete(f"/v2.0/ports/{port}")
        client.delete(f"/v2.0/networks/{network_id}")
    client.close()
    return results


def measure(url: str, start_cmd: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """The workload against one server, started by ``start_cmd`` if given."""
    if not start_cmd:
        return run(url, args)
    proc, startup = start_server(start_cmd, url, args.start_timeout)
    try:
        results = run(url, args)
        results["startup_s"] = round(startup, 3)
        results["rss_mib"] = round(tree_rss_kib(proc.pid) / 1024, 1)
        return results
    finally:
        stop_server(proc)


def report(name: str, results: dict[str, Any]) -> None:
    print(f"{name}: network API benchmark against {results['url']} with {results['ports']} ports")
    print_rows(results, ROWS)
    listed = results["list_ports"]
    print(
        f"ports listed per list: {listed['ports_listed']} ({listed['fixed_ips_listed']} fixed IPs)"
    )
    if "subnet" in results:
        print(f"each port allocated an address from the subnet {results['subnet']}")
    cg = results["concurrent_get"]
    print(f"concurrent GET: {cg['clients']} clients, {cg['seconds']} s, errors {cg['errors']}")
    if "startup_s" in results:
        print(f"start-up to first answer: {results['startup_s']} s; RSS {results['rss_mib']} MiB")


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """metalnic faster by: Neutron's p50 over metalnic's (throughput: ours over theirs)."""
    print("metalnic faster than Neutron by (p50 ratio; concurrent GET: req/s ratio)")
    for key in ROWS[1:3]:
        print(f"  {key:<20}{theirs[key]['p50_ms'] / max(ours[key]['p50_ms'], 1e-9):>8.1f}x")
    ratio = ours["concurrent_get"]["per_s"] / max(theirs["concurrent_get"]["per_s"], 1e-9)
    print(f"  {'concurrent_get':<20}{ratio:>8.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:6391/network", help="metalnic API root")
    p.add_argument("--start-cmd", help="start metalnic with this command and measure it")
    p.add_argument("--neutron-url", help="also run the workload against this Neutron")
    p.add_argument("--neutron-start-cmd", help="start Neutron with this command")
    p.add_argument("--ports", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--get-seconds", type=float, default=10.0)
    p.add_argument("--list-repeats", type=int, default=20)
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--cleanup", action="store_true", help="delete the ports afterwards")
    p.add_argument(
        "--subnet", metavar="CIDR", help="give the network an IPv4 subnet (creates allocate)"
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()

    results = {"metalnic": measure(args.url, args.start_cmd, args)}
    report("metalnic", results["metalnic"])
    if args.neutron_url:
        results["neutron"] = measure(args.neutron_url, args.neutron_start_cmd, args)
        report("neutron", results["neutron"])
        compare(results["metalnic"], results["neutron"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
