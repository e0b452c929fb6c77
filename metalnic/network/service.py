"""The network service: its parts, wired together once.

Each part is a module of its own and owns one responsibility:

* ``networks`` (``networks.py``) — networks and their VLAN segments;
* ``subnets`` (``subnets.py``) — subnets (a port's addresses: ``ipam.py``, from ``ports``);
* ``ports`` (``ports.py``) — network ports and their binding to a NIC host's agent;
* ``secgroups`` (``secgroups.py``) — security groups and rules;
* ``tags`` (``tags.py``) — the tags of networks, subnets, ports and security groups;
* ``agents`` (``agents.py``) — agents' heartbeats and which agent serves a NIC host;
* ``feed`` (``agentfeed.py``) — the agent feed: desired state, reports,
  boot-gate verifications, and the waits of the bare-metal side;
* ``dhcp`` (``dhcpfeed.py``) — the DHCP agents' feed: the networks each serves.

The parts need each other (a port binds to the agent serving its host; a
heartbeat binds the ports of the hosts it gained; a change wakes the agents
and waiters through one notifier), so this one object builds them and passes
each the callbacks it needs; the routes and the embedded client reach a part
as ``service.<part>``.  Every method runs its own transaction(s) and raises
``metalnic.errors``; the HTTP layer (``network/api``) only parses and renders.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.db.session import Database
from metalnic.network import dhcpports, feed
from metalnic.network.agentfeed import AgentFeed
from metalnic.network.agents import Agents
from metalnic.network.dhcpfeed import DhcpFeed
from metalnic.network.networks import Networks
from metalnic.network.ports import Ports
from metalnic.network.secgroups import SecurityGroups
from metalnic.network.subnets import Subnets
from metalnic.network.tags import Tags
from metalnic.settings import Settings

# The network service itself, making and addressing DHCP ports (never a caller's right).
ADMIN = Principal("network-service", frozenset({"admin"}), None)


class NetworkService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.notifier = feed.Notifier()
        self.secgroups = SecurityGroups(db, self._after_change)
        self.networks = Networks(settings, db, self._after_change)
        self.tags = Tags(db)
        self.subnets = Subnets(db, self._after_change, self._dhcp_follows)
        self.ports = Ports(settings, db, self.secgroups, self._after_change)
        self.agents = Agents(settings, db, self.ports.rebind_hosts)
        self.feed = AgentFeed(db, self.notifier, self.secgroups, self._after_change)
        self.dhcp = DhcpFeed(db, self.notifier)
        self.agents.on_dhcp_agent = dhcpports.schedule_waiting
        self.agents.on_dhcp_agent_gone = lambda s, agent: dhcpports.reschedule_from(
            s, agent, settings.agent_down_time
        )
        self.agents.notify = self._after_change

    def _dhcp_follows(self, s: Session, network_id: str) -> set[str]:
        """A network's subnets changed: its DHCP port follows (``dhcpports.sync``)."""
        return dhcpports.sync(s, ADMIN, network_id, self.settings.agent_down_time)

    def _after_change(self, hosts: set[str]) -> None:
        """After the commit of a change to the feeds of ``hosts``: wake their waiters."""
        if hosts:
            self.notifier.notify()
