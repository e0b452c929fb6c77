"""What the lab's stack writes and enrolls: the agents' TOML configurations (one per
local NIC, one for all remote NICs, the DHCP agent), each host's smart NIC port and
the provisioning network's SLAAC subnet (QEMU hosts).  Split from ``lab.scenario``
(which drives the stack) to keep both readable."""

from __future__ import annotations

from pathlib import Path

from metalnic.jsontypes import JSONObject
from metalnic.lab.description import Host, LabDescription

# Only for its router adverts (iPXE waits 16 s for them after each DHCPv4 lease).
PROVISIONING_V6: JSONObject = {
    "name": "provisioning-v6",
    "ip_version": 6,
    "cidr": "fd00:6d6e::/64",  # a ULA prefix: each lab's provisioning network is its own
    "gateway_ip": None,
    "ipv6_ra_mode": "slaac",
    "ipv6_address_mode": "slaac",
}


def smart_nic_port(lab: LabDescription, host: Host, node: str) -> JSONObject:
    nic = next(n for n in lab["nics"] if n["name"] == host["nic"])
    llc: JSONObject = {"hostname": nic["name"], "port_id": host["port_b"]}
    if nic["mode"] == "remote":
        llc.update(
            ssh_public_key=nic["ssh_public_key"],
            ovsdb_cert=nic["ovsdb_cert"],
            ovsdb_ca_cert=nic["ovsdb_ca_cert"],
        )
    return {
        "node_uuid": node,
        "address": host["mac"],
        "is_smartnic": True,
        "pxe_enabled": True,
        "local_link_connection": llc,
    }


DHCP_AGENT = "lab-dhcp"  # the DHCP agent's name and host


def dhcp_agent_config(lab: LabDescription, server: str, password_file: Path) -> str:
    """TOML for the lab's DHCP agent on its DHCP node (user lab-agent: role agent)."""
    node = lab["dhcp"]
    return (
        f'server = "{server}"\nusername = "lab-agent"\npassword_file = "{password_file}"\n'
        f'host = "{DHCP_AGENT}"\novsdb = "{node["ovsdb"]}"\novs_namespace = "{node["netns"]}"\n'
        f'datapath_type = "netdev"\nbridge_mappings = {{ physnet1 = "{node["bridge"]}" }}\n'
        f'state_dir = "{node["state_dir"]}"\nprefix = "{node["prefix"]}"\n'
        "resync_interval = 5.0\nheartbeat_interval = 1.0\n"
    )


def agent_configs(
    lab: LabDescription, server: str, user: str, password_file: Path, state: Path
) -> dict[str, str]:
    """TOML for the lab's agents: one per local NIC, one for all remote NICs."""
    common = (
        f'server = "{server}"\nusername = "{user}"\npassword_file = "{password_file}"\n'
        'datapath_type = "netdev"\nresync_interval = 5.0\nheartbeat_interval = 1.0\n'
    )
    configs = {}
    remote = ""
    for nic in lab["nics"]:
        flows = ", ".join(f'{b} = "{t}"' for b, t in nic["openflow"].items())
        block = (
            f'[nics.{nic["name"]}]\novsdb = "{nic["ovsdb"]}"\nopenflow = {{ {flows} }}\n'
            'bridge_mappings = { physnet1 = "br-phys" }\n'
        )
        if "ssh" in nic:
            ssh = nic["ssh"]
            block += f'ssh = "{ssh["address"]}:{ssh["port"]}"\nssh_user = "{ssh["user"]}"\n'
        if nic["mode"] == "local":
            name = f"agent-{nic['name']}"
            configs[name] = common + f'mode = "local"\nhost = "{name}"\n' + block
        else:
            remote += block
    if remote:
        tls = lab["agent_tls"]
        configs["agent-remote"] = (
            common + 'mode = "remote"\nhost = "agent-remote"\n'
            f'private_key = "{tls["private_key"]}"\ncertificate = "{tls["certificate"]}"\n'
            f'ssh_private_key = "{tls.get("ssh_private_key", "")}"\n'
            f'state_dir = "{state / "agent-remote-state"}"\n' + remote
        )
    return configs


def deploy_interface(host: Host) -> str:
    """The lab deploys its QEMU hosts every way an image reaches a disk: the even
    ones through iSCSI (the ramdisk exports the disk, the conductor writes it), every
    fourth from host3 with ansible (the conductor's playbooks over the ramdisk's SSH
    server), the others ``direct`` (the ramdisk downloads and writes); namespace
    hosts direct."""
    if host.get("kind") != "vm":
        return "direct"
    number = int(host["name"].removeprefix("host"))
    if number % 2 == 0:
        return "iscsi"
    return "ansible" if number % 4 == 3 else "direct"
