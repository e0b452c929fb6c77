"""``metalnic lab``: the virtual data centre the demo and the end-to-end tests run in.

What ``up`` builds (every name starts with the lab's prefix; everything is
recorded in ``<dir>/lab.json`` before it is made, so ``down`` — also after a
crash — removes exactly this lab and nothing else):

* a fabric switch (OVS, own namespace) trunking the tenant VLANs;
* a provisioning leg: an access port of the fabric on the provisioning VLAN,
  ending in the root namespace with the server's provisioning address, so a
  host reaches the server only through its NIC once its NIC port is on the
  provisioning network;
* smart NICs — local ones (their agent uses the unix sockets) and remote ones
  (OVSDB-SSL and OpenFlow-SSL with their own certificates, trusting the lab's
  agent CA, and an SSH server with its own host key, authorising the agent's
  SSH key: ``lab.sshd``) — each with br-int, br-phys and its uplink port C on
  the fabric;
* one host per NIC: a namespace whose port A faces the NIC's port B, or with
  ``hosts="vm"`` a QEMU VM whose NIC is a persistent tap that is port B (not
  plugged: the agent does that), with the MAC its bare-metal port will carry.

``up`` is idempotent: a lab that is fully there (with the hosts asked for) is
left alone; a broken or half-built one (a crash) is torn down and built again.  Needs root.

* BMCs: a Redfish BMC (sushy-tools, fake systems) with a system per host, and
  with two hosts or more an IPMI BMC (pyghmi, lanplus) for the last host; one
  generated password in ``<dir>/certs/bmc-password`` (mode 0600); both push every
  power or boot-device change to the host simulators and answer only after they
  followed it, so "off" is never confirmed for a host that can still send;
* the hosts' simulators (``metalnic.lab.hosts``, one process): each host
  follows its BMC — off: nothing; BIOS: silent; PXE: the ramdisk agent in the
  host's namespace at the address it leased by DHCP, talking to the server at
  ``http://<server ip>:<api port>`` over the provisioning network through its
  NIC; disk: the instance, which asks DHCP for its tenant address — and the
  image server for ``<dir>/images`` (a sample ``disk.img`` with its sha256 in
  the description);
* a DHCP node (its own OVS, ``br-dhcp`` trunked into the fabric) where
  ``metalnic dhcp-agent`` runs one dnsmasq per network with DHCP.

The provisioning subnet (default 10.99.0.0/24: the server side is its first
address, DHCP leases from ``pool``, .10 to the last) is an option, so that two
labs can coexist.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from metalnic.dhcp import dnsmasq
from metalnic.lab import netns, pki, redfish, sshd, vm
from metalnic.lab.deployimage import deploy_image
from metalnic.lab.description import Bmc, Host, HostsControl, LabDescription, Nic
from metalnic.lab.topology import Lab, down

PROVISIONING_VLAN = 100
TENANT_VLANS = range(101, 200)
BMC_USER = "lab-admin"
CONFIG_DRIVE_SIZE = 1 << 20  # a VM host's vdb: the config drive (JSON, NUL-terminated)


@dataclass(frozen=True)
class LabSpec:
    name: str = "demo"
    local_nics: int = 2
    remote_nics: int = 2
    provisioning_subnet: str = "10.99.0.0/24"
    api_port: int = 6385  # where the ramdisk finds the server, on the provisioning side
    hosts: Literal["netns", "vm"] = "netns"  # namespaces, or QEMU machines (lab.vm)

    def provisioning(self) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address, list[str]]:
        """The subnet, the server's address (its first) and the pool DHCP leases from."""
        try:
            net = ipaddress.IPv4Network(self.provisioning_subnet)
        except ValueError as exc:
            raise netns.LabError(f"provisioning subnet {self.provisioning_subnet}: {exc}") from None
        hosts = self.local_nics + self.remote_nics
        if net.num_addresses < 16 + hosts:
            raise netns.LabError(f"provisioning subnet {net} is too small for {hosts} hosts")
        pool = [str(net.network_address + 10), str(net.broadcast_address - 1)]
        return net, net.network_address + 1, pool

    @property
    def prefix(self) -> str:
        digest = hashlib.sha256(self.name.encode()).hexdigest()[:3]
        letters = "".join(c for c in self.name.lower() if c.isalnum())[:3] or "lab"
        return f"{letters}{digest}"


def default_dir(name: str) -> Path:
    base = Path(os.environ.get("METALNIC_LAB_DIR", "/var/lib/metalnic-lab"))
    return base / name


def up(spec: LabSpec, directory: Path) -> LabDescription:
    """Build the lab (or find it already built); returns its description."""
    existing = describe(directory)
    kinds = {h.get("kind", "netns") for h in existing["hosts"]} if existing else set()
    if existing is not None and healthy(existing) and kinds <= {spec.hosts}:
        existing["already_up"] = True
        return existing
    teardown(spec.prefix, directory)  # a half-built or crashed lab: start clean
    lab = Lab(spec.prefix, directory)
    try:
        return _build(spec, lab)
    except Exception:
        teardown(spec.prefix, directory)
        raise


def _build(spec: LabSpec, lab: Lab) -> LabDescription:
    subnet, server, pool = spec.provisioning()
    if spec.hosts == "vm" and not vm.available():
        raise netns.LabError(
            f"--hosts vm needs {vm.QEMU} (Debian: qemu-system-x86 seabios ipxe-qemu)"
        )
    lab.add_fabric([])
    fab = lab.ovs("fab")
    # The provisioning leg: the server's side of the provisioning VLAN.
    leg, leg_fab = f"{lab.prefix}-pv", f"{lab.prefix}-pvf"
    netns.veth(leg, None, leg_fab, lab.ns("fab"))
    netns.address(None, leg, f"{server}/{subnet.prefixlen}")
    # The server's TCP replies cross the userspace datapath: no checksum offload.
    netns.run(["ethtool", "-K", leg, "tx", "off"])
    fab.vsctl("add-port", "br-fab", leg_fab, f"tag={PROVISIONING_VLAN}")
    trunks = [PROVISIONING_VLAN, *TENANT_VLANS]
    certs = lab.dir / "certs"
    certs.mkdir(mode=0o700, exist_ok=True)
    agent_ca = pki.make_ca("metalnic lab agents")
    write_secret(certs / "agent-ca.pem", pki.pem(agent_ca[0]))
    agent_cert, agent_key = pki.issue_pem(agent_ca, "metalnic lab agent")
    write_secret(certs / "agent-cert.pem", agent_cert)
    write_secret(certs / "agent-key.pem", agent_key)
    # The agent's SSH login key; every remote NIC's sshd authorises its public half.
    ssh_private, ssh_public = pki.ssh_keypair(f"metalnic-agent@{lab.prefix}")
    write_secret(certs / "agent-ssh-key", ssh_private)
    write_secret(certs / "agent-ssh-authorized_keys", ssh_public + "\n")
    nics: list[Nic] = []
    for index in range(spec.local_nics + spec.remote_nics):
        remote = index >= spec.local_nics
        name = f"nic{index + 1}"
        nic = lab.add_nic(name, trunks)
        entry: Nic = {
            "name": name,
            "mode": "remote" if remote else "local",
            "netns": lab.ns(name),
            "uplink": lab.uplink(name),
            "ovsdb": nic.db,
            "openflow": {b: nic.mgmt(b) for b in ("br-int", "br-phys")},
        }
        if remote:
            ca = pki.make_ca(f"{name} CA")
            cert, key = pki.issue_pem(ca, name)
            write_secret(certs / f"{name}-cert.pem", cert)
            write_secret(certs / f"{name}-key.pem", key)
            ovsdb, openflow = lab.expose_over_ssl(
                name,
                netns.free_port(),
                certs / f"{name}-key.pem",
                certs / f"{name}-cert.pem",
                certs / "agent-ca.pem",
            )
            entry["ovsdb"], entry["openflow"] = ovsdb, openflow
            entry["ovsdb_cert"], entry["ovsdb_ca_cert"] = cert, pki.pem(ca[0])
            host_key, entry["ssh_public_key"] = pki.ssh_keypair(f"{name}@{lab.prefix}")
            write_secret(certs / f"{name}-ssh-host-key", host_key)
            address, port, boot_id = lab.serve_ssh(
                name, certs / f"{name}-ssh-host-key", certs / "agent-ssh-authorized_keys"
            )
            entry["ssh"] = {"address": address, "port": port, "user": "root",
                            "boot_id_file": str(boot_id)}  # fmt: skip
        nics.append(entry)
    dhcp_node = lab.add_dhcp_node(trunks)
    dnsmasq.make_readable_dir(lab.dhcp_state_dir())
    hosts: list[Host] = []
    for index, nic_entry in enumerate(nics):
        name = f"host{index + 1}"
        mac = f"52:54:00:{int(lab.prefix[-3:], 16) % 256:02x}:{index + 1:02x}:01"
        if spec.hosts == "vm":
            hosts.append(_vm_host(lab, name, nic_entry, mac))
            continue
        spec_host = lab.add_host(name, nic_entry["name"], mac, None)
        hosts.append(
            {
                "name": name,
                "nic": nic_entry["name"],
                "mac": mac,
                "port_a": spec_host.port_a,
                "port_b": spec_host.port_b,
                "netns": lab.ns(name),
                "kind": "netns",
            }
        )
    # The BMCs tell the host simulators every change before they answer (lab.hosts).
    control: HostsControl = {"url": f"http://127.0.0.1:{netns.free_port()}/power"}
    description_bmc = _start_bmc(lab, hosts, control["url"])
    server_ip = str(server)
    description: LabDescription = {
        "bmc": description_bmc,
        "name": spec.name,
        "prefix": lab.prefix,
        "dir": str(lab.dir),
        "provisioning": {
            "vlan": PROVISIONING_VLAN,
            "subnet": str(subnet),
            "server_ip": server_ip,
            "prefix": subnet.prefixlen,
            "pool": pool,
            "leg": leg,
            "api_url": f"http://{server_ip}:{spec.api_port}",
        },
        "images": deploy_image(lab.dir, server_ip, spec.hosts),
        "tenant_vlans": [TENANT_VLANS.start, TENANT_VLANS.stop - 1],
        "nics": nics,
        "hosts": hosts,
        "hosts_control": control,
        "dhcp": {
            "netns": lab.ns("dhcp"),
            "ovsdb": dhcp_node.db,
            "bridge": "br-dhcp",
            "state_dir": str(lab.dhcp_state_dir()),
            "prefix": f"{lab.prefix}-",
        },
        "agent_tls": {
            "private_key": str(certs / "agent-key.pem"),
            "certificate": str(certs / "agent-cert.pem"),
            "ssh_private_key": str(certs / "agent-ssh-key"),
        },
    }
    (lab.dir / "description.json").write_text(json.dumps(description, indent=1))
    _start_hosts(lab.dir)
    return description


def _vm_host(lab: Lab, name: str, nic: Nic, mac: str) -> Host:
    """A host that is a QEMU machine on a tap that is port B (``lab.vm``)."""
    spec = lab.add_vm_host(name, nic["name"], mac)
    home = lab.dir / "hosts" / name
    home.mkdir(parents=True, exist_ok=True)
    vm.make_disk(home / "disk")
    vm.make_disk(home / "config-drive", CONFIG_DRIVE_SIZE)
    files = {"console": "console.log", "disk": "disk", "qmp": "qmp.sock"}
    return {
        "name": name,
        "nic": nic["name"],
        "mac": mac,
        "port_a": spec.port_a,
        "port_b": spec.port_b,
        "netns": nic["netns"],
        "kind": "vm",
        "vm": {"console": str(home / files["console"]), "disk": str(home / files["disk"]),
               "qmp": str(home / files["qmp"])},
    }  # fmt: skip


def _start_hosts(directory: Path) -> None:
    """The host simulators and the image server (``metalnic.lab.hosts``), detached."""
    log_path = directory / "hosts.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "metalnic.lab.hosts", "--dir", str(directory)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (directory / "hosts.pid").write_text(str(proc.pid))
    for _ in range(300):
        if b"ready" in log_path.read_bytes():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise netns.LabError(f"the host simulators did not start (see {log_path})")


def _start_bmc(lab: Lab, hosts: list[Host], notify_url: str) -> Bmc:
    """The BMCs: with two hosts or more the last one has an IPMI BMC (pyghmi, lanplus on
    127.0.0.1/udp), every other host a system on one Redfish BMC (sushy-tools); both
    push each change to ``notify_url`` (the host simulators) before answering."""
    password = new_password(12)  # 16 characters: IPMI 2.0 allows at most 20
    password_file = lab.dir / "certs" / "bmc-password"
    write_secret(password_file, password + "\n")
    (lab.dir / "bmc").mkdir(exist_ok=True)
    redfish_hosts, ipmi_hosts = (hosts[:-1], hosts[-1:]) if len(hosts) > 1 else (hosts, [])
    systems = tuple(
        redfish.System(
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"metalnic-lab/{lab.prefix}/{h['name']}")),
            name=h["name"],
            mac=h["mac"],
        )
        for h in redfish_hosts
    )
    emulator = redfish.start_redfish_emulator(
        lab.dir / "bmc" / "redfish",
        systems,
        auth=(BMC_USER, password),
        detach=True,
        notify_url=notify_url,
        faults_dir=lab.dir / "hosts",  # lab.bmcfaults: <lab dir>/hosts/<name>/refuse-bios-setup
    )
    (lab.dir / "bmc" / "emulator.pid").write_text(str(emulator.proc.pid))
    for host, system in zip(redfish_hosts, systems, strict=True):
        host["bmc"] = "redfish"
        host["redfish_system_id"] = f"/redfish/v1/Systems/{system['uuid']}"
    for host in ipmi_hosts:
        port = _start_ipmi(lab.dir / "bmc", password_file, notify_url, host["name"])
        host["bmc"] = "ipmi"
        host["ipmi_address"], host["ipmi_port"] = "127.0.0.1", port
    return {
        "kind": "redfish",
        "url": emulator.url,
        "username": BMC_USER,
        "password_file": str(password_file),
    }


def _start_ipmi(directory: Path, password_file: Path, notify_url: str, host: str) -> int:
    for _attempt in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with (directory / "ipmi.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "metalnic.lab.ipmi_bmc",
                    "--port",
                    str(port),
                    "--user",
                    BMC_USER,
                    "--password-file",
                    str(password_file),
                    "--notify-url",
                    notify_url,
                    "--host",
                    host,
                    "--faults-dir",
                    str(directory.parent / "hosts"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (directory / "ipmi.pid").write_text(str(proc.pid))
        for _ in range(100):
            ready = subprocess.run(
                [
                    "ipmitool",
                    "-I",
                    "lanplus",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    BMC_USER,
                    "-f",
                    str(password_file),
                    "-N",
                    "1",
                    "-R",
                    "1",
                    "chassis",
                    "power",
                    "status",
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                return port
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        stop_process(directory / "ipmi.pid", password_file)  # its command line names that file
    raise netns.LabError("the IPMI BMC did not start (see its log in the lab directory)")


def owned_pid(pidfile: Path, owner: Path) -> int | None:
    """The live process in ``pidfile`` if its command line names ``owner`` (ours)."""
    try:
        pid = int(pidfile.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if alive_pid(pid) and str(owner).encode() in cmdline else None


def stop_process(pidfile: Path, owner: Path) -> None:
    """Stop the process in ``pidfile`` if it is ours (see ``owned_pid``)."""
    pid = owned_pid(pidfile, owner)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not alive_pid(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def teardown(prefix: str, directory: Path) -> None:
    """``down``: the processes (ours: checked by their command lines), then the rest."""
    stop_process(directory / "hosts.pid", directory)
    for role in ("ramdisk", "qemu"):  # if the host followers died: each names its host dir
        for pidfile in sorted(directory.glob(f"hosts/*/{role}.pid")):
            stop_process(pidfile, pidfile.parent)
    stop_process(directory / "bmc" / "emulator.pid", directory / "bmc")
    stop_process(directory / "bmc" / "ipmi.pid", directory)
    down(prefix, directory)


def describe(directory: Path) -> LabDescription | None:
    try:
        doc: LabDescription = json.loads((directory / "description.json").read_text())
    except (OSError, ValueError):
        return None
    return doc


def healthy(description: LabDescription) -> bool:
    """True when every namespace and every OVS daemon of the lab is there."""
    return not problems(description)


def problems(description: LabDescription) -> list[str]:
    prefix, directory = description["prefix"], Path(description["dir"])
    found: list[str] = []
    present = set(netns.list_ns(f"{prefix}-"))
    wanted = [f"{prefix}-fab"] + [f"{prefix}-{n['name']}" for n in description["nics"]]
    wanted += [h["netns"] for h in description["hosts"]]
    found += [f"namespace {ns} is missing" for ns in wanted if ns not in present]
    for host in (h for h in description["hosts"] if h.get("kind") == "vm"):
        link = netns.in_ns(host["netns"], "ip", "link", "show", host["port_b"])
        if host["netns"] in present and subprocess.run(link, capture_output=True).returncode:
            found.append(f"the tap {host['port_b']} of {host['name']} is missing")
    if "bmc" in description and not _alive(directory / "bmc" / "emulator.pid"):
        found.append("the Redfish BMC is not running")
    if any(h.get("bmc") == "ipmi" for h in description["hosts"]) and not _alive(
        directory / "bmc" / "ipmi.pid"
    ):
        found.append("the IPMI BMC is not running")
    if "images" in description and not _alive(directory / "hosts.pid"):
        found.append("the host simulators are not running")
    for nic in description["nics"]:
        if nic["mode"] == "remote" and sshd.pid(directory / nic["name"]) is None:
            found.append(f"the SSH server of {nic['name']} is not running")
    for name in ["fab"] + [n["name"] for n in description["nics"]]:
        for daemon in ("ovsdb-server", "ovs-vswitchd"):
            if not _alive(directory / name / f"{daemon}.pid"):
                found.append(f"{daemon} of {name} is not running")
    return found


def _alive(pidfile: Path) -> bool:
    try:
        return alive_pid(int(pidfile.read_text()))
    except (OSError, ValueError):
        return False


def alive_pid(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie is gone
    except OSError:
        return False


# --- certificates -------------------------------------------------------------------------


def new_password(nbytes: int) -> str:
    """A random URL-safe password that does not start with ``-``: one that does would be
    read as an option by the command lines it is given to (``--os-password -x…``)."""
    while (password := secrets.token_urlsafe(nbytes)).startswith("-"):
        pass
    return password


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read (keys, passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
