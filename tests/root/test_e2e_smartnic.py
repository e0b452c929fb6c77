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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metalnic.lab import datacentre, netns
from metalnic.lab.capture import Capture, Frame
from metalnic.lab.scenario import ScenarioError, Stack, alive_agents, ping
from tests import packetproof
from tests.integration.conductor_helpers import audit_smartnic_order
from tests.ovslab import port_b_tag, require_ovs, wait_until
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
        return packetproof.history(self.stack, host)

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
        captures = packetproof.start_captures(lab, tmp)
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
        packetproof.keep_lab_logs(lab_dir, tmp / "lab-logs")
        datacentre.teardown(spec.prefix, lab_dir)


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
    """Captured on every uplink and port B since before the first node was cleaned (the
    checks: tests/packetproof.py, shared with the VM hosts' proof)."""
    e2e.stop_captures()
    stack = e2e.stack
    allowed = {
        host["name"]: packetproof.check_host_sent_only_when_allowed(stack, e2e.frames, host, 6)
        for host in e2e.lab["hosts"]
    }
    packetproof.check_no_other_tenant_heard(stack, e2e.frames, allowed)
    # Each host's DHCP on the cleaning and the provisioning network asked only once its
    # NIC was programmed for that network, and was answered after.
    for host in e2e.lab["hosts"]:
        phases = packetproof.check_dhcp_after_attach(stack, e2e.frames, host)
        assert phases == ["cleaning", "provisioning"], (host["name"], phases)


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
    tag = port_b_tag(e2e.lab, e2e.host("host2"))
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
