"""Bind latency on real Open vSwitch: network-port creation → ACTIVE with the NIC programmed.

    sudo .venv/bin/python bench/bind_bench.py local  --binds 40
    sudo .venv/bin/python bench/bind_bench.py remote --nics 20 --ports 10

local:  two NICs, one local-mode agent each; ports are bound one after another and
        each is timed from the POST until the server shows it ACTIVE (polled every
        2 ms), i.e. binding decision + feed wake-up + OVSDB + OpenFlow + report.
remote: one remote-mode agent for N NICs (OVSDB-SSL + OpenFlow-SSL), N × P ports
        bound while the agent is stopped; then the agent starts and the full resync
        (start → every port ACTIVE) is timed; then one more bind per NIC is timed.

Prints the numbers; asserts nothing (a benchmark, not a test).  Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalnic.lab import netns, pki  # noqa: E402
from metalnic.lab.datacentre import write_secret  # noqa: E402
from metalnic.lab.topology import Lab  # noqa: E402
from tests.ovslab import AgentProcess, local_agent_config, start_agent_server  # noqa: E402
from tests.support import (  # noqa: E402
    Server,
    free_port,
    make_ca,
    make_server_cert,
    pem,
)

ADMIN = ("admin", "bench-admin-1")


def port_b(lab: Lab, nic: str, index: int) -> str:
    """A NIC-side netdev standing for port B (its peer stays in the NIC namespace)."""
    name = f"{lab.prefix}-{nic[-2:]}{index}"
    netns.veth(name, lab.ns(nic), f"{name}x", lab.ns(nic))
    return name


def wait_active(c: httpx.Client, port_id: str, timeout: float = 30) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if c.get(f"/network/v2.0/ports/{port_id}").json()["port"]["status"] == "ACTIVE":
            return time.perf_counter() - began
        time.sleep(0.002)
    raise SystemExit(f"port {port_id} not ACTIVE within {timeout}s")


GROUPS: list[str] = []  # set by groups(): the security groups of every bound port


def bind(c: httpx.Client, net: str, nic: str, name: str, mac: str, extra: dict[str, str]) -> str:
    link = {"hostname": nic, "port_id": name, **extra}
    r = c.post(
        "/network/v2.0/ports",
        json={
            "port": {
                "network_id": net,
                "mac_address": mac,
                "binding:vnic_type": "smart-nic",
                "binding:host_id": nic,
                "binding:profile": {"local_link_information": [link]},
                **({"security_groups": GROUPS} if GROUPS else {}),
            }
        },
    )
    r.raise_for_status()
    return str(r.json()["port"]["id"])


def summary(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(
        f"{label}: n={len(ms)} p50={statistics.median(ms):.1f} ms p99={p99:.1f} ms "
        f"min={ms[0]:.1f} max={ms[-1]:.1f}"
    )


def groups(c: httpx.Client, default: bool) -> None:
    """Ports join an ssh-only group; with ``--default-group`` the project's default one,
    whose "ingress from members" rule makes every new port a change for every NIC."""
    if default:
        return
    group = c.post(
        "/network/v2.0/security-groups", json={"security_group": {"name": "ssh"}}
    ).json()["security_group"]["id"]
    c.post(
        "/network/v2.0/security-group-rules",
        json={
            "security_group_rule": {
                "security_group_id": group,
                "direction": "ingress",
                "protocol": "tcp",
                "port_range_min": 22,
                "port_range_max": 22,
            }
        },
    ).raise_for_status()
    GROUPS[:] = [group]


def setup(tmp: Path, nics: list[str]) -> tuple[Server, Path]:
    """A server whose agent user ``bench-agent`` is granted ``nics``."""
    return start_agent_server(
        tmp,
        ADMIN,
        ("bench-agent", "bench-agent-2"),
        env={"METALNIC_LOG_LEVEL": "warning"},
        nic_hosts=nics,
    )


def local(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="metalnic-bench-"))
    server, password = setup(tmp, ["nic1", "nic2"])
    lab = Lab(f"bl{time.time_ns() % 1000}", tmp / "lab")
    agents = []
    try:
        lab.add_fabric([])
        for nic in ("nic1", "nic2"):
            lab.add_nic(nic, list(range(100, 200)))
            agent = AgentProcess(
                tmp, nic, local_agent_config(server, lab, nic, "bench-agent", password, resync=30)
            )
            agent.start()
            agents.append(agent)
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            time.sleep(2)
            net = c.post("/network/v2.0/networks", json={"network": {"name": "b"}}).json()
            groups(c, args.default_group)
            samples: list[float] = []
            posts: list[float] = []
            for i in range(args.binds):
                nic = ("nic1", "nic2")[i % 2]
                name = port_b(lab, nic, i)
                mac = f"52:54:01:00:{i // 256:02x}:{i % 256:02x}"
                began = time.perf_counter()
                port = bind(c, net["network"]["id"], nic, name, mac, {})
                posts.append(time.perf_counter() - began)
                wait_active(c, port)
                samples.append(time.perf_counter() - began)
        summary(f"local mode, {args.binds} binds over 2 NICs (POST → ACTIVE)", samples)
        summary("  of which the POST (create + bind decision)", posts)
    finally:
        for agent in agents:
            agent.stop()
        lab.down()
        server.stop()


def remote(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="metalnic-bench-"))
    server, password = setup(tmp, [f"nic{n:02d}" for n in range(args.nics)])
    lab = Lab(f"br{time.time_ns() % 1000}", tmp / "lab")
    agent_ca = make_ca("agents")
    cert, key = make_server_cert(agent_ca)
    (tmp / "agent-cert.pem").write_text(cert)
    (tmp / "agent-key.pem").write_text(key)
    (tmp / "agent-ca.pem").write_text(pem(agent_ca[0]))
    login_key, login_public = pki.ssh_keypair("bench-agent")
    write_secret(tmp / "agent-ssh-key", login_key)
    (tmp / "authorized_keys").write_text(login_public + "\n")
    stored: dict[str, dict[str, str]] = {}
    conf = (
        f'server = "{server.url}"\nusername = "bench-agent"\n'
        f'password_file = "{password}"\nmode = "remote"\ndatapath_type = "netdev"\n'
        f'resync_interval = 30\nhost = "bench-remote"\n'
        f'private_key = "{tmp / "agent-key.pem"}"\ncertificate = "{tmp / "agent-cert.pem"}"\n'
        f'state_dir = "{tmp / "state"}"\nssh_private_key = "{tmp / "agent-ssh-key"}"\n'
    )
    agent = AgentProcess(tmp, "remote", "")
    try:
        lab.add_fabric([])
        began = time.perf_counter()
        for n in range(args.nics):
            nic = f"nic{n:02d}"
            lab.add_nic(nic, list(range(100, 200)))
            ca = make_ca(f"{nic}-ca")
            ncert, nkey = make_server_cert(ca)
            (tmp / f"{nic}-cert.pem").write_text(ncert)
            (tmp / f"{nic}-key.pem").write_text(nkey)
            ovsdb, flows = lab.expose_over_ssl(
                nic,
                free_port(),
                tmp / f"{nic}-key.pem",
                tmp / f"{nic}-cert.pem",
                tmp / "agent-ca.pem",
            )
            host_key, public = pki.ssh_keypair(nic)
            write_secret(tmp / f"{nic}-ssh-host-key", host_key)
            address, port, _boot = lab.serve_ssh(
                nic, tmp / f"{nic}-ssh-host-key", tmp / "authorized_keys"
            )
            stored[nic] = {
                "ovsdb_cert": ncert,
                "ovsdb_ca_cert": pem(ca[0]),
                "ssh_public_key": public,
            }
            targets = ", ".join(f'{b} = "{t}"' for b, t in flows.items())
            conf += (
                f'[nics.{nic}]\novsdb = "{ovsdb}"\nopenflow = {{ {targets} }}\n'
                f'bridge_mappings = {{ physnet1 = "br-phys" }}\nssh = "{address}:{port}"\n'
            )
        print(f"lab with {args.nics} NICs up in {time.perf_counter() - began:.1f} s")
        agent.path.write_text(conf)
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as c:
            net = c.post("/network/v2.0/networks", json={"network": {"name": "r"}}).json()
            groups(c, args.default_group)
            net_id = net["network"]["id"]
            # Register the NIC hosts (a first heartbeat) so ports can bind, then stop.
            agent.start()
            time.sleep(3)
            agent.stop()
            ports = []
            for n in range(args.nics):
                nic = f"nic{n:02d}"
                for i in range(args.ports):
                    name = port_b(lab, nic, i)
                    mac = f"52:54:02:{n:02x}:00:{i:02x}"
                    ports.append(bind(c, net_id, nic, name, mac, stored[nic]))
            began = time.perf_counter()
            agent.start()
            for port in ports:
                wait_active(c, port, timeout=300)
            print(
                f"remote mode, 1 agent, {args.nics} NICs × {args.ports} ports: full resync "
                f"(agent start → all {len(ports)} ACTIVE) {time.perf_counter() - began:.2f} s"
            )
            samples = []
            for n in range(args.nics):
                nic = f"nic{n:02d}"
                name = port_b(lab, nic, args.ports)
                began = time.perf_counter()
                port = bind(c, net_id, nic, name, f"52:54:03:{n:02x}:00:01", stored[nic])
                wait_active(c, port)
                samples.append(time.perf_counter() - began)
            summary(f"remote mode, one more bind per NIC with {args.ports} ports on it", samples)
    finally:
        agent.stop()
        lab.down()
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    lp = sub.add_parser("local")
    lp.add_argument("--binds", type=int, default=40)
    rp = sub.add_parser("remote")
    rp.add_argument("--nics", type=int, default=20)
    rp.add_argument("--ports", type=int, default=10)
    for sp in (lp, rp):
        sp.add_argument(
            "--default-group",
            action="store_true",
            help="ports in the project's default security group (see groups())",
        )
    args = p.parse_args()
    {"local": local, "remote": remote}[args.mode](args)


if __name__ == "__main__":
    main()
