"""The end-to-end packet proof on QEMU hosts (issue 14, item 5): two VMs (a local-mode
NIC with a Redfish BMC, a remote-mode NIC with an IPMI BMC), two tenants with the same
subnet, through the whole stack with nothing simulated — the firmware network-boots
iPXE through the NIC, the ramdisk over HTTP, cleaning, the image and config drive
written, the instance booted from disk leasing its VIF's address.

Captures on both uplinks and both taps (port B) run from before the first cleaning to
after the undeploy; the checks are tests/packetproof.py, the same ones the namespace
hosts' e2e test makes: no frame while a host is held in BIOS or its BMC said off, every
frame leaves its NIC only on a network ACTIVE for it at that moment, another tenant is
never heard on a tenant network — plus: each network boot's first DHCPDISCOVER comes
after the conductor's "attach <phase> network: done" and is answered after it.

Five network boots in all (clean + deploy each, host2's cleaning after its undeploy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metalnic.lab import datacentre, netns, vm
from metalnic.lab.capture import Capture, Frame
from metalnic.lab.scenario import Stack
from tests import packetproof
from tests.integration.conductor_helpers import audit_smartnic_order
from tests.ovslab import require_ovs
from tests.support import free_port, require


@dataclass
class VmE2E:
    stack: Stack
    captures: dict[str, Capture]  # "<host>-b" (the VM's tap), "<nic>-uplink"
    frames: dict[str, list[Frame]] = field(default_factory=dict)

    def host(self, name: str) -> dict[str, Any]:
        return next(h for h in self.stack.lab["hosts"] if h["name"] == name)

    def stop_captures(self) -> None:
        for name, capture in self.captures.items():
            self.frames.setdefault(name, []).extend(capture.stop())


@pytest.fixture(scope="module")
def proof(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmE2E]:
    require_ovs()
    require(vm.available(), f"{vm.QEMU} (Debian: qemu-system-x86 seabios ipxe-qemu)")
    began = time.monotonic()
    tmp = tmp_path_factory.mktemp("vme2e")
    spec = datacentre.LabSpec(
        f"vme{tmp.name[-3:]}", 1, 1, provisioning_subnet="10.93.0.0/24",
        api_port=free_port(), hosts="vm",
    )  # fmt: skip
    lab_dir = tmp / "lab"
    running: Stack | None = None
    captures: dict[str, Capture] = {}
    try:
        lab = datacentre.up(spec, lab_dir)
        captures = packetproof.start_captures(lab, tmp)
        running = Stack(lab, tmp / "state", say=lambda line: print(line, flush=True),
                        env={"METALNIC_PORT_ACTIVE_TIMEOUT": "30"})  # fmt: skip
        running.start()
        running.enroll()
        running.make_available([h["name"] for h in lab["hosts"]], timeout=600)
        print(f"vm e2e: both VMs cleaned at {time.monotonic() - began:.0f}s", flush=True)
        yield VmE2E(running, captures)
    finally:
        for capture in captures.values():
            capture.stop()
        if running is not None:
            running.stop()
        packetproof.keep_lab_logs(lab_dir, tmp / "lab-logs")
        datacentre.teardown(spec.prefix, lab_dir)
        print(f"vm e2e: {time.monotonic() - began:.0f}s in all (lab up to down)", flush=True)


def test_two_tenants_deploy_a_vm_each_through_their_nics(proof: VmE2E) -> None:
    stack = proof.stack
    hosts = [h["name"] for h in stack.lab["hosts"]]
    assert {stack.tenant_of(h) for h in hosts} == {"tenant-a", "tenant-b"}
    began = time.monotonic()
    stack.deploy(hosts, timeout=600)
    print(f"vm e2e: both VMs deployed in {time.monotonic() - began:.0f}s", flush=True)
    for host in hosts:
        console = Path(proof.host(host)["vm"]["console"]).read_text(errors="replace")
        # The ramdisk ran: leased on the provisioning network, looked up, heartbeat.
        assert "metalnic-ramdisk:" in console and "heartbeat accepted" in console, host
        assert "metalnic-instance:" in console, host
        # The instance booted from the disk the ramdisk wrote, and leased its VIF's address
        # from its own tenant's DHCP server (both tenants: the same subnet).
        leases = stack.leases(host)
        tenant = [cidr for _, state, cidr in leases if state == "disk"]
        assert tenant and tenant[-1] == f"{stack.tenant_ip(host)}/24", (host, leases)
        provisioning = [cidr for _, state, cidr in leases if state == "pxe"]
        assert provisioning and all(c.startswith("10.93.0.") for c in provisioning), leases
        # Every network change with the VM held in BIOS, every boot behind a boot gate.
        history = packetproof.history(stack, host)
        counts = audit_smartnic_order(history)
        assert counts["network"] >= 5 and counts["boots"] >= 3, (host, counts)
        events = " | ".join(e["event"] for e in history)
        assert "image written and its checksum verified" in events
        assert "ports verified ACTIVE on the tenant network" in events


def test_cross_tenant_unreachable_between_booted_vms(proof: VmE2E) -> None:
    """One VM per tenant, the same subnet: neither reaches the other (the matrix probes
    from inside each booted instance).  Same-tenant reachability between two VMs needs
    a second VM per tenant (two more network boots): here each instance's lease from
    its own tenant's DHCP server, through its NIC, is the same-tenant traffic."""
    if not hasattr(vm.QemuMachine, "probe"):
        pytest.skip("Stack.matrix probes from inside a VM only with the machine's probe")
    stack = proof.stack
    hosts = [h["name"] for h in stack.lab["hosts"]]
    if len({stack.tenant_ip(h) for h in hosts}) < len(hosts):
        pytest.skip(f"IPAM gave both tenants' VMs the same address {stack.tenant_ip(hosts[0])}")
    matrix = stack.matrix(hosts)
    assert len(matrix) == 2, matrix
    for (src, dst), reached in matrix.items():
        same = stack.tenant_of(src) == stack.tenant_of(dst)
        assert bool(reached) == same, f"{src} → {dst}: reached={reached}, same tenant={same}"


def test_undeploy_returns_the_tap_to_deny_by_default(proof: VmE2E) -> None:
    """host2 is undeployed and cleaned (its third network boot): its NIC port is on no
    network, none of its ports is bound (its VIF's neither); the captures (still running)
    then show it never sent on its tenant network after that network's detach began."""
    stack = proof.stack
    began = time.monotonic()
    stack.undeploy(["host2"], timeout=600)
    print(f"vm e2e: host2 undeployed and cleaned in {time.monotonic() - began:.0f}s", flush=True)
    node = stack.nodes["host2"]
    with stack.client() as c:
        shown = c.get(f"/v1/nodes/{node}").json()
        assert (shown["provision_state"], shown["power_state"]) == ("available", "power off")
        # The VIF stays attached (as in Ironic: its owner detaches it), its port unbound.
        vifs = [v["id"] for v in c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]]
        ports = c.get("/network/v2.0/ports", params={"device_id": node}).json()["ports"]
        assert ports and [p["id"] for p in ports if p["binding:host_id"]] == []
        assert vifs and all(c.get(f"/network/v2.0/ports/{v}").json()["port"]["binding:host_id"]
                            in ("", None) for v in vifs), vifs  # fmt: skip
    host2 = proof.host("host2")
    # host2's NIC is remote (its agent speaks OVSDB-SSL): read its OVS on the NIC itself.
    db = Path(stack.lab["dir"]) / host2["nic"] / "db.sock"
    tag = netns.run(
        ["ovs-vsctl", f"--db=unix:{db}", "--if-exists", "get", "Port", host2["port_b"], "tag"]
    ).strip()
    assert tag in ("", "4095"), tag


def test_packets_left_each_nic_only_on_the_network_it_was_active_on(proof: VmE2E) -> None:
    """Captured on both uplinks and both taps since before the first cleaning."""
    proof.stop_captures()
    stack, frames = proof.stack, proof.frames
    allowed = {
        host["name"]: packetproof.check_host_sent_only_when_allowed(stack, frames, host, 2)
        for host in stack.lab["hosts"]
    }
    packetproof.check_no_other_tenant_heard(stack, frames, allowed)
    # Each network boot asked DHCP only once the NIC was programmed for its network.
    boots = {
        h["name"]: packetproof.check_dhcp_after_attach(stack, frames, h) for h in stack.lab["hosts"]
    }
    assert boots == {
        "host1": ["cleaning", "provisioning"],
        "host2": ["cleaning", "provisioning", "cleaning"],
    }, boots
