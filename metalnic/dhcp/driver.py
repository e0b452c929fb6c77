"""The DHCP agent's data plane: per network a namespace, a veth onto the agent's OVS
bridge, and dnsmasq — reconciled against the desired state, idempotently.

Per network ``N`` (``<net8>``: the first 8 characters of its id)::

    netns <prefix>dhcp-<net8>: ns-<net8> (the DHCP port's MAC and IPs), dnsmasq
        └─veth─ <prefix>d<net8> on the physnet's bridge (in the OVS namespace):
                access port tagged with the network's VLAN (flat: untagged only)

The bridge (``bridge_mappings``: physical network → bridge) is a VLAN-aware
learning switch (``NORMAL``) whose uplink — a trunk into the fabric — is the
operator's wiring; so dnsmasq sits on the network exactly like a host behind a
NIC.  The OVS port carries ``external_ids:metalnic-dhcp-network`` so the
agent finds (and removes) only its own ports.  Tools: ``ip`` and ``ovs-vsctl``
(which waits until ovs-vswitchd applied the change).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metalnic.contract.dhcp import DhcpDesiredState, DhcpNetwork
from metalnic.dhcp import dnsmasq, render

log = logging.getLogger(__name__)
OWNER_KEY = "metalnic-dhcp-network"


class PlumbingError(Exception):
    pass


@dataclass(frozen=True)
class DriverConfig:
    ovsdb: str  # unix:PATH or tcp:/ssl: of the OVS the DHCP bridges live on
    bridge_mappings: dict[str, str]  # physical network → bridge
    state_dir: Path
    prefix: str = ""  # names: <prefix>dhcp-<net8>, <prefix>d<net8>
    ovs_namespace: str | None = None  # where ovs-vswitchd runs (None: here)
    lease_time: int = 86400
    datapath_type: str = "system"
    create_bridges: bool = True


@dataclass
class Outcome:
    """What a pass did, per network id (errors carry the reason)."""

    started: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def _run(cmd: Sequence[str], check: bool = True) -> str:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise PlumbingError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class DhcpDriver:
    def __init__(self, config: DriverConfig) -> None:
        self.config = config

    # --- names ------------------------------------------------------------------------

    def namespace(self, network_id: str) -> str:
        return f"{self.config.prefix}dhcp-{network_id[:8]}"

    def outer(self, network_id: str) -> str:
        return f"{self.config.prefix}d{network_id[:8]}"[:15]

    @staticmethod
    def inner(network_id: str) -> str:
        return f"ns-{network_id[:8]}"

    def files(self, network_id: str) -> render.Files:
        return render.Files(self.config.state_dir / network_id)

    # --- the pass -----------------------------------------------------------------------

    def reconcile(self, desired: DhcpDesiredState) -> Outcome:
        """Make the data plane what ``desired`` says: serve its networks, remove others."""
        out = Outcome()
        wanted = {n.id: n for n in desired.networks}
        self._ensure_bridges({n.physical_network for n in desired.networks})
        for network in desired.networks:
            try:
                self._serve(network, out)
            except (PlumbingError, dnsmasq.DnsmasqError, OSError) as exc:
                log.error("network %s: DHCP not served: %s", network.id, exc)
                out.errors[network.id] = str(exc)
        for network_id in sorted(self.served() - set(wanted)):
            try:
                self.remove(network_id)
                out.removed.append(network_id)
            except (PlumbingError, OSError) as exc:
                out.errors[network_id] = str(exc)
        return out

    def served(self) -> set[str]:
        """Network ids with something of ours left: an OVS port or a state directory."""
        found = set(self._ovs_ports().values())
        if self.config.state_dir.is_dir():
            found |= {p.name for p in self.config.state_dir.iterdir() if p.is_dir()}
        return found

    def _serve(self, network: DhcpNetwork, out: Outcome) -> None:
        bridge = self._bridge(network)
        ns = self.namespace(network.id)
        self._ensure_namespace(ns)
        self._ensure_veth(network, ns)
        self._ensure_ovs_port(bridge, network)
        self._ensure_addresses(network, ns)
        files = self.files(network.id)
        # dnsmasq rereads these files after dropping root (user nobody): readable to all.
        dnsmasq.make_readable_dir(files.directory)
        changed = dnsmasq.write_if_changed(files.hosts, render.hosts_file(network))
        changed |= dnsmasq.write_if_changed(files.opts, render.opts_file(network))
        retag = dnsmasq.write_if_changed(files.tags, render.tags_file(network))
        args = render.command(network, files, self.inner(network.id), self.config.lease_time)
        pid = dnsmasq.running(files)
        if pid is not None and (retag or dnsmasq.current_args(pid) != args):
            log.info("network %s: dnsmasq's command line or tags changed; restarting", network.id)
            dnsmasq.stop(files)
            pid = None
        if pid is None:
            dnsmasq.start(ns, args, files)
            out.started.append(network.id)
        elif changed:
            dnsmasq.reload(pid)
            out.reloaded.append(network.id)

    def remove(self, network_id: str) -> None:
        """Stop serving ``network_id``: dnsmasq, OVS port, namespace, files."""
        files = self.files(network_id)
        dnsmasq.stop(files)
        for port, net in self._ovs_ports().items():
            if net == network_id:
                self._vsctl("--if-exists", "del-port", port)
        _run(["ip", "netns", "del", self.namespace(network_id)], check=False)
        shutil.rmtree(files.directory, ignore_errors=True)

    # --- plumbing -------------------------------------------------------------------

    def _bridge(self, network: DhcpNetwork) -> str:
        if network.network_type not in ("vlan", "flat"):
            raise PlumbingError(f"network type {network.network_type} is not served")
        bridge = self.config.bridge_mappings.get(network.physical_network or "")
        if bridge is None:
            raise PlumbingError(
                f"physical network {network.physical_network} has no bridge (bridge_mappings)"
            )
        return bridge

    def _ensure_bridges(self, physnets: set[str | None]) -> None:
        if not self.config.create_bridges:
            return
        for physnet in sorted(p for p in physnets if p in self.config.bridge_mappings):
            bridge = self.config.bridge_mappings[physnet]
            self._vsctl(
                "--may-exist",
                "add-br",
                bridge,
                "--",
                "set",
                "Bridge",
                bridge,
                f"datapath_type={self.config.datapath_type}",
            )

    @staticmethod
    def _ensure_namespace(ns: str) -> None:
        if Path(f"/run/netns/{ns}").exists():
            return
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _ensure_veth(self, network: DhcpNetwork, ns: str) -> None:
        inner, outer = self.inner(network.id), self.outer(network.id)
        mac = network.port.mac_address
        shown = _run(["ip", "-n", ns, "-j", "link", "show", "dev", inner], check=False)
        links = json.loads(shown) if shown.strip() else []
        if not links:
            where = ["netns", self.config.ovs_namespace] if self.config.ovs_namespace else []
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    outer,
                    *where,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    inner,
                    "netns",
                    ns,
                ]
            )
            self._in_ovs_ns("ip", "link", "set", outer, "up")
            # Userspace datapath: checksums must be complete before frames leave.
            _run(["ip", "netns", "exec", ns, "ethtool", "-K", inner, "tx", "off"], check=False)
        elif links[0].get("address") == mac and links[0].get("mtu") == network.mtu:
            _run(["ip", "-n", ns, "link", "set", inner, "up"])
            return
        _run(["ip", "-n", ns, "link", "set", inner, "address", mac, "mtu", str(network.mtu)])
        _run(["ip", "-n", ns, "link", "set", inner, "up"])

    def _ensure_ovs_port(self, bridge: str, network: DhcpNetwork) -> None:
        outer = self.outer(network.id)
        vlan = (
            ["tag=" + str(network.segmentation_id), "trunks=[]"]
            if network.network_type == "vlan"
            else ["tag=[]", "trunks=0"]  # flat: untagged frames only
        )
        self._vsctl(
            "--may-exist",
            "add-port",
            bridge,
            outer,
            "--",
            "set",
            "Port",
            outer,
            *vlan,
            f"external_ids:{OWNER_KEY}={network.id}",
        )

    def _ensure_addresses(self, network: DhcpNetwork, ns: str) -> None:
        inner = self.inner(network.id)
        prefix = {
            s.id: ipaddress.ip_network(s.cidr, strict=False).prefixlen for s in network.subnets
        }
        want = {
            f"{ip.ip_address}/{prefix[ip.subnet_id]}"
            for ip in network.port.fixed_ips
            if ip.subnet_id in prefix
        }
        shown = json.loads(_run(["ip", "-n", ns, "-j", "addr", "show", "dev", inner]) or "[]")
        have = {
            f"{a['local']}/{a['prefixlen']}"
            for link in shown
            for a in link.get("addr_info", [])
            if a.get("scope") == "global"
        }
        for cidr in sorted(have - want):
            _run(["ip", "-n", ns, "addr", "del", cidr, "dev", inner])
        for cidr in sorted(want - have):
            extra = ["nodad"] if ":" in cidr else []
            _run(["ip", "-n", ns, "addr", "add", cidr, "dev", inner, *extra])

    def _ovs_ports(self) -> dict[str, str]:
        """Our OVS ports: port name → network id."""
        out = self._vsctl("--format=json", "--columns=name,external_ids", "list", "Port")
        found: dict[str, str] = {}
        for name, ext in json.loads(out)["data"]:
            pairs = dict(ext[1]) if isinstance(ext, list) and ext[0] == "map" else {}
            if OWNER_KEY in pairs:
                found[str(name)] = str(pairs[OWNER_KEY])
        return found

    def _vsctl(self, *args: str) -> str:
        return _run(["ovs-vsctl", f"--db={self.config.ovsdb}", "--timeout=10", *args])

    def _in_ovs_ns(self, *cmd: str) -> None:
        ns = self.config.ovs_namespace
        _run(["ip", "netns", "exec", ns, *cmd] if ns else list(cmd))
