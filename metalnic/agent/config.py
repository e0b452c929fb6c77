"""The agent's configuration file (TOML): the server, its credentials, the NICs it serves.

    server = "https://metalnic.example:6385"
    username = "agent-rack1"
    password_file = "/etc/metalnic/agent.password"   # or METALNIC_AGENT_PASSWORD
    cacert = "/etc/metalnic/ca.pem"                  # trust for the server's HTTPS
    mode = "local"                                   # or "remote"
    datapath_type = "system"                         # "netdev": userspace datapath
    # remote mode: the agent's own identity towards the NICs (TLS, and SSH)
    private_key = "/etc/metalnic/agent-key.pem"
    certificate = "/etc/metalnic/agent-cert.pem"
    ssh_private_key = "/etc/metalnic/agent-ssh-key"  # OpenSSH; the NICs authorise it
    ssh_user = "root"                                # default; per NIC: nics.<host>.ssh_user

    [nics.nic-1]
    ovsdb = "unix:/run/openvswitch/db.sock"          # remote: "ssl:192.0.2.10:6640"
    openflow = { br-int = "unix:/run/openvswitch/br-int.mgmt",
                 br-phys = "unix:/run/openvswitch/br-phys.mgmt" }
    bridge_mappings = { physnet1 = "br-phys" }
    ssh = "192.0.2.10:22"                            # remote: the NIC's SSH server

The common keys (server, credentials, host, timing) are read by
``configfile.py``, as for the DHCP agent.  Which NICs an agent serves comes
from this file; every one is announced in the heartbeat (``nic_hosts``), and
the server hands the agent exactly those NICs' ports.  Secrets never go on
the command line (visible to other users).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metalnic.agent import configfile
from metalnic.agent.configfile import ConfigError
from metalnic.agent.nic import NicConfig
from metalnic.agent.ovs import Endpoint
from metalnic.agent.service import AgentConfig, NicSpec
from metalnic.agent.sshchannel import SshTarget
from metalnic.jsontypes import JSONObject

__all__ = ["ConfigError", "load", "parse"]

OWN = {
    "mode",
    "datapath_type",
    "private_key",
    "certificate",
    "ssh_private_key",
    "ssh_user",
    "nics",
    "state_dir",
    "create_bridges",
}


def load(path: Path) -> AgentConfig:
    return parse(configfile.read(path, "agent"))


def parse(doc: dict[str, Any]) -> AgentConfig:
    common = configfile.common(doc, "agent", OWN)
    mode = doc.get("mode", "local")
    if mode not in ("local", "remote"):
        raise ConfigError("mode must be local or remote")
    nics = doc.get("nics")
    if not isinstance(nics, dict) or not nics:
        raise ConfigError("at least one [nics.<host>] table is required")
    if mode == "local" and len(nics) != 1:
        raise ConfigError("a local-mode agent runs on its NIC and serves exactly one")
    if mode == "remote" and not (doc.get("private_key") and doc.get("certificate")):
        raise ConfigError(
            "remote mode needs private_key and certificate (the agent's TLS identity)"
        )
    if mode == "remote" and not doc.get("ssh_private_key"):
        raise ConfigError("remote mode needs ssh_private_key (the agent's SSH key to the NICs)")
    specs = []
    for host, raw in nics.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("ovsdb"), str):
            raise ConfigError(f"nics.{host} needs ovsdb (unix:PATH or ssl:HOST:PORT)")
        remote = mode == "remote"
        if remote != raw["ovsdb"].startswith("ssl:"):
            raise ConfigError(
                f"nics.{host}: remote mode talks to NICs over ssl: only, local mode over unix:"
            )
        mappings = raw.get("bridge_mappings", {"physnet1": "br-phys"})
        config = NicConfig(
            host=host,
            integration_bridge=raw.get("integration_bridge", "br-int"),
            bridge_mappings=dict(mappings),
            datapath_type=raw.get("datapath_type", doc.get("datapath_type", "system")),
            create_bridges=bool(doc.get("create_bridges", True)),
        )
        openflow = dict(raw.get("openflow", {}))
        for bridge in (config.integration_bridge, *mappings.values()):
            if bridge not in openflow:
                raise ConfigError(f"nics.{host}.openflow has no target for bridge {bridge}")
        ssh = _ssh(host, raw, doc.get("ssh_user", "root")) if remote else None
        specs.append(NicSpec(config, Endpoint(raw["ovsdb"], openflow), remote, ssh))
    return AgentConfig(
        **common,
        nics=tuple(specs),
        mode=mode,
        private_key=doc.get("private_key"),
        certificate=doc.get("certificate"),
        ssh_private_key=doc.get("ssh_private_key"),
        state_dir=doc.get("state_dir", "/var/lib/metalnic-agent"),
    )


def _ssh(host: str, raw: JSONObject, user: object) -> SshTarget:
    """``nics.<host>.ssh = "HOST[:PORT]"`` (an IPv6 address in brackets), its user."""
    target = raw.get("ssh")
    if not isinstance(target, str) or not target:
        raise ConfigError(f"nics.{host} needs ssh (HOST[:PORT] of the NIC's SSH server)")
    user = raw.get("ssh_user", user)
    if not isinstance(user, str) or not user:
        raise ConfigError(f"nics.{host}: ssh_user must be a user name")
    name, port = target, "22"
    if target.startswith("["):
        name, _, rest = target[1:].partition("]")
        port = rest.removeprefix(":") or "22"
    elif target.count(":") == 1:
        name, _, port = target.partition(":")
    if not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"nics.{host}.ssh must be HOST[:PORT], not {target!r}")
    return SshTarget(name, int(port), user)
