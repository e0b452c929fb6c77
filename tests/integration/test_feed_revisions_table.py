"""Every mutation bumps exactly the feeds whose desired document it changes.

One table of mutations (ports, subnets, networks, DHCP agents), run against one lab
of two networks, on SQLite and PostgreSQL: for every feed (each NIC host's, each
DHCP agent's ``dhcp:<host>``) the desired document is read before and after,
without its revision, and the feed's revision must have moved iff its document
changed.  A missed bump leaves an agent programming stale state until its next
full pass; a needless one wakes it for nothing.  Some rows also name the feeds
that must change (``CHANGES``).

The lab: network A (a DHCP-enabled IPv4 subnet, a DHCP-disabled one, a SLAAC IPv6
subnet; served by DHCP agent d1) with ports on nic-1 and nic-2, an unbound port
and one administratively down; network B (the same CIDR, served by d1 too) with a
port on nic-3; DHCP agent d2 serves nothing yet.  One NIC agent serves nic-1..nic-4.
All ports are in their project's default group (ingress from its members).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from metalnic.contract import agent as ac
from metalnic.contract import dhcp as dc
from metalnic.db.session import Database
from metalnic.embedded_network import CONDUCTOR
from metalnic.network.inputs import (
    NetworkCreate,
    NetworkUpdate,
    PortCreate,
    PortUpdate,
    SubnetCreate,
    SubnetUpdate,
)
from metalnic.network.models import FeedRevision, NetworkPort
from metalnic.network.service import NetworkService
from metalnic.settings import Settings
from tests import dbfixtures

db, postgres = dbfixtures.db, dbfixtures.postgres  # the fixtures, on SQLite and PostgreSQL

NIC_HOSTS = ("nic-1", "nic-2", "nic-3", "nic-4")
DHCP_HOSTS = ("d1", "d2")


@dataclass
class Lab:
    service: NetworkService
    ids: dict[str, str] = field(default_factory=dict)

    def port(self, name: str, net: str, host: str | None, **extra: Any) -> None:
        body: dict[str, Any] = {"network_id": self.ids[net], "name": name, **extra}
        if host:
            body |= {
                "binding:vnic_type": "smart-nic",
                "binding:host_id": host,
                "binding:profile": {
                    "local_link_information": [{"hostname": host, "port_id": f"pf0{name}"}]
                },
            }
        made = self.service.ports.create(CONDUCTOR, PortCreate.parse(body, ("port",)))
        self.ids[name] = made["id"]

    def subnet(self, name: str, net: str, **body: Any) -> None:
        made = self.service.subnets.create(
            CONDUCTOR, SubnetCreate.parse({"network_id": self.ids[net], **body})
        )
        self.ids[name] = made["id"]

    def update_port(self, name: str, /, **change: Any) -> None:
        self.service.ports.update(CONDUCTOR, self.ids[name], PortUpdate.parse(change))

    def update_subnet(self, name: str, /, **change: Any) -> None:
        self.service.subnets.update(CONDUCTOR, self.ids[name], SubnetUpdate.parse(change))

    def dhcp_port(self, net: str) -> str:
        with self.service.db.transaction() as s:
            return s.scalars(
                select(NetworkPort.id).where(
                    NetworkPort.network_id == self.ids[net],
                    NetworkPort.device_owner == dc.DHCP_OWNER,
                )
            ).one()

    def beat(self, host: str, dhcp: bool = False) -> None:
        body: dict[str, Any] = {"host": host}
        if dhcp:
            body |= {"agent_type": dc.DHCP_AGENT, "binary": dc.DHCP_BINARY}
        else:
            body["configurations"] = {"nic_hosts": list(NIC_HOSTS), "smartnic": True}
        self.service.agents.heartbeat(CONDUCTOR, ac.Heartbeat.model_validate(body))


def _lab(db: Database) -> Lab:
    lab = Lab(NetworkService(Settings(), db))
    lab.beat("a1")
    lab.beat("d1", dhcp=True)
    for net in ("A", "B"):
        lab.ids[net] = lab.service.networks.create(CONDUCTOR, NetworkCreate(name=net))["id"]
    # Automatic addresses come from .100-.199 at random: the table names .77, .78, .250.
    lab.subnet(
        "a4",
        "A",
        ip_version=4,
        cidr="10.1.0.0/24",
        dns_nameservers=["10.1.0.53"],
        allocation_pools=[{"start": "10.1.0.100", "end": "10.1.0.199"}],
    )
    lab.subnet("a4off", "A", ip_version=4, cidr="10.2.0.0/24", enable_dhcp=False)
    lab.subnet("a6", "A", ip_version=6, cidr="fd00:1::/64", ipv6_address_mode="slaac")
    lab.subnet("b4", "B", ip_version=4, cidr="10.1.0.0/24")  # the same CIDR: isolated
    lab.beat("d2", dhcp=True)  # live, serving nothing: the next network goes to it
    lab.port("p1", "A", "nic-1", fixed_ips=[{"subnet_id": lab.ids["a4"]}])
    lab.port("p2", "A", "nic-2", allowed_address_pairs=[{"ip_address": "10.1.0.200"}])
    lab.port("loose", "A", None)
    lab.port("down", "A", "nic-2", admin_state_up=False)
    lab.port("p3", "B", "nic-3")
    return lab


def documents(lab: Lab) -> dict[str, Any]:
    """Every feed's desired document without its revision, and every feed's revision."""
    s = lab.service
    with s.db.transaction() as t:
        known = set(t.scalars(select(FeedRevision.host)))
    # The DHCP agents' host names as NIC hosts too: a bump of one would be a stray.
    keys = known | set(NIC_HOSTS) | set(DHCP_HOSTS) | {dc.feed_key(h) for h in DHCP_HOSTS}
    out: dict[str, Any] = {}
    for key in sorted(keys):
        if key.startswith("dhcp:"):
            doc: dict[str, Any] = dict(s.dhcp.desired(CONDUCTOR, key.removeprefix("dhcp:")))
        else:
            doc = dict(s.feed.desired(CONDUCTOR, key))
            doc.pop("applied")
        out[key] = (doc.pop("revision"), doc)
    return out


Mutation = Callable[[Lab], None]


def _delete_port(name: str) -> Mutation:
    return lambda lab: lab.service.ports.delete(CONDUCTOR, lab.ids[name])


def _dhcp_port_moves(lab: Lab) -> None:
    lab.service.ports.update(
        CONDUCTOR, lab.dhcp_port("A"), PortUpdate.parse({"binding:host_id": "d2"})
    )


def _dhcp_port_readdressed(lab: Lab) -> None:
    change = {"fixed_ips": [{"subnet_id": lab.ids["a4"], "ip_address": "10.1.0.250"}]}
    lab.service.ports.update(CONDUCTOR, lab.dhcp_port("A"), PortUpdate.parse(change))


def _dhcp_agent_deleted(lab: Lab) -> None:
    agents = lab.service.agents.list(CONDUCTOR, {"host": "d1"})
    lab.service.agents.delete(CONDUCTOR, agents[0]["id"])


def _v4_of(lab: Lab, name: str) -> list[dict[str, str]]:
    """The port's address on subnet a4, as a ``fixed_ips`` entry that keeps it."""
    held = lab.service.ports.show(CONDUCTOR, lab.ids[name])["fixed_ips"]
    return [dict(f) for f in held if f["subnet_id"] == lab.ids["a4"]]


def _new_network(lab: Lab) -> None:
    lab.ids["C"] = lab.service.networks.create(CONDUCTOR, NetworkCreate(name="C"))["id"]


def _emptied_b(lab: Lab) -> None:
    lab.service.ports.delete(CONDUCTOR, lab.ids["p3"])


# A mutation, or (what makes its starting point, the mutation).
MUTATIONS: dict[str, Mutation | tuple[Mutation, Mutation]] = {
    # ports
    "port create, bound": lambda lab: lab.port("new", "A", "nic-4"),
    "port create, unbound": lambda lab: lab.port("new", "A", None),
    "port create, admin down": lambda lab: lab.port("new", "A", "nic-4", admin_state_up=False),
    "port create on B": lambda lab: lab.port("new", "B", "nic-1"),
    "port rename": lambda lab: lab.update_port("p1", name="renamed"),
    "port description of unbound": lambda lab: lab.update_port("loose", description="x"),
    "port fixed_ips": lambda lab: lab.update_port(
        "p1", fixed_ips=[{"subnet_id": lab.ids["a4"], "ip_address": "10.1.0.77"}]
    ),
    "port fixed_ips on the non-DHCP subnet": lambda lab: lab.update_port(
        "p1", fixed_ips=[*_v4_of(lab, "p1"), {"subnet_id": lab.ids["a4off"]}]
    ),
    "port fixed_ips of unbound": lambda lab: lab.update_port(
        "loose", fixed_ips=[{"subnet_id": lab.ids["a4"], "ip_address": "10.1.0.78"}]
    ),
    "port fixed_ips unchanged": lambda lab: lab.update_port("p1", fixed_ips=_v4_of(lab, "p1")),
    "port mac of unbound": lambda lab: lab.update_port("loose", mac_address="fa:16:3e:00:00:99"),
    "port address pairs": lambda lab: lab.update_port(
        "p2", allowed_address_pairs=[{"ip_address": "10.1.0.201"}]
    ),
    "port address pairs unchanged": lambda lab: lab.update_port(
        "p2", allowed_address_pairs=[{"ip_address": "10.1.0.200"}]
    ),
    "port extra_dhcp_opts": lambda lab: lab.update_port(
        "p1", extra_dhcp_opts=[{"opt_name": "bootfile-name", "opt_value": "x.efi"}]
    ),
    "port extra_dhcp_opts of admin-down": lambda lab: lab.update_port(
        "down", extra_dhcp_opts=[{"opt_name": "bootfile-name", "opt_value": "x.efi"}]
    ),
    "port device_id": lambda lab: lab.update_port("p1", device_id="instance-1"),
    "port leaves its groups": lambda lab: lab.update_port("p1", security_groups=[]),
    "port security off": lambda lab: lab.update_port(
        "p1", port_security_enabled=False, security_groups=[]
    ),
    "port admin down": lambda lab: lab.update_port("p1", admin_state_up=False),
    "port admin up": lambda lab: lab.update_port("down", admin_state_up=True),
    "port moves host": lambda lab: lab.update_port(
        "p1",
        **{
            "binding:host_id": "nic-4",
            "binding:profile": {"local_link_information": [{"hostname": "nic-4", "port_id": "x"}]},
        },
    ),
    "port unbound": lambda lab: lab.update_port("p1", **{"binding:host_id": ""}),
    "port delete, bound": _delete_port("p1"),
    "port delete, unbound": _delete_port("loose"),
    "port delete, admin down": _delete_port("down"),
    # subnets
    "subnet create, DHCP": lambda lab: lab.subnet("new", "A", ip_version=4, cidr="10.3.0.0/24"),
    "subnet create, no DHCP": lambda lab: lab.subnet(
        "new", "A", ip_version=4, cidr="10.3.0.0/24", enable_dhcp=False
    ),
    # Every port already on A gets its EUI-64 address (the DHCP port: on DHCP subnets).
    "subnet create, SLAAC": lambda lab: lab.subnet(
        "new6", "A", ip_version=6, cidr="fd00:2::/64", ipv6_address_mode="slaac"
    ),
    "subnet create, DHCPv6-stateless": lambda lab: lab.subnet(
        "new6", "A", ip_version=6, cidr="fd00:2::/64", ipv6_address_mode="dhcpv6-stateless"
    ),
    "subnet create, DHCPv6-stateful": lambda lab: lab.subnet(
        "new6", "A", ip_version=6, cidr="fd00:2::/64", ipv6_address_mode="dhcpv6-stateful"
    ),
    "subnet create on a new network": (
        _new_network,
        lambda lab: lab.subnet("new", "C", ip_version=4, cidr="10.3.0.0/24"),
    ),
    "subnet rename": lambda lab: lab.update_subnet("a4", name="renamed"),
    "subnet gateway": lambda lab: lab.update_subnet("a4", gateway_ip=None),
    "subnet dns": lambda lab: lab.update_subnet("a4", dns_nameservers=["10.1.0.54"]),
    "subnet host routes": lambda lab: lab.update_subnet(
        "a4", host_routes=[{"destination": "10.9.0.0/16", "nexthop": "10.1.0.1"}]
    ),
    "subnet pools": lambda lab: lab.update_subnet(
        "a4", allocation_pools=[{"start": "10.1.0.2", "end": "10.1.0.250"}]
    ),
    "subnet dns of a non-DHCP subnet": lambda lab: lab.update_subnet(
        "a4off", dns_nameservers=["10.2.0.53"]
    ),
    "subnet DHCP off": lambda lab: lab.update_subnet("a4", enable_dhcp=False),
    "subnet DHCP on": lambda lab: lab.update_subnet("a4off", enable_dhcp=True),
    "subnet DHCP off, the last": lambda lab: lab.update_subnet("b4", enable_dhcp=False),
    "subnet delete, SLAAC": lambda lab: lab.service.subnets.delete(CONDUCTOR, lab.ids["a6"]),
    "subnet delete, non-DHCP": lambda lab: lab.service.subnets.delete(CONDUCTOR, lab.ids["a4off"]),
    # networks and DHCP agents
    "network delete": (
        _emptied_b,
        lambda lab: lab.service.networks.delete(CONDUCTOR, lab.ids["B"]),
    ),
    "network rename": lambda lab: lab.service.networks.update(
        CONDUCTOR, lab.ids["A"], NetworkUpdate(name="renamed")
    ),
    "network MTU": lambda lab: lab.service.networks.update(
        CONDUCTOR, lab.ids["A"], NetworkUpdate(mtu=9000)
    ),
    "DHCP port moves agent": _dhcp_port_moves,
    "DHCP port address": _dhcp_port_readdressed,
    "DHCP agent deleted": _dhcp_agent_deleted,
}


# Some rows also name the feeds that must change (the rule holds only if the documents
# show what the agents act on).
CHANGES = {
    "port fixed_ips": {"nic-1", "dhcp:d1"},
    "port fixed_ips of unbound": {"dhcp:d1"},
    "port address pairs": {"nic-2"},
    "port extra_dhcp_opts": {"dhcp:d1"},
    "port moves host": {"nic-1", "nic-4"},
    "subnet dns": {"dhcp:d1"},
    "subnet DHCP on": {"nic-1", "nic-2", "dhcp:d1"},
    "subnet create, SLAAC": {"nic-1", "nic-2", "dhcp:d1"},
    "subnet create, DHCPv6-stateless": {"nic-1", "nic-2", "dhcp:d1"},
    "DHCP port address": {"nic-1", "nic-2", "dhcp:d1"},
    "DHCP port moves agent": {"dhcp:d1", "dhcp:d2"},
    "DHCP agent deleted": {"dhcp:d1", "dhcp:d2"},
    "network MTU": {"dhcp:d1"},
    "port device_id": {"nic-1"},
    "port leaves its groups": {"nic-1", "nic-2", "nic-3"},  # their rules name the default group
    "port rename": set(),
    "subnet rename": set(),
    "network rename": set(),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_mutation_bumps_exactly_the_feeds_it_changes(db: Database, name: str) -> None:
    lab = _lab(db)
    step = MUTATIONS[name]
    prepare, mutate = step if isinstance(step, tuple) else (None, step)
    if prepare is not None:
        prepare(lab)
    before = documents(lab)
    mutate(lab)
    after = documents(lab)
    wrong = {}
    moved = {k for k in after if after[k][0] > before.get(k, (0, None))[0]}
    assert moved == CHANGES.get(name, moved), moved
    for key in sorted(before.keys() | after.keys()):
        # A feed first seen after the mutation was a feed with nothing in it.
        (rev0, doc0), (rev1, doc1) = before.get(key, (0, None)), after[key]
        changed = (
            doc0 != doc1 if doc0 is not None else bool(doc1.get("ports") or doc1.get("networks"))
        )
        if changed != (rev1 > rev0):
            wrong[key] = "changed, not bumped" if changed else f"bumped {rev0}->{rev1}, unchanged"
    assert not wrong, wrong
