"""dnsmasq's configuration for one network, as a pure function of the desired state.

Three parts: the command line (fixed while the network's subnets and DHCP port
stay the same: a change there restarts dnsmasq), the hosts file and the options
file (rewritten and reread on SIGHUP, which keeps the leases).

* No dynamic range: every ``dhcp-range`` is ``static``, so only a MAC listed
  in the hosts file gets an address (the port's fixed IP, nothing else).
* A port with ``extra_dhcp_opts`` is tagged by its MAC (``dhcp-mac=set:port-<id>,<mac>``
  in the tags file, a ``--conf-file``) and its options are emitted as
  ``tag:port-<id>,...`` so they reach that port only.  Not ``set:`` in the hosts
  file, as Neutron does: dnsmasq 2.90 (Debian 12) aborts on SIGHUP once a host
  with such a tag holds a lease (its tag list is freed on reload; seen here,
  docs/development.md).  The tags file is read at start only, so a change to
  *which* ports carry options restarts dnsmasq (the lease file carries the
  leases over); everything else is a SIGHUP.  An
  ``opt_name`` may carry tags of its own (Ironic's ``tag:ipxe,bootfile-name``
  / ``tag:!ipxe,67``): they are kept after the port's tag.
* Per subnet, router, DNS and classless routes go to hosts of that subnet
  (``tag:subnet-<id>``, set by its range).  A subnet without gateway gets an
  empty router option, so hosts install no default route.
* Facts from LAB-NOTES (QEMU hosts): ``no-ping`` (else 3 s per offer),
  ``enable-ra`` and a ``ra-only`` range where router adverts are wanted, and
  ``dhcp-option-force=tag:ipxe,175,...`` (else iPXE waits 3 s for ProxyDHCP).
* Router adverts (a subnet with an ``ipv6_ra_mode``) carry the prefixes with a
  router lifetime of 0 (``ra-param=<if>,0,0``): dnsmasq's namespace is no router,
  so hosts take no default route via it (as no router option goes out for a
  subnet without gateway; the network's real router sends its own adverts).
* iPXE asking over DHCPv6 is tagged ``ipxe6`` by its user class (option 15,
  ``iPXE``), as Neutron's dnsmasq does: Ironic's IPv6 boot options are
  ``tag:ipxe6,59`` / ``tag:!ipxe6,59`` (DHCPv4's option 175 is not sent there).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from metalnic.contract.dhcp import DhcpHost, DhcpNetwork, DhcpOption, DhcpSubnet

IPXE_MATCH = "dhcp-match=set:ipxe,175"
IPXE6_MATCH = "dhcp-userclass=set:ipxe6,iPXE"


@dataclass(frozen=True)
class Files:
    """Where one network's dnsmasq keeps its files (under the agent's state dir)."""

    directory: Path

    @property
    def hosts(self) -> Path:
        return self.directory / "hosts"

    @property
    def opts(self) -> Path:
        return self.directory / "opts"

    @property
    def leases(self) -> Path:
        return self.directory / "leases"

    @property
    def tags(self) -> Path:
        return self.directory / "tags.conf"

    @property
    def pid(self) -> Path:
        return self.directory / "pid"

    @property
    def log(self) -> Path:
        return self.directory / "log"


def port_tag(port_id: str) -> str:
    return f"port-{port_id}"


def subnet_tag(subnet_id: str) -> str:
    return f"subnet-{subnet_id}"


def command(network: DhcpNetwork, files: Files, interface: str, lease_time: int) -> list[str]:
    """dnsmasq's arguments for ``network`` (it runs inside the network's namespace)."""
    args = [
        "dnsmasq",
        "--no-hosts",
        "--no-resolv",
        "--port=0",  # DHCP only: no DNS service
        "--except-interface=lo",
        f"--interface={interface}",
        "--bind-interfaces",
        f"--pid-file={files.pid}",
        f"--dhcp-hostsfile={files.hosts}",
        f"--dhcp-optsfile={files.opts}",
        f"--conf-file={files.tags}",
        f"--dhcp-leasefile={files.leases}",
        "--dhcp-authoritative",  # a restarted server answers renewals it has no lease for
        "--no-ping",
        f"--log-facility={files.log}",
        "--log-dhcp",
        f"--{IPXE_MATCH}",
        "--dhcp-option-force=tag:ipxe,175,b0:01:01",
        f"--{IPXE6_MATCH}",
    ]
    ra = False
    for subnet in network.subnets:
        args += _range(subnet, lease_time)
        ra = ra or subnet.ip_version == 6 and subnet.ipv6_ra_mode is not None
    if ra:  # prefixes, but no default route via dnsmasq's namespace: it routes nothing
        args += ["--enable-ra", f"--ra-param={interface},0,0"]
    return args


def _range(subnet: DhcpSubnet, lease_time: int) -> list[str]:
    net = ipaddress.ip_network(subnet.cidr, strict=False)
    tag = f"set:{subnet_tag(subnet.id)}"
    if net.version == 4:
        return [f"--dhcp-range={tag},{net.network_address},static,{net.netmask},{lease_time}s"]
    mode = subnet.ipv6_address_mode
    if mode == "slaac":
        return [f"--dhcp-range={tag},{net.network_address},ra-only,{net.prefixlen},{lease_time}s"]
    if mode == "dhcpv6-stateless":
        return [
            f"--dhcp-range={tag},{net.network_address},ra-stateless,{net.prefixlen},{lease_time}s"
        ]
    if mode == "dhcpv6-stateful" or mode is None:
        return [f"--dhcp-range={tag},{net.network_address},static,{net.prefixlen},{lease_time}s"]
    return []


def hosts_file(network: DhcpNetwork) -> str:
    """One line per port: ``mac,ipv4…,[ipv6]…,hostname``, sorted by MAC so the same
    desired state renders the same bytes (no needless SIGHUP)."""
    served = {s.id: s for s in network.subnets}
    lines = []
    for host in sorted(network.hosts, key=lambda h: (h.mac_address, h.port_id)):
        ips = [f.ip_address for f in host.fixed_ips if _leased(served.get(f.subnet_id))]
        if not ips:
            continue
        shown = [f"[{ip}]" if ":" in ip else ip for ip in ips]
        lines.append(",".join([host.mac_address, *shown, host.hostname]))
    return "".join(line + "\n" for line in lines)


def tags_file(network: DhcpNetwork) -> str:
    """``dhcp-mac=set:port-<id>,<mac>`` for each port that has options of its own."""
    lines = [
        f"dhcp-mac=set:{port_tag(h.port_id)},{h.mac_address}"
        for h in sorted(network.hosts, key=lambda h: h.port_id)
        if h.extra_dhcp_opts
    ]
    return "".join(line + "\n" for line in lines)


def _leased(subnet: DhcpSubnet | None) -> bool:
    """A fixed IP is handed out by DHCP on IPv4 subnets and stateful DHCPv6 ones."""
    if subnet is None:
        return False
    return subnet.ip_version == 4 or subnet.ipv6_address_mode in ("dhcpv6-stateful", None)


def opts_file(network: DhcpNetwork) -> str:
    """The subnets' own options, then each port's ``extra_dhcp_opts``."""
    lines: list[str] = []
    for subnet in network.subnets:
        lines += _subnet_options(subnet)
    for host in sorted(network.hosts, key=lambda h: h.port_id):
        lines += [_port_option(host, opt) for opt in host.extra_dhcp_opts]
    return "".join(line + "\n" for line in lines)


def _subnet_options(subnet: DhcpSubnet) -> list[str]:
    tag = f"tag:{subnet_tag(subnet.id)}"
    if subnet.ip_version == 6:
        if subnet.dns_nameservers:
            shown = ",".join(f"[{ip}]" for ip in subnet.dns_nameservers)
            return [f"{tag},option6:dns-server,{shown}"]
        return []
    lines = [f"{tag},option:router" + (f",{subnet.gateway_ip}" if subnet.gateway_ip else "")]
    if subnet.dns_nameservers:
        lines.append(f"{tag},option:dns-server,{','.join(subnet.dns_nameservers)}")
    routes = [(r.destination, r.nexthop) for r in subnet.host_routes]
    if routes:
        if subnet.gateway_ip:  # option 121 replaces the router option: keep the default
            routes.append(("0.0.0.0/0", subnet.gateway_ip))
        shown = ",".join(f"{dest},{hop}" for dest, hop in routes)
        lines.append(f"{tag},option:classless-static-route,{shown}")
    return lines


def _port_option(host: DhcpHost, opt: DhcpOption) -> str:
    """``tag:port-<id>[,tag:…],option[6]:<name>|<number>,<value>``."""
    *tags, name = [part.strip() for part in opt.opt_name.split(",")]
    family = "option6" if opt.ip_version == 6 else "option"
    key = name if name.isdigit() else f"{family}:{name}"
    if name.isdigit() and opt.ip_version == 6:
        key = f"option6:{name}"
    return ",".join([f"tag:{port_tag(host.port_id)}", *tags, key, opt.opt_value])
