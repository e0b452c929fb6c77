"""The whole product on real parts, driven like ``metalnic demo``: the lab (2 local and
2 remote smart NICs on real Open vSwitch, a fabric, 4 hosts), real BMC emulators
(3 hosts on Redfish, 1 on IPMI), host simulators that follow their BMC (the
ramdisk agent runs inside the host's namespace and reaches the server only
through its NIC), the server and real agents; two tenants deploy two nodes each
with the ``direct`` deploy interface and a config drive.

Then packets: who reaches whom, and captures on every NIC's uplink and port B
taken during the whole run, held against the nodes' event logs.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metalnic.baremetal import states
from metalnic.lab import datacentre, netns
from metalnic.lab.capture import Capture, Frame
from metalnic.lab.scenario import ScenarioError, Stack, alive_agents, ping
from tests.integration.conductor_helpers import audit_smartnic_order
from tests.ovslab import require_ovs, wait_until
from tests.support import free_port


@dataclass
class E2E:
    stack: Stack
    lab: dict[str, Any]
    captures: dict[str, Capture]  # "<host>-b" (port B), "<nic>-uplink"
    frames: dict[str, list[Frame]]

    def host(self, name: str) -> dict[str, Any]:
        return next(h for h in self.lab["hosts"] if h["name"] == name)

    def history(self, host: str) -> list[dict[str, Any]]:
        with self.stack.client() as c:
            r = c.get(f"/v1/nodes/{self.stack.nodes[host]}/history")
            return list(r.json()["history"])

    def stop_captures(self) -> None:
        for name, capture in self.captures.items():
            self.frames.setdefault(name, []).extend(capture.stop())


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    require_ovs()
    tmp = tmp_path_factory.mktemp("e2e")
    # Its own provisioning subnet: a demo lab on this machine keeps 10.99.0.0/24.
    spec = datacentre.LabSpec(
        f"e2e{tmp.name[-4:]}", 2, 2, provisioning_subnet="10.97.0.0/24", api_port=free_port()
    )
    lab_dir = tmp / "lab"
    stack: Stack | None = None
    captures: dict[str, Capture] = {}
    try:
        lab = datacentre.up(spec, lab_dir)
        for nic in lab["nics"]:
            captures[f"{nic['name']}-uplink"] = Capture(
                nic["netns"], nic["uplink"], tmp / f"{nic['name']}-uplink.pcap"
            ).start()
        for host in lab["hosts"]:
            nic_ns = f"{lab['prefix']}-{host['nic']}"
            captures[f"{host['name']}-b"] = Capture(
                nic_ns, host["port_b"], tmp / f"{host['name']}-b.pcap"
            ).start()
        stack = Stack(
            lab,
            tmp / "state",
            say=lambda line: print(line, flush=True),
            env={"METALNIC_AGENT_DOWN_TIME": "4", "METALNIC_PORT_ACTIVE_TIMEOUT": "20"},
        )
        stack.start()
        stack.enroll()
        stack.make_available([h["name"] for h in lab["hosts"]])
        yield E2E(stack, lab, captures, {})
    finally:
        for capture in captures.values():
            capture.stop()
        if stack is not None:
            stack.stop()
        _keep_lab_logs(lab_dir, tmp / "lab-logs")
        datacentre.teardown(spec.prefix, lab_dir)


def _keep_lab_logs(lab_dir: Path, to: Path) -> None:
    """The hosts' events and the BMCs' logs outlive the lab (``down`` removes its dir): a
    failed packet check is read against them."""
    for log in [
        *lab_dir.glob("hosts/*/*.log"),
        *lab_dir.glob("*.log"),
        *lab_dir.glob("bmc/**/*.log"),
    ]:
        target = to / log.relative_to(lab_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log, target)


@contextmanager
def _address(host: dict[str, Any], cidr: str) -> Iterator[None]:
    """``cidr`` on the host's port A meanwhile: the host trying on its own what the NIC
    should not let it do."""
    ip = ("ip", "addr")
    netns.run(netns.in_ns(host["netns"], *ip, "add", cidr, "dev", host["port_a"]))
    try:
        yield
    finally:
        netns.run(netns.in_ns(host["netns"], *ip, "del", cidr, "dev", host["port_a"]))


def _time(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["created_at"]).replace(tzinfo=dt.UTC).timestamp()


def _windows(
    events: list[dict[str, Any]],
    vlans: dict[str, int],
    opened_by: str = "done",
    closed_by: str = "started",
) -> list[tuple[int, float, float]]:
    """(VLAN, from, to): from "attach <phase> network: done" to the matching detach's start —
    when the host may use that network (with "started"/"done": when its port may be on it)."""
    windows: list[tuple[int, float, float]] = []
    opened: dict[str, float] = {}
    for e in events:
        text = e["event"]
        for phase, vlan in vlans.items():
            if text.startswith(f"attach {phase} network: {opened_by}"):
                opened[phase] = _time(e)
            elif text.startswith(f"detach {phase} network: {closed_by}") and phase in opened:
                windows.append((vlan, opened.pop(phase), _time(e)))
    windows += [(vlans[p], start, float("inf")) for p, start in opened.items()]
    return windows


def _off_windows(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """From the BMC confirming "power off" to the next power-on request: a real host is dark
    then, so the simulated one must be too (its BMC tells it before it confirms)."""
    windows: list[tuple[float, float]] = []
    off: float | None = None
    for e in events:
        text = e["event"]
        if text == f"{states.POWER_OFF} (BMC confirmed)":
            off = _time(e)
        elif off is not None and text in (
            f"{states.POWER_ON} requested",
            f"{states.REBOOT} requested",
            f"{states.SOFT_REBOOT} requested",
        ):
            windows.append((off, _time(e)))
            off = None
    return windows + ([(off, float("inf"))] if off is not None else [])


def _context(frame: Frame, events: list[dict[str, Any]], lab_dir: Path, host: str) -> str:
    """What the conductor and the host simulator did around ``frame`` (for a failure)."""
    lines = (lab_dir / "hosts" / host / "events.log").read_text().splitlines()
    near = [(_time(e), "conductor", e["event"]) for e in events]
    near += [(float(line.split()[0]), "host", line.split(" ", 1)[1]) for line in lines]
    shown = [
        f"{t - frame.time:+.3f}s {who}: {what}"
        for t, who, what in sorted(near)
        if abs(t - frame.time) < 2
    ]
    return f"frame at {frame.time:.6f} (VLAN {frame.vlan}, type {frame.ethertype:#06x}): " + (
        "; ".join(shown) or "nothing logged within 2 s"
    )


def _bios_windows(lab_dir: Path, host: str) -> list[tuple[float, float]]:
    """When the host simulator was in BIOS (from its events.log)."""
    lines = (lab_dir / "hosts" / host / "events.log").read_text().splitlines()
    entries = [(float(line.split()[0]), line.split()[1]) for line in lines]
    return [
        (t, entries[i + 1][0] if i + 1 < len(entries) else float("inf"))
        for i, (t, state) in enumerate(entries)
        if state == "bios"
    ]


def test_two_tenants_deploy_through_their_nics(e2e: E2E) -> None:
    stack, lab = e2e.stack, e2e.lab
    hosts = [h["name"] for h in lab["hosts"]]
    stack.deploy(hosts)
    # Tenant A hosts reach each other, tenant B hosts each other, nothing crosses (one
    # subnet for both: only the NICs keep them apart).
    matrix = stack.matrix(hosts)
    for (src, dst), reached in matrix.items():
        same = stack.tenant_of(src) == stack.tenant_of(dst)
        assert reached == same, f"{src} → {dst}: reached={reached}, same tenant={same}"
    # Every network change of every node happened with the host held in BIOS, and
    # every boot behind a boot gate: provisioning, cleaning, tenant.
    for host in hosts:
        counts = audit_smartnic_order(e2e.history(host))
        assert counts["network"] >= 6 and counts["boots"] >= 3, (host, counts)
        events = " | ".join(e["event"] for e in e2e.history(host))
        assert "image written and its checksum verified" in events
        assert "ports verified ACTIVE on the tenant network" in events
    # A deployed host is on its tenant network only: provisioning is gone.
    host1 = e2e.host("host1")
    # Every address came by DHCP: the provisioning ones while the ramdisk ran, the
    # tenant one from the tenant's subnet — and it is the VIF port's fixed IP.
    for host in hosts:
        leases = stack.leases(host)
        assert {state for _, state, _ in leases} == {"pxe", "disk"}, (host, leases)
        tenant = [cidr for _, state, cidr in leases if state == "disk"]
        assert tenant[-1] == f"{stack.tenant_ip(host)}/24", (host, leases)
    provisioning = [cidr for _, state, cidr in stack.leases("host1") if state == "pxe"]
    with _address(host1, provisioning[-1]):
        assert not ping(host1["netns"], lab["provisioning"]["server_ip"])


def test_packets_left_each_nic_only_on_the_network_it_was_active_on(e2e: E2E) -> None:
    """Captured on every uplink and port B since before the first node was cleaned."""
    e2e.stop_captures()
    lab, stack = e2e.lab, e2e.stack
    with stack.client() as c:
        nets = {n["name"]: n for n in c.get("/network/v2.0/networks").json()["networks"]}
    windows_of: dict[str, list[tuple[int, float, float]]] = {}
    for host in lab["hosts"]:
        name, mac = host["name"], host["mac"]
        tenant_vlan = nets[stack.tenant_of(name)]["provider:segmentation_id"]
        vlans = {"provisioning": 100, "cleaning": 100, "tenant": tenant_vlan}
        history = e2e.history(name)
        windows = windows_of[name] = _windows(history, vlans)
        sent = [f for f in e2e.frames[f"{host['nic']}-uplink"] if f.src == mac]
        # The capture saw the host on both networks (so this check can fail) ...
        assert {f.vlan for f in sent} == {100, tenant_vlan}, (name, {f.vlan for f in sent})
        # ... and every frame inside a window where its port was ACTIVE on that VLAN.
        stray = [
            f for f in sent if not any(v == f.vlan and a <= f.time <= b for v, a, b in windows)
        ]
        lab_dir = Path(lab["dir"])
        assert stray == [], (
            f"{name}: {len(stray)} frames outside their network's window: "
            + " | ".join(_context(f, history, lab_dir, name) for f in stray[:3])
        )
        # Once its BMC confirmed "off", the host sent nothing until it was powered on again
        # (port B sees everything it sends).
        at_b = [f for f in e2e.frames[f"{name}-b"] if f.src == mac]
        assert at_b, f"{name}: nothing captured at port B"
        off = _off_windows(history)
        assert len(off) >= 6, (name, off)
        after_off = [f for f in at_b if any(a <= f.time < b for a, b in off)]
        assert after_off == [], (
            f"{name} sent {len(after_off)} frames while its BMC said off: "
            + " | ".join(_context(f, history, lab_dir, name) for f in after_off[:3])
        )
        # In BIOS the host sent nothing at all.
        bios = _bios_windows(lab_dir, name)
        in_bios = [f for f in at_b if any(a <= f.time < b for a, b in bios)]
        assert in_bios == [], f"{name} sent {len(in_bios)} frames while in BIOS"
    # Another tenant's host is heard only while both share the provisioning network: never
    # on a tenant network.  A port is on a network from its attach's start to its detach's
    # end; outside the window where its host may send (above), i.e. while the port is being
    # moved, the host must be held in BIOS (the power rule), so that is checked too.
    lab_dir = Path(lab["dir"])
    for host in lab["hosts"]:
        name, mine = host["name"], stack.tenant_of(host["name"])
        foreign = {h["mac"] for h in lab["hosts"] if stack.tenant_of(h["name"]) != mine}
        history = e2e.history(name)
        may_send = [(a, b) for v, a, b in windows_of[name] if v == 100]
        phases = {"provisioning": 100, "cleaning": 100}
        shared = [(a, b) for _, a, b in _windows(history, phases, "started", "done")]
        bios = _bios_windows(lab_dir, name)

        def within(t: float, windows: list[tuple[float, float]]) -> bool:
            return any(a <= t <= b for a, b in windows)

        heard = [f for f in e2e.frames[f"{name}-b"] if f.src in foreign]
        leaked = [
            f
            for f in heard
            if not within(f.time, may_send)
            and not (within(f.time, shared) and within(f.time, bios))
        ]
        assert leaked == [], f"{name} heard another tenant: " + " | ".join(
            _context(f, history, lab_dir, name) for f in leaked[:3]
        )


def test_undeploy_returns_the_nic_port_to_deny_by_default(e2e: E2E) -> None:
    """host2 (tenant-b, local nic2) is undeployed and cleaned: even a host that keeps its
    old tenant address and sends cannot reach its former peer host4."""
    stack = e2e.stack
    stack.undeploy(["host2"])
    host2, host4 = e2e.host("host2"), e2e.host("host4")
    assert not ping(host4["netns"], stack.tenant_ip("host2"))
    with _address(host2, f"{stack.tenant_ip('host2')}/24"):
        assert not ping(host2["netns"], stack.tenant_ip("host4"))
    # host1 ↔ host3 (tenant-a) are untouched.
    assert ping(e2e.host("host1")["netns"], stack.tenant_ip("host3"))


def test_agent_killed_before_deploy_fails_cleanly_then_redeploy_works(e2e: E2E) -> None:
    stack = e2e.stack
    node = stack.nodes["host2"]
    stack.stop(["agent-nic2"])
    with stack.client() as c:
        wait_until(lambda: "agent-nic2" not in alive_agents(c), 20, "agent-nic2 seen dead")
        with pytest.raises(ScenarioError, match="deploy failed"):
            stack.deploy(["host2"], timeout=180)
        failed = c.get(f"/v1/nodes/{node}").json()
        assert "no live agent serves NIC host nic2" in failed["last_error"], failed["last_error"]
        assert failed["power_state"] == "power off"
        ports = c.get("/network/v2.0/ports", params={"device_id": node}).json()["ports"]
        assert [p for p in ports if p["binding:host_id"]] == []
    # Nothing of the failed deploy is left on the NIC: port B is in no network's VLAN.
    port_b = e2e.host("host2")["port_b"]
    nic_db = next(n for n in e2e.lab["nics"] if n["name"] == "nic2")["ovsdb"]
    tag = netns.run(
        ["ovs-vsctl", f"--db={nic_db}", "--if-exists", "get", "Port", port_b, "tag"]
    ).strip()
    assert tag in ("", "4095"), tag
    stack.restart("agent-nic2")
    with stack.client() as c:
        wait_until(lambda: "agent-nic2" in alive_agents(c), 20, "agent-nic2 back")
        r = c.put(f"/v1/nodes/{node}/states/provision", json={"target": "active",
                  "configdrive": stack.configdrive("host2")})  # fmt: skip
        assert r.status_code == 202, r.text
    stack.deploy(["host2"], timeout=300)
    wait_until(
        lambda: ping(e2e.host("host2")["netns"], stack.tenant_ip("host4")), 20, "host2 → host4"
    )


def test_no_secret_in_any_log(e2e: E2E) -> None:
    """BMC and API passwords, and the NICs' and agents' private keys, appear in no log of
    the server, the agents, the host simulators or the ramdisks."""
    state, lab_dir = e2e.stack.state, Path(e2e.lab["dir"])
    secrets = [Path(e2e.lab["bmc"]["password_file"]).read_text().strip()]
    secrets += [p.read_text().strip() for p in (state / "credentials").iterdir()]
    keys = [lab_dir / "certs" / "agent-key.pem", *sorted((lab_dir / "certs").glob("nic*-key.pem"))]
    # a key's base64 body: any line of it would be a leak
    secrets += [k.read_text().splitlines()[1] for k in keys]
    logs = [*state.glob("*.log"), lab_dir / "hosts.log", *lab_dir.glob("hosts/*/ramdisk.log")]
    assert len(logs) >= 4 + 1 + 4
    for log in logs:
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret is in {log}"
