"""The network service: its parts, wired together once.

Each part is a module of its own and owns one responsibility:

* ``networks`` (``networks.py``) — networks and their VLAN segments;
* ``subnets`` (``subnets.py``) — subnets (a port's addresses: ``ipam.py``, from ``ports``);
* ``ports`` (``ports.py``) — network ports and their binding to a NIC host's agent;
* ``secgroups`` (``secgroups.py``) — security groups and rules;
* ``tags`` (``tags.py``) — the tags of networks, ports and security groups;
* ``agents`` (``agents.py``) — agents' heartbeats and which agent serves a NIC host;
* ``feed`` (``agentfeed.py``) — the agent feed: desired state, reports,
  boot-gate verifications, and the waits of the bare-metal side.

The parts need each other (a port binds to the agent serving its host; a
heartbeat binds the ports of the hosts it gained; a change wakes the agents
and waiters through one notifier), so this one object builds them and passes
each the callbacks it needs; the routes and the embedded client reach a part
as ``service.<part>``.  Every method runs its own transaction(s) and raises
``metalnic.errors``; the HTTP layer (``network/api``) only parses and renders.
"""

from __future__ import annotations

from metalnic.db.session import Database
from metalnic.network import feed
from metalnic.network.agentfeed import AgentFeed
from metalnic.network.agents import Agents
from metalnic.network.networks import Networks
from metalnic.network.ports import Ports
from metalnic.network.secgroups import SecurityGroups
from metalnic.network.subnets import Subnets
from metalnic.network.tags import Tags
from metalnic.settings import Settings


class NetworkService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.notifier = feed.Notifier()
        self.secgroups = SecurityGroups(db, self._after_change)
        self.networks = Networks(settings, db)
        self.tags = Tags(db)
        self.subnets = Subnets(db, self._after_change)
        self.ports = Ports(settings, db, self.secgroups, self._after_change)
        self.agents = Agents(settings, db, self.ports.rebind_hosts)
        self.feed = AgentFeed(db, self.notifier, self.secgroups, self._after_change)

    def _after_change(self, hosts: set[str]) -> None:
        """After the commit of a change to the feeds of ``hosts``: wake their waiters."""
        if hosts:
            self.notifier.notify()
