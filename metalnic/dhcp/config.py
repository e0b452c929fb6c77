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

from metalnic.dhcp.driver import DriverConfig
from metalnic.dhcp.service import DhcpAgentConfig
from metalnic.jsontypes import JSONObject

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


def parse(doc: JSONObject) -> DhcpAgentConfig:
    unknown = sorted(set(doc) - KNOWN)
    if unknown:
        raise ConfigError(f"unknown DHCP agent setting(s): {', '.join(unknown)}")
    server = _text(doc, "server")
    if server is None:
        raise ConfigError("server (the metalnic URL) is required")
    raw = doc.get("bridge_mappings", {"physnet1": "br-dhcp"})
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("bridge_mappings maps physical network names to bridge names")
    mappings = {k: str(v) for k, v in raw.items()}
    lease = doc.get("lease_duration", 86400)
    if not isinstance(lease, int) or isinstance(lease, bool) or lease < 120:
        raise ConfigError("lease_duration is a number of seconds, at least 120")
    prefix = _text(doc, "prefix") or ""
    if len(prefix) > 7 or (prefix and not prefix.replace("-", "x").isalnum()):
        raise ConfigError("prefix: at most 7 letters, digits or '-' (interface names ≤ 15)")
    password = os.environ.get("METALNIC_AGENT_PASSWORD")
    password_file = _text(doc, "password_file")
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read password_file: {exc.strerror}") from None
    driver = DriverConfig(
        ovsdb=_text(doc, "ovsdb") or "unix:/run/openvswitch/db.sock",
        bridge_mappings=mappings,
        state_dir=Path(_text(doc, "state_dir") or "/var/lib/metalnic-dhcp"),
        prefix=prefix,
        ovs_namespace=_text(doc, "ovs_namespace") or None,
        lease_time=lease,
        datapath_type=_text(doc, "datapath_type") or "system",
        create_bridges=doc.get("create_bridges", True) is not False,
    )
    return DhcpAgentConfig(
        server=server,
        driver=driver,
        host=_text(doc, "host") or socket.gethostname(),
        username=_text(doc, "username"),
        password=password,
        cacert=_text(doc, "cacert"),
        heartbeat_interval=_seconds(doc, "heartbeat_interval", 2.0),
        resync_interval=_seconds(doc, "resync_interval", 5.0),
    )


def _text(doc: JSONObject, key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def _seconds(doc: JSONObject, key: str, default: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key} is a number of seconds")
    return float(value)
