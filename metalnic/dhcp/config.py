"""The DHCP agent's configuration file (TOML)::

    server = "https://metalnic.example:6385"
    username = "dhcp-node1"                          # a user with the `agent` role
    password_file = "/etc/metalnic/dhcp.password"    # or METALNIC_AGENT_PASSWORD
    cacert = "/etc/metalnic/ca.pem"
    host = "network-node-1"                          # default: the host name
    ovsdb = "unix:/run/openvswitch/db.sock"          # the OVS of the DHCP bridges
    datapath_type = "system"                         # "netdev": userspace datapath
    bridge_mappings = { physnet1 = "br-dhcp" }       # physnet → bridge (uplink: yours)
    state_dir = "/var/lib/metalnic-dhcp"             # dnsmasq's files; world-traversable
    lease_duration = 86400                           # seconds (Neutron's default)
    prefix = ""                                      # prepended to namespace/port names
    ovs_namespace = ""                               # netns of ovs-vswitchd ("": this one)

Secrets never go on the command line; the password is never logged.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any

from metalnic.dhcp.driver import DriverConfig
from metalnic.dhcp.service import DhcpAgentConfig

KNOWN = {
    "server",
    "username",
    "password_file",
    "cacert",
    "host",
    "ovsdb",
    "datapath_type",
    "bridge_mappings",
    "state_dir",
    "lease_duration",
    "prefix",
    "ovs_namespace",
    "heartbeat_interval",
    "resync_interval",
    "create_bridges",
}


class ConfigError(Exception):
    pass


def load(path: Path) -> DhcpAgentConfig:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read DHCP agent config {path}: {exc}") from None
    return parse(doc)


def parse(doc: dict[str, Any]) -> DhcpAgentConfig:
    unknown = sorted(set(doc) - KNOWN)
    if unknown:
        raise ConfigError(f"unknown DHCP agent setting(s): {', '.join(unknown)}")
    if not isinstance(doc.get("server"), str):
        raise ConfigError("server (the metalnic URL) is required")
    mappings = doc.get("bridge_mappings", {"physnet1": "br-dhcp"})
    if not isinstance(mappings, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mappings.items()
    ):
        raise ConfigError("bridge_mappings maps physical network names to bridge names")
    lease = doc.get("lease_duration", 86400)
    if not isinstance(lease, int) or lease < 120:
        raise ConfigError("lease_duration is a number of seconds, at least 120")
    prefix = doc.get("prefix", "")
    valid = isinstance(prefix, str) and len(prefix) <= 7
    if not valid or (prefix and not prefix.replace("-", "x").isalnum()):
        raise ConfigError("prefix: at most 7 letters, digits or '-' (interface names ≤ 15)")
    password = os.environ.get("METALNIC_AGENT_PASSWORD")
    if doc.get("password_file"):
        try:
            password = Path(doc["password_file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read password_file: {exc.strerror}") from None
    driver = DriverConfig(
        ovsdb=str(doc.get("ovsdb", "unix:/run/openvswitch/db.sock")),
        bridge_mappings=dict(mappings),
        state_dir=Path(doc.get("state_dir", "/var/lib/metalnic-dhcp")),
        prefix=prefix,
        ovs_namespace=doc.get("ovs_namespace") or None,
        lease_time=lease,
        datapath_type=str(doc.get("datapath_type", "system")),
        create_bridges=bool(doc.get("create_bridges", True)),
    )
    return DhcpAgentConfig(
        server=doc["server"],
        driver=driver,
        host=doc.get("host") or socket.gethostname(),
        username=doc.get("username"),
        password=password,
        cacert=doc.get("cacert"),
        heartbeat_interval=float(doc.get("heartbeat_interval", 2.0)),
        resync_interval=float(doc.get("resync_interval", 5.0)),
    )
