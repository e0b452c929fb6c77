"""``metalnic demo``: the server on SQLite with a sample smart NIC node enrolled.

It starts ``metalnic serve`` as a child process, enrolls a node with a smart
NIC port through the API, prints what is there and how to explore it, and
keeps the server running until interrupted.  (The lab issue grows this into
the full virtual data centre.)
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
            "network_interface": "smartnic",
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
            print(f"\nEnrolled {SAMPLE_NODE}; the data stays in {a.state_dir}. Server stopped.")
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
