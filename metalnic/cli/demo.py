"""``metalnic demo``: the server on SQLite with a sample smart NIC node deployed.

It starts ``metalnic serve`` as a child process, enrolls a fake-hardware node
with a smart NIC port through the API, takes it through manage → provide →
deploy, prints the node's event log (every network step inside a BIOS window,
every boot behind a boot gate) and keeps the server running until
interrupted.  The node uses the ``fake`` network interface until the network
service exists; the lab issue grows this into the full virtual data centre.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalnic.cli.output import emit

if TYPE_CHECKING:
    from metalnic.cli.client import BaremetalClient

SAMPLE_NODE = "sample-node-0"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the server with a sample smart NIC node")
    p.add_argument("--port", type=int, default=6385)
    p.add_argument("--state-dir", type=Path, default=Path("./metalnic-demo"))
    p.add_argument("--exit", action="store_true", help="stop after enrolling instead of serving")
    p.set_defaults(func=run, client=False)


def wait_ready(client: BaremetalClient, proc: subprocess.Popen[bytes], timeout: float) -> None:
    from metalnic.cli.client import ApiError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the server exited with status {proc.returncode}")
        try:
            client.request("GET", "/")
            return
        except ApiError:
            time.sleep(0.05)
    raise SystemExit("error: the server did not answer in time")


def enroll_sample(client: BaremetalClient) -> None:
    from metalnic.cli.client import ApiError

    try:
        client.request("GET", f"/v1/nodes/{SAMPLE_NODE}")
        return
    except ApiError as exc:
        if exc.status != 404:
            raise
    node = client.request(
        "POST",
        "/v1/nodes",
        json={
            "name": SAMPLE_NODE,
            "driver": "fake-hardware",
            "network_interface": "fake",
            "driver_info": {"deploy_kernel": "http://images/ipa.kernel"},
        },
    )
    client.request(
        "POST",
        "/v1/ports",
        json={
            "node_uuid": node["uuid"],
            "address": "52:54:00:12:34:56",
            "is_smartnic": True,
            "local_link_connection": {"hostname": "nic-0", "port_id": "pf0hpf"},
        },
    )


def deploy_sample(client: BaremetalClient) -> None:
    """manage → provide → deploy, waiting for each step (skipped when already active)."""
    for verb, wanted in (("manage", "manageable"), ("provide", "available"), ("active", "active")):
        node = client.request("GET", f"/v1/nodes/{SAMPLE_NODE}")
        if node["provision_state"] == "active":
            return
        if node["provision_state"] != wanted:
            print(f"  {verb} ...", flush=True)
            client.request(
                "PUT", f"/v1/nodes/{SAMPLE_NODE}/states/provision", json={"target": verb}
            )
            _wait(client, wanted)


def _wait(client: BaremetalClient, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = client.request("GET", f"/v1/nodes/{SAMPLE_NODE}")
        if node["provision_state"] == state and not node["reservation"]:
            return
        if node["provision_state"].endswith("failed"):
            raise SystemExit(f"error: {node['last_error']}")
        time.sleep(0.1)
    raise SystemExit(f"error: {SAMPLE_NODE} did not reach {state}")


def run(a: argparse.Namespace) -> None:
    from metalnic.cli.client import BaremetalClient

    url = f"http://127.0.0.1:{a.port}"
    cmd = [
        sys.executable,
        "-m",
        "metalnic.cli.main",
        "serve",
        "--port",
        str(a.port),
        "--state-dir",
        str(a.state_dir),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd)
    client = BaremetalClient(url)
    try:
        wait_ready(client, proc, timeout=15)
        enroll_sample(client)
        print(f"Deploying {SAMPLE_NODE} (fake hardware, smart NIC port, fake network):")
        deploy_sample(client)
        events = client.request("GET", f"/v1/nodes/{SAMPLE_NODE}/history")["history"]
        emit(events, "table", ["created_at", "event_type", "event"])
        emit(
            client.list_all("/v1/nodes", "nodes", {"detail": "true"}),
            "table",
            ["uuid", "name", "driver", "provision_state", "network_interface"],
        )
        emit(
            client.list_all("/v1/ports", "ports", {"detail": "true"}),
            "table",
            ["uuid", "address", "is_smartnic", "local_link_connection"],
        )
        if a.exit:
            print(f"\nDeployed {SAMPLE_NODE}; the data stays in {a.state_dir}. Server stopped.")
            return
        print(f"\nmetalnic is serving the bare-metal API at {url} (SQLite in {a.state_dir}).")
        print(f"Try:  metalnic --url {url} node show {SAMPLE_NODE}")
        print(f"      openstack --os-auth-type none --os-endpoint {url} baremetal port list --long")
        print("Press Ctrl-C to stop.")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
