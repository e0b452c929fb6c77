"""``metalnic demo``: the whole product on this machine (root).

It brings up the lab (``metalnic lab``: 2 local-mode and 2 remote-mode smart
NICs, a fabric, 4 hosts with Redfish and IPMI BMCs), starts the server (SQLite)
and the smart NIC agents, enrolls the 4 hosts as nodes, cleans them (the
ramdisk boots through each NIC on the provisioning network), and lets two
tenants each deploy two nodes onto their own network and subnet (the same
CIDR for both) — showing every step of every node and host as it happens,
every DHCP lease included (each host takes every address by DHCP, from the
lab's ``metalnic dhcp-agent``).  At the end: tables of nodes, bare-metal ports,
network ports with their fixed IPs, the hosts' DHCP leases against those
fixed IPs, and a connectivity matrix measured on the machines themselves.

``--hosts vm`` (the default): the hosts are QEMU machines (``lab.vm``) that
really boot — firmware (SeaBIOS, the NIC's iPXE asking DHCP), the ramdisk over
HTTP (leased, looked up, heartbeat, disk erased or image written), the instance
from disk (leased) — each stage printed as its serial console shows it
(``lab.stages``; ``metalnic lab console HOST --dir <state>/lab`` prints the
console), and the matrix is ping and TCP 80 from each booted instance
(``lab.probe``).  ``--hosts ns``: network namespaces with simulated boots (fast).

Without ``--keep`` everything is removed again at the end; with it, it stays
up for you to explore (``metalnic demo --down`` removes it later).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from metalnic.lab.datacentre import LabSpec
    from metalnic.lab.description import LabDescription

from metalnic.cli.output import emit

LAB_NAME = "demo"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="the lab, the server and agents, 4 nodes for 2 tenants")
    p.add_argument("--port", type=int, default=6385, help="the API's port (default 6385)")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path("./metalnic-demo"),
        help="server database, credentials, logs, the lab (default ./metalnic-demo)",
    )
    p.add_argument(
        "--provisioning-subnet", default="10.99.0.0/24", help="the lab's provisioning subnet"
    )
    p.add_argument(
        "--hosts",
        choices=("vm", "ns"),
        default="vm",
        help="QEMU machines that really boot (default; needs qemu-system-x86) "
        "or network namespaces (ns: fast, simulated boots)",
    )
    p.add_argument("--keep", action="store_true", help="leave everything running at the end")
    p.add_argument("--down", action="store_true", help="remove a demo left up by --keep")
    p.set_defaults(func=run, client=False)


def lab_spec(state: Path, subnet: str, port: int, hosts: Literal["netns", "vm"]) -> LabSpec:
    """The demo's lab for a state directory: 2 local-mode and 2 remote-mode NICs, one
    host each.  Its names derive from the directory: demos in two directories (given
    two subnets and ports) do not touch each other."""
    from metalnic.lab.datacentre import LabSpec

    name = f"{LAB_NAME}-{hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:6]}"
    return LabSpec(name, 2, 2, provisioning_subnet=subnet, api_port=port, hosts=hosts)


def run(a: argparse.Namespace) -> None:
    from metalnic.lab import datacentre
    from metalnic.lab.netns import LabError
    from metalnic.lab.scenario import ScenarioError, Stack

    if os.geteuid() != 0:
        raise SystemExit("error: the demo needs root (network namespaces, Open vSwitch)")
    state = a.state_dir.resolve()
    spec = lab_spec(state, a.provisioning_subnet, a.port, "vm" if a.hosts == "vm" else "netns")
    lab_dir = state / "lab"
    if a.down:
        _down(state, spec.prefix, lab_dir)
        print(f"demo in {state} is down")
        return
    ok = False
    took = _Phases()
    try:
        what = "QEMU machines" if spec.hosts == "vm" else "namespace hosts"
        print(f"Bringing up the lab (smart NICs, fabric, {what}, BMCs) ...", flush=True)
        lab = datacentre.up(spec, lab_dir)
        took.done("lab up")
        stack = Stack(lab, state, say=lambda line: print(line, flush=True))
        stack.start()
        hosts = [h["name"] for h in lab["hosts"]]
        stack.enroll()
        took.done("server, agents, enroll")
        print("\nCleaning every node (manage → provide; the ramdisk boots through its NIC):")
        stack.make_available(hosts)
        took.done("cleaning")
        print("\nEach tenant deploys its two nodes onto its own network:")
        stack.deploy(hosts)
        took.done("deploys")
        _report(stack, hosts)
        took.done("report and matrix")
        print(f"\nTime: {took}")
        ok = True
    except (LabError, ScenarioError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        print(f"(logs: {state}/*.log, {lab_dir}/hosts.log, {lab_dir}/hosts/*/)", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        if a.keep:
            _explain(state, lab_dir)
        else:
            _down(state, spec.prefix, lab_dir)
            print("\nEverything the demo started is stopped and removed (--keep leaves it up).")
    if not ok:
        sys.exit(1)


class _Phases:
    """Wall time per phase of the run (where a demo's minutes go)."""

    def __init__(self) -> None:
        self.began = self.last = time.monotonic()
        self.phases: list[str] = []

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append(f"{phase} {now - self.last:.0f} s")
        self.last = now

    def __str__(self) -> str:
        return f"{', '.join(self.phases)}; total {time.monotonic() - self.began:.0f} s"


def _report(stack: Any, hosts: list[str]) -> None:
    with stack.client() as c:
        print("\nNodes:")
        emit(
            c.get("/v1/nodes", params={"detail": "true"}).json()["nodes"],
            "table",
            ["name", "driver", "owner", "power_state", "provision_state", "last_error"],
        )
        print("\nBare-metal ports (smart NIC links):")
        ports = c.get("/v1/ports", params={"detail": "true"}).json()["ports"]
        emit(
            [
                {
                    "address": p["address"],
                    "nic": p["local_link_connection"]["hostname"],
                    "port_id": p["local_link_connection"]["port_id"],
                    "vif": p["internal_info"].get("tenant_vif_port_id"),
                }
                for p in ports
            ],
            "table",
            ["address", "nic", "port_id", "vif"],
        )
        print("\nNetworks and their ports:")
        nets = {n["id"]: n for n in c.get("/network/v2.0/networks").json()["networks"]}
        emit(
            [
                {
                    "network": nets[p["network_id"]]["name"],
                    "vlan": nets[p["network_id"]].get("provider:segmentation_id"),
                    "project": p["project_id"],
                    "mac": p["mac_address"],
                    "fixed_ips": ", ".join(ip["ip_address"] for ip in p["fixed_ips"]),
                    "nic": p["binding:host_id"],
                    "status": p["status"],
                }
                for p in c.get("/network/v2.0/ports").json()["ports"]
            ],
            "table",
            ["network", "vlan", "project", "mac", "fixed_ips", "nic", "status"],
        )
    _leases(stack, hosts)
    matrix = stack.matrix(hosts)
    how = "ping and TCP 80 from each booted instance" if stack.vm_hosts else "ping"
    print(f"\nConnectivity (row → column's tenant address, {how}; ✓ reached, · not):")
    print("        " + "".join(f"{h:>10}" for h in hosts))
    for src in hosts:
        cells = "".join(
            f"{'—' if src == d else ('✓' if matrix[(src, d)] else '·'):>10}" for d in hosts
        )
        print(f"{src:8}{cells}   ({stack.tenant_of(src)}, {stack.tenant_ip(src)})")
    wrong = [
        f"{s}→{d}"
        for (s, d), reached in matrix.items()
        if reached != (stack.tenant_of(s) == stack.tenant_of(d))
    ]
    if wrong:
        from metalnic.lab.scenario import ScenarioError

        raise ScenarioError(f"connectivity differs from the tenants' networks: {', '.join(wrong)}")
    print("Same tenant: reached; across tenants: nothing (same subnet, separate networks).")


def _leases(stack: Any, hosts: list[str]) -> None:
    """Each host's DHCP leases (its own view) against its tenant port's fixed IP."""
    from metalnic.lab.scenario import ScenarioError

    print("\nDHCP leases (as each host saw them; the tenant lease is its VIF's fixed IP):")
    rows, wrong = [], []
    for host in hosts:
        leases = stack.leases(host)
        tenant = [cidr.split("/")[0] for _, state, cidr in leases if state == "disk"]
        fixed = stack.tenant_ip(host)
        rows.append(
            {
                "host": host,
                "provisioning leases": ", ".join(
                    dict.fromkeys(c for _, state, c in leases if state == "pxe")
                ),
                "tenant lease": tenant[-1] if tenant else "none",
                "VIF fixed IP": fixed,
                "equal": "✓" if tenant and tenant[-1] == fixed else "✗",
            }
        )
        if not tenant or tenant[-1] != fixed:
            wrong.append(host)
    emit(rows, "table", ["host", "provisioning leases", "tenant lease", "VIF fixed IP", "equal"])
    if wrong:
        raise ScenarioError(f"lease differs from the port's fixed IP: {', '.join(wrong)}")


def _explain(state: Path, lab_dir: Path) -> None:
    from metalnic.lab.datacentre import describe

    lab = describe(lab_dir)
    url = lab["provisioning"]["api_url"] if lab else "?"
    print(f"\nThe demo stays up (state in {state}). Try:")
    print(f"  export METALNIC_URL={url} METALNIC_USERNAME=admin")
    print(f"  export METALNIC_PASSWORD=$(cat {state}/credentials/admin)")
    print("  metalnic node list --detail")
    print(
        f"  openstack --os-auth-type http_basic --os-endpoint {url} "
        '--os-username admin --os-password="$METALNIC_PASSWORD" baremetal node list'
    )
    print(f"  metalnic lab status --dir {lab_dir}")
    if lab and any(h.get("kind") == "vm" for h in lab["hosts"]):
        print(f"  metalnic lab console host1 --dir {lab_dir}     # its serial console")
    print(f"Remove it all with:  metalnic demo --down --state-dir {state}")


def _down(state: Path, prefix: str, lab_dir: Path) -> None:
    from metalnic.lab import datacentre
    from metalnic.lab.scenario import Stack

    # stop() needs only the state directory: the server and agents (pid files checked
    # against this state); the lab's description may already be gone.
    Stack(cast("LabDescription", {}), state).stop()
    datacentre.teardown(prefix, lab_dir)
