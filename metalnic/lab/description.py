"""The lab's description: what ``metalnic lab up`` built, as ``description.json`` holds it.

``lab up`` writes it once; the host simulators, the demo scenario, the CLI and
the lab tests read it.  These TypedDicts are its schema: a reader that names a
key the lab does not write is a type error, not a KeyError in a root-only test.
Keys that older descriptions (or a lab with no BMC/images) lack are NotRequired.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class Provisioning(TypedDict):
    vlan: int
    subnet: str
    server_ip: str
    prefix: int
    pool: list[str]  # first and last address DHCP hands out (the subnet's allocation pool)
    leg: str
    api_url: NotRequired[str]


class Images(TypedDict):
    address: str
    port: int
    url: str
    sha256: str


class Bmc(TypedDict):
    kind: Literal["redfish"]
    url: str
    username: str
    password_file: str


class HostsControl(TypedDict):
    url: str


class AgentTls(TypedDict):
    private_key: str
    certificate: str
    ssh_private_key: NotRequired[str]  # the agent's SSH login key (remote NICs authorise it)


class NicSsh(TypedDict):
    """A remote NIC's SSH server (``lab.sshd``), as the remote agent needs it."""

    address: str  # the NIC's management address, reachable from the root namespace
    port: int
    user: str
    boot_id_file: str  # what the NIC reports as its boot id (lab-controlled: ``reboot``)


class Nic(TypedDict):
    """A smart NIC: local (the agent on its OVS) or remote (OVSDB/OpenFlow over TLS)."""

    name: str
    mode: Literal["local", "remote"]
    netns: str
    uplink: str
    ovsdb: str
    openflow: dict[str, str]  # bridge -> OpenFlow endpoint
    ovsdb_cert: NotRequired[str]
    ovsdb_ca_cert: NotRequired[str]
    ssh_public_key: NotRequired[str]  # the host key its sshd presents
    ssh: NotRequired[NicSsh]


class VmHost(TypedDict):
    """A VM host's files (``metalnic.lab.vm``)."""

    console: str  # the serial console, appended to across power-ons
    disk: str  # raw, the VM's virtio disk
    qmp: str  # the QMP socket of the running qemu


class Host(TypedDict):
    """A bare-metal host cabled to one NIC, with its BMC (set by ``lab up``).

    ``kind`` "netns" (the default; older descriptions have no ``kind``): a namespace
    ``netns`` whose veth ``port_a`` faces ``port_b``.  "vm": a QEMU machine whose NIC's
    backend is the tap ``port_b``; there is no port A outside the VM, so ``port_a``
    names the tap too and ``netns`` is the NIC's namespace, where tap and qemu live."""

    name: str
    nic: str
    mac: str
    port_a: str
    port_b: str
    netns: str
    kind: NotRequired[Literal["netns", "vm"]]
    vm: NotRequired[VmHost]
    bmc: NotRequired[Literal["redfish", "ipmi"]]
    redfish_system_id: NotRequired[str]
    ipmi_address: NotRequired[str]
    ipmi_port: NotRequired[int]


class DhcpNode(TypedDict):
    """The network node of the lab's DHCP agent (br-dhcp trunked into the fabric)."""

    netns: str
    ovsdb: str
    bridge: str
    state_dir: str
    prefix: str  # of the agent's namespaces and ports: the lab's, so ``down`` finds them


class LabDescription(TypedDict):
    name: str
    prefix: str
    dir: str
    provisioning: Provisioning
    tenant_vlans: list[int]
    nics: list[Nic]
    hosts: list[Host]
    bmc: NotRequired[Bmc]
    images: NotRequired[Images]
    hosts_control: NotRequired[HostsControl]
    agent_tls: NotRequired[AgentTls]
    dhcp: NotRequired[DhcpNode]
    already_up: NotRequired[bool]
