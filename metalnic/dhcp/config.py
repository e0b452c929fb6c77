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

The common keys (server, credentials, host, timing) are read by
``metalnic/agent/configfile.py``, as for the smart NIC agent.  Secrets never go
on the command line; the password is never logged.
"""

from __future__ import annotations

from pathlib import Path

from metalnic.agent import configfile
from metalnic.agent.configfile import ConfigError, text
from metalnic.dhcp.driver import DriverConfig
from metalnic.dhcp.service import DhcpAgentConfig
from metalnic.jsontypes import JSONObject

__all__ = ["ConfigError", "load", "parse"]

OWN = {
    "ovsdb",
    "datapath_type",
    "bridge_mappings",
    "state_dir",
    "lease_duration",
    "prefix",
    "ovs_namespace",
    "create_bridges",
}


def load(path: Path) -> DhcpAgentConfig:
    return parse(configfile.read(path, "DHCP agent"))


def parse(doc: JSONObject) -> DhcpAgentConfig:
    common = configfile.common(doc, "DHCP agent", OWN)
    raw = doc.get("bridge_mappings", {"physnet1": "br-dhcp"})
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("bridge_mappings maps physical network names to bridge names")
    mappings = {k: str(v) for k, v in raw.items()}
    lease = doc.get("lease_duration", 86400)
    if not isinstance(lease, int) or isinstance(lease, bool) or lease < 120:
        raise ConfigError("lease_duration is a number of seconds, at least 120")
    prefix = text(doc, "prefix") or ""
    if len(prefix) > 7 or (prefix and not prefix.replace("-", "x").isalnum()):
        raise ConfigError("prefix: at most 7 letters, digits or '-' (interface names ≤ 15)")
    driver = DriverConfig(
        ovsdb=text(doc, "ovsdb") or "unix:/run/openvswitch/db.sock",
        bridge_mappings=mappings,
        state_dir=Path(text(doc, "state_dir") or "/var/lib/metalnic-dhcp"),
        prefix=prefix,
        ovs_namespace=text(doc, "ovs_namespace") or None,
        lease_time=lease,
        datapath_type=text(doc, "datapath_type") or "system",
        create_bridges=doc.get("create_bridges", True) is not False,
    )
    return DhcpAgentConfig(**common, driver=driver)
