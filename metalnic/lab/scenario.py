"""The demo's engine: metalnic running a lab — what ``metalnic demo`` does and what
the end-to-end tests drive step by step.

* ``Stack.start``: the server (SQLite, http_basic, listening on the lab's
  provisioning address — where the hosts' ramdisk reaches it, and nowhere
  else) and the smart NIC agents (one per local NIC, one for all remote NICs
  over SSL), as detached processes with pid files, so ``--keep`` can leave
  them running; users ``admin``, ``lab-agent`` (granted every NIC host of the
  lab: it runs all the agents) and one member per tenant, with
  generated passwords in ``<state>/credentials/`` (0600).
* ``Stack.enroll``: the provisioning network and its DHCP subnet (the lab's
  provisioning subnet; no gateway; DHCP leases from the lab's pool) — with QEMU
  hosts also a SLAAC subnet, for the router adverts iPXE waits for — then one
  node per lab host:
  its BMC (Redfish or IPMI), ``smartnic`` network, ``direct`` deploy of the
  lab's image, one smart NIC port (remote NICs: with their OVSDB certificate
  and CA), owned by its tenant's project; taken to ``available`` through
  manage and provide (cleaning boots the ramdisk through the NIC).
* ``Stack.deploy``: as each tenant's member: its network with a subnet (both
  tenants the same CIDR), a VIF port (its fixed IP allocated by IPAM) attached
  to its nodes, and ``active`` with a config drive of metadata only: the
  instance takes its address by DHCP, and it is the port's fixed IP.
* ``matrix``: who reaches whose tenant address, measured on the machines
  themselves (``probe``: through each host's follower, ``lab.probe``): ping,
  and TCP port 80 where the target serves it (a VM's instance runs httpd);
  ``leases``: what each host was given by DHCP (from its events).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from metalnic.auth import add_user, load_users
from metalnic.jsontypes import JSONObject
from metalnic.lab import stackconfig
from metalnic.lab.datacentre import new_password, owned_pid, stop_process, write_secret
from metalnic.lab.description import LabDescription
from metalnic.lab.hosts import bmc_driver_info
from metalnic.lab.probe import Probe
from metalnic.lab.probe import ping as ping  # the tests' namespace ping, from here as before
from metalnic.lab.stackconfig import DHCP_AGENT, agent_configs, dhcp_agent_config, smart_nic_port
from metalnic.lab.stages import stage

API_VERSION = {"X-OpenStack-Ironic-API-Version": "1.53"}
TENANT_CIDR = "10.50.0.0/24"  # both tenants use it: isolation must come from the NICs
LEASE = re.compile(r"\blease (\d+\.\d+\.\d+\.\d+/\d+)")  # in a host's event
FAILED = ("clean failed", "deploy failed", "inspect failed", "error")


class ScenarioError(Exception):
    pass


@dataclass
class Stack:
    lab: LabDescription
    state: Path
    say: Callable[[str], None] = print
    tenants: tuple[str, ...] = ("tenant-a", "tenant-b")
    env: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)  # host name → node uuid
    addresses: dict[str, str] = field(default_factory=dict)  # host → its VIF's fixed IP

    # --- processes ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self.lab["provisioning"]["api_url"])

    def password(self, user: str) -> str:
        return (self.state / "credentials" / user).read_text().strip()

    def client(self, user: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, auth=(user, self.password(user)), timeout=30, headers=API_VERSION
        )

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        creds = self.state / "credentials"
        creds.mkdir(mode=0o700, exist_ok=True)
        users = self.state / "users.toml"
        # lab-agent runs every NIC's agent: it is granted every NIC host of the lab.
        nics = tuple(str(n["name"]) for n in self.lab["nics"])
        wanted: list[tuple[str, str, str | None, tuple[str, ...]]] = [
            ("admin", "admin", None, ()),
            ("lab-agent", "agent", None, nics),
        ]
        wanted += [(t, "member", t, ()) for t in self.tenants]
        for name, role, project, grant in wanted:
            fresh = not (creds / name).exists()
            if fresh:
                write_secret(creds / name, new_password(18) + "\n")
            record = load_users(users).get(name)
            if fresh or record is None or set(record.nic_hosts) != set(grant):
                add_user(users, name, self.password(name), (role,), project, grant)
        prov = self.lab["provisioning"]
        port = prov["api_url"].rsplit(":", 1)[1]
        self._spawn(
            "server",
            [
                sys.executable, "-m", "metalnic.cli.main", "serve",
                "--host", prov["server_ip"], "--port", port,
                "--state-dir", str(self.state), "--auth", "http_basic",
                "--users-file", str(users), "--log-level", "info",
            ],
            {"METALNIC_DEPLOY_CALLBACK_TIMEOUT": "300", "METALNIC_PERIODIC_INTERVAL": "1",
             **self._boot_settings(), **self.env},
        )  # fmt: skip
        self._wait(lambda: _answers(self.url), 30, "the server to answer")
        configs = agent_configs(self.lab, self.url, "lab-agent", creds / "lab-agent", self.state)
        if "dhcp" in self.lab:
            configs[DHCP_AGENT] = dhcp_agent_config(self.lab, self.url, creds / "lab-agent")
        for name, text in configs.items():
            (self.state / f"{name}.toml").write_text(text)
            self.restart(name)
        with self.client() as c:
            self._wait(
                lambda: alive_agents(c) >= set(configs), 30, f"agents {', '.join(configs)} alive"
            )
        self.say(f"server at {self.url}; agents {', '.join(sorted(configs))} alive")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        pidfile = self.state / f"{name}.pid"
        if owned_pid(pidfile, self.state) is not None:
            return  # still running from an earlier --keep
        with (self.state / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,  # outlives `metalnic demo --keep`
            )
        pidfile.write_text(str(proc.pid))

    def stop(self, names: Iterable[str] | None = None) -> None:
        for pidfile in sorted(self.state.glob("*.pid")):
            if names is None or pidfile.stem in names:
                stop_process(pidfile, self.state)
                pidfile.unlink(missing_ok=True)

    def restart(self, name: str) -> None:
        """Start agent ``name`` from its config in the state directory (if not running)."""
        command = "dhcp-agent" if name == DHCP_AGENT else "agent"
        self._spawn(
            name,
            [sys.executable, "-m", "metalnic.cli.main", command, "--config",
             str(self.state / f"{name}.toml")],
            {},
        )  # fmt: skip

    @staticmethod
    def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise ScenarioError(f"timed out waiting for {what}")

    # --- inventory ----------------------------------------------------------------------

    def tenant_of(self, host: str) -> str:
        index = [h["name"] for h in self.lab["hosts"]].index(host)
        return self.tenants[index % len(self.tenants)]

    def tenant_ip(self, host: str) -> str:
        """The fixed IP of the host's tenant VIF port (IPAM's choice; what DHCP leases)."""
        if host not in self.addresses:
            with self.client() as c:
                r = c.get("/network/v2.0/ports", params={"name": f"{host}-vif"})
                ports = r.json()["ports"] if r.is_success else []
            if not ports or not ports[0]["fixed_ips"]:
                raise ScenarioError(f"{host} has no tenant port with an address")
            self.addresses[host] = str(ports[0]["fixed_ips"][0]["ip_address"])
        return self.addresses[host]

    def leases(self, host: str) -> list[tuple[float, str, str]]:
        """Every DHCP lease the host got: (time, state ``pxe``/``disk``, ``ip/prefix``)."""
        path = Path(self.lab["dir"]) / "hosts" / host / "events.log"
        found = []
        for line in path.read_text().splitlines() if path.exists() else []:
            stamp, state, detail = (line.split(" ", 2) + ["", ""])[:3]
            got = LEASE.search(detail)  # a namespace host's own, or a VM console's line
            if got:
                found.append((float(stamp), state, got.group(1)))
        return found

    @property
    def vm_hosts(self) -> bool:
        """Are the lab's hosts QEMU machines (they network-boot through iPXE)?"""
        return any(h.get("kind") == "vm" for h in self.lab["hosts"])

    def _boot_settings(self) -> dict[str, str]:
        """The server's ipxe settings for QEMU hosts: the ramdisk built from Debian
        packages (``metalnic.lab.images``, cached), served by its /boot route."""
        if not self.vm_hosts:
            return {}
        from metalnic.lab.images import build

        built = build(say=self.say)
        return {
            "METALNIC_HTTP_BOOT_URL": f"{self.url}/boot",
            "METALNIC_DEPLOY_KERNEL": str(built.vmlinuz),
            "METALNIC_DEPLOY_RAMDISK": str(built.ramdisk),
            # no_timer_check: a loaded TCG host can fail the kernel's timer check
            # (a panic, "IO-APIC + timer doesn't work!": seen with 4 VMs, load 14).
            "METALNIC_KERNEL_APPEND_PARAMS": "console=ttyS0 no_timer_check",
            "METALNIC_DEFAULT_BOOT_MODE": "bios",
        }

    def enroll(self) -> dict[str, str]:
        password = Path(self.lab["bmc"]["password_file"]).read_text().strip()
        with self.client() as c:
            prov = self.lab["provisioning"]
            vlan: JSONObject = {
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": prov["vlan"],
            }
            start, end = prov["pool"]
            subnet: JSONObject = {
                "cidr": prov["subnet"],
                "gateway_ip": None,  # the server is on the subnet itself
                "allocation_pools": [{"start": start, "end": end}],
            }
            # With QEMU hosts a SLAAC subnet too: its router adverts spare iPXE a 16 s
            # wait for IPv6 router discovery on every boot (docs/development.md).
            more = [stackconfig.PROVISIONING_V6] if self.vm_hosts else []
            _network(c, "provisioning", vlan, subnet, *more)
            for host in self.lab["hosts"]:
                name = f"node-{host['name']}"
                r = c.get(f"/v1/nodes/{name}")
                if r.status_code == 200:
                    self.nodes[host["name"]] = r.json()["uuid"]
                    continue
                node = _ok(
                    c.post(
                        "/v1/nodes",
                        json={
                            "name": name,
                            "driver": host["bmc"],
                            "driver_info": bmc_driver_info(self.lab, host, password),
                            "network_interface": "smartnic",
                            "deploy_interface": stackconfig.deploy_interface(host),
                            "owner": self.tenant_of(host["name"]),
                            "instance_info": {
                                "image_source": self.lab["images"]["url"],
                                "image_os_hash_value": self.lab["images"]["sha256"],
                            },
                            # QEMU hosts network-boot for real (iPXE from their phase
                            # port's DHCP options); namespace hosts keep the hardware
                            # type's default, which configures nothing.
                            **({"boot_interface": "ipxe"} if host.get("kind") == "vm" else {}),
                        },
                    )
                )
                self.nodes[host["name"]] = node["uuid"]
                _ok(c.post("/v1/ports", json=smart_nic_port(self.lab, host, node["uuid"])))
        self.say(f"enrolled {len(self.nodes)} nodes: {', '.join(sorted(self.nodes))}")
        return self.nodes

    def make_available(self, hosts: Iterable[str], timeout: float = 600) -> None:
        """manage → provide (automated cleaning through the ramdisk) for each host not
        deployed already (a demo run again over one left up by ``--keep``)."""
        with self.client() as c:
            todo = [
                h
                for h in hosts
                if c.get(f"/v1/nodes/{self.nodes[h]}").json()["provision_state"] != "active"
            ]
        steps = {"enroll": "manage", "manageable": "provide"}
        self.drive(todo, "available", steps, "admin", timeout)

    def deploy(self, hosts: Iterable[str], timeout: float = 600) -> None:
        hosts = list(hosts)
        for host in hosts:
            self.attach_tenant_vif(host)
        # "active" means the BMC powered the host on from disk; the instance is up
        # once it booted and DHCP gave it its address (as a cloud user waits for SSH).
        self.drive(
            hosts,
            "active",
            {"available": "active"},
            None,
            timeout,
            booted=self.instance_leased,
        )

    def instance_leased(self, host: str) -> bool:
        """The host runs its instance (booted from disk, not left since) and that
        instance has leased its address (later events may follow the lease)."""
        path = Path(self.lab["dir"]) / "hosts" / host / "events.log"
        booted = False
        for line in path.read_text().splitlines() if path.exists() else []:
            _stamp, state, detail = (line.split(" ", 2) + ["", ""])[:3]
            booted = state == "disk" and (booted or LEASE.search(detail) is not None)
        return booted

    def host_state(self, host: str) -> str:
        """The host simulator's last boot: ``<state> <detail>`` (see lab.hosts)."""
        path = Path(self.lab["dir"]) / "hosts" / host / "events.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return lines[-1].split(" ", 1)[1] if lines else ""

    def undeploy(self, hosts: Iterable[str], timeout: float = 600) -> None:
        self.drive(hosts, "available", {"active": "deleted"}, None, timeout)

    def attach_tenant_vif(self, host: str) -> str:
        tenant, node = self.tenant_of(host), self.nodes[host]
        with self.client(tenant) as c:
            attached = c.get(f"/v1/nodes/{node}/vifs").json()["vifs"]
            if attached:
                return str(attached[0]["id"])
            net = _network(c, tenant, {}, {"cidr": TENANT_CIDR})
            port = _ok(
                c.post(
                    "/network/v2.0/ports",
                    json={"port": {"network_id": net["id"], "name": f"{host}-vif"}},
                )
            )["port"]
            r = c.post(f"/v1/nodes/{node}/vifs", json={"id": port["id"]})
            if r.status_code != 204:
                raise ScenarioError(f"VIF attach to {host} refused: {r.status_code} {r.text}")
            return str(port["id"])

    def configdrive(self, host: str) -> JSONObject:
        """Metadata only: the instance's addresses come from DHCP, not from the drive."""
        return {"meta_data": {"uuid": self.nodes[host], "hostname": host}}

    def drive(
        self,
        hosts: Iterable[str],
        goal: str,
        steps: dict[str, str],
        user: str | None,
        timeout: float,
        booted: Callable[[str], bool] = lambda host: True,
    ) -> None:
        """Move each host's node towards ``goal``: whenever one rests in a state of
        ``steps`` (unlocked), ask for that verb; report every change as it happens.
        A host is done when its node rests in ``goal`` and ``booted(host)``."""
        hosts = list(hosts)
        seen: dict[str, str] = {}
        events = {h: _EventTail(Path(self.lab["dir"]) / "hosts" / h / "events.log") for h in hosts}
        began = time.monotonic()
        clients = {h: self.client(user or self.tenant_of(h)) for h in hosts}
        try:
            while True:
                pending = []
                for host in hosts:
                    c, node = clients[host], self.nodes[host]
                    shown = c.get(f"/v1/nodes/{node}").json()
                    state = shown["provision_state"]
                    for line in events[host].new():
                        self.say(f"{time.monotonic() - began:6.1f}s  {host:6} {line}")
                    if seen.get(host) != state:
                        seen[host] = state
                        self.say(f"{time.monotonic() - began:6.1f}s  {host:6} node: {state}")
                    if state in FAILED:
                        raise ScenarioError(f"node-{host} {state}: {shown['last_error']}")
                    if state == goal and shown["reservation"] is None and booted(host):
                        continue
                    pending.append(host)
                    verb = steps.get(state)
                    if verb and shown["reservation"] is None:
                        body: JSONObject = {"target": verb}
                        if verb == "active":
                            body["configdrive"] = self.configdrive(host)
                        r = c.put(f"/v1/nodes/{node}/states/provision", json=body)
                        if r.status_code != 202:
                            raise ScenarioError(f"{verb} of node-{host}: {r.status_code} {r.text}")
                if not pending:
                    return
                if time.monotonic() - began > timeout:
                    raise ScenarioError(f"{', '.join(pending)} did not reach {goal} in {timeout}s")
                time.sleep(0.5)
        finally:
            for c in clients.values():
                c.close()

    # --- results ------------------------------------------------------------------------

    def matrix(self, hosts: Iterable[str] | None = None) -> dict[tuple[str, str], bool]:
        """(source, target) → whether the source's running OS reaches the target's tenant
        address: ping, and TCP 80 where the target serves it (VM hosts' instances); the
        probes of one pair must agree.  One thread per source (a miss waits seconds)."""
        names = list(hosts or [h["name"] for h in self.lab["hosts"]])
        kinds = {h["name"]: h.get("kind", "netns") for h in self.lab["hosts"]}
        targets = {dst: self.tenant_ip(dst) for dst in names}

        def row(src: str) -> dict[tuple[str, str], bool]:
            found = {}
            for dst in (d for d in names if d != src):
                checks = [Probe("ping", targets[dst])]
                if kinds[dst] == "vm":
                    checks.append(Probe("tcp", targets[dst], 80))
                got = {check.describe(): self.probe(src, check) for check in checks}
                if len(set(got.values())) > 1:
                    raise ScenarioError(f"{src} → {dst}: the probes disagree: {got}")
                found[(src, dst)] = next(iter(got.values()))
            return found

        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return {pair: ok for found in pool.map(row, names) for pair, ok in found.items()}

    def probe(self, host: str, check: Probe) -> bool:
        """Ask ``host``'s running OS (its follower's ``POST /probe``: ``lab.hosts``)."""
        url = urlsplit(self.lab["hosts_control"]["url"])._replace(path="/probe").geturl()
        body = {"name": host, "kind": check.kind, "address": check.address, "port": check.port}
        try:
            r = httpx.post(url, json=body, timeout=60, trust_env=False)
            answer = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ScenarioError(f"{check.describe()} from {host}: {exc}") from exc
        if r.status_code != 200:
            raise ScenarioError(f"{check.describe()} from {host}: {answer.get('error', r.text)}")
        return bool(answer["reached"])


class _EventTail:
    """New lines of a host's events.log, as the demo shows them (``lab.stages``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> list[str]:
        try:
            with self.path.open() as fh:
                fh.seek(self.offset)
                data = fh.read()
                self.offset = fh.tell()
        except OSError:
            return []
        shown = []
        for line in data.splitlines():
            _stamp, state, detail = (line.split(" ", 2) + ["", ""])[:3]
            said = stage(state, detail) if state else None
            if said is not None:
                shown.append(said)
        return shown


def _ok(r: httpx.Response) -> dict[str, Any]:
    if r.status_code >= 300:
        raise ScenarioError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return dict(r.json())


def _network(
    c: httpx.Client, name: str, extra: JSONObject, subnet: JSONObject, *more: JSONObject
) -> JSONObject:
    """The caller's network ``name``, its IPv4 subnet ``name`` and the ``more`` subnets
    (each body with its name): found, or made."""
    net = (
        _named(c, "networks", name)
        or _ok(c.post("/network/v2.0/networks", json={"network": {"name": name, **extra}}))[
            "network"
        ]
    )
    for body in [{"name": name, "ip_version": 4, **subnet}, *more]:
        if not _named(c, "subnets", str(body["name"])):
            _ok(c.post("/network/v2.0/subnets", json={"subnet": {"network_id": net["id"], **body}}))
    return dict(net)


def _named(c: httpx.Client, collection: str, name: str) -> JSONObject | None:
    """The caller's first network-API ``collection`` item called ``name`` (or None)."""
    items = _ok(c.get(f"/network/v2.0/{collection}", params={"name": name}))[collection]
    return items[0] if items and isinstance(items[0], dict) else None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def alive_agents(c: httpx.Client) -> set[str]:
    """The NIC agents the network API reports alive (by host)."""
    r = c.get("/network/v2.0/agents")
    return {a["host"] for a in r.json().get("agents", []) if a["alive"]} if r.is_success else set()
