"""Network ports: create, read, update, delete, and their binding to a NIC host's agent.

Each method runs its own transaction(s) and raises ``metalnic.errors``; bodies
arrive as the request models of ``network/inputs.py``.  A
write bumps, in its own transaction, exactly the feeds whose desired document it
changes (``network/portfeeds.py``: the port's NIC host, its network's DHCP agent,
and for a DHCP port every NIC host on the network) and wakes waiters after the
commit (``after_change``).  Which agent
plugs a port is decided by ``network/binding.py`` from the live agent that
serves its NIC host (``network/agents.py``); ``bind`` writes that decision.
A port's addresses (``fixed_ips``) are claimed and released by
``network/ipam.py`` in the port's own transaction.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.orm import Session

from metalnic import ids, redact
from metalnic.auth import Principal
from metalnic.db.session import Database
from metalnic.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NetworkMacInUse,
    NetworkPortNotFound,
    StaleRevision,
)
from metalnic.jsontypes import JSONObject
from metalnic.network import (
    access,
    agents,
    feed,
    ipam,
    portattrs,
    portfeeds,
    secgroups,
    tags,
    views,
)
from metalnic.network.access import require_writer
from metalnic.network.binding import bind_decision
from metalnic.network.inputs import PortCreate, PortUpdate
from metalnic.network.models import IPAllocation, Network, NetworkPort, PortTag
from metalnic.settings import Settings

log = logging.getLogger(__name__)


def _profile(value: JSONObject) -> JSONObject:
    if redact.holds_private_key(value):
        # It is shown to readers of the port and sent to agents: a key has no place in it.
        raise InvalidInput(
            "binding:profile contains a private key; store only certificates "
            "(the private key stays on the NIC)."
        )
    return value


def _mac() -> str:
    tail = secrets.token_bytes(3)
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


class Ports:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        secgroups: secgroups.SecurityGroups,
        after_change: Callable[[set[str]], None],
    ) -> None:
        self.db = db
        self.down_time = settings.agent_down_time
        self.max_address_pairs = settings.max_allowed_address_pair
        self.secgroups = secgroups
        self.after_change = after_change

    def create(self, who: Principal, body: PortCreate) -> views.PortView:
        require_writer(who)
        given = body.values()
        access.check_device_owner(who, given, None)
        if ("binding:profile" in given or "binding:host_id" in given) and not who.is_admin:
            raise Forbidden(
                "Setting binding:profile or binding:host_id is reserved to admins "
                "(Neutron's default policy)."
            )
        profile = _profile(given.get("binding:profile") or {})
        with self.db.transaction() as s:
            net = access.visible_network(s, who, body.network_id)
            access.check_fixed_ips(who, net, body.fixed_ips)
            port = self._new_port(s, who, body, net, profile)
            # Bound before it is written (one INSERT, no UPDATE after it): no one else
            # sees the port before the commit, so nothing can race the decision.  The
            # same decision and feed bumps as every rebind (``_decide``); one feed
            # revision per host for the new port and its memberships (an agent woken
            # twice would program the NIC twice for one port).
            with s.no_autoflush:
                hosts = self._decide(s, port, net, {g.id for g in port.security_groups}, new=True)
            # Claimed after the port's INSERT (an allocation names its port), in the same
            # transaction: a refused address leaves no port behind.
            made = ipam.Allocator(s, who, port).allocate(body.fixed_ips)
            hosts |= portfeeds.of_new(s, port)  # its DHCP agent learns the host
            view = views.port(port, fixed_ips=list(ipam.shown(made)))
        self.after_change(hosts)
        return view

    def _new_port(
        self, s: Session, who: Principal, body: PortCreate, net: Network, profile: JSONObject
    ) -> NetworkPort:
        """The row of a new port on ``net``: its MAC free there (one is made when none is
        given), in the caller's project (or the one an admin names; else the network's),
        port security as given or as the network's, and its groups (the project's
        default group when none are given, none without port security); unbound, and
        not added to the session yet (``_decide`` adds it once bound)."""
        mac = ids.normalize_mac(body.mac_address) if body.mac_address else _mac()
        self._check_mac_free(s, net.id, mac)
        secured = net.port_security_enabled
        if "port_security_enabled" in body.model_fields_set:
            secured = body.port_security_enabled
        port = NetworkPort(
            id=ids.new_uuid(),
            name=body.name,
            description=body.description,
            network_id=net.id,
            project_id=access.owner_project(
                who, body.project_id or body.tenant_id, default=net.project_id
            ),
            mac_address=mac,
            admin_state_up=body.admin_state_up,
            device_id=body.device_id,
            device_owner=body.device_owner,
            vnic_type=body.vnic_type,
            host_id=body.host_id,
            profile=profile,
            port_security_enabled=secured,
            vif_type="unbound",
            vif_details={},
            status="DOWN",
            status_reason=None,
            allowed_address_pairs=portattrs.address_pairs(
                body.allowed_address_pairs, mac, secured, self.max_address_pairs
            ),
            extra_dhcp_opts=portattrs.dhcp_opts([], body.extra_dhcp_opts or []),
        )
        port.security_groups = self.secgroups.for_port(
            s, port.project_id, body.security_groups, port.port_security_enabled
        )
        port.tag_rows = [PortTag(resource_id=port.id, tag=t) for t in sorted(body.tags)]
        return port

    @staticmethod
    def _check_mac_free(s: Session, network_id: str, mac: str) -> None:
        if s.scalar(
            select(NetworkPort.id).where(
                NetworkPort.network_id == network_id, NetworkPort.mac_address == mac
            )
        ):
            raise NetworkMacInUse(
                f"Unable to complete operation for network {network_id}. The mac address {mac} "
                "is in use."
            )

    def _port(self, s: Session, port_id: str) -> NetworkPort:
        port = s.get(NetworkPort, port_id)
        if port is None:
            raise NetworkPortNotFound(port_id)
        port.security_groups  # noqa: B018 - load before the session closes
        return port

    def show(self, who: Principal, port_id: str) -> views.PortView:
        """A port's own view, read as a list reads its rows: one query with its groups
        and tags (the ORM object and its relationships took three), and the same
        rule of who sees it (``access.ports_filter``, as ``access.visible_port``)."""
        found = self._listed_one(port_id, access.ports_filter(who))
        if found is None:
            raise NetworkPortNotFound(str(port_id))
        return found

    def find(self, port_id: str) -> views.PortView | None:
        """The port, for the control plane (no policy), or None when it is gone."""
        return self._listed_one(port_id, None)

    def _listed_one(self, port_id: str, where: Any) -> views.PortView | None:
        stmt = select(*views.LISTED_PORT).where(NetworkPort.id == port_id)
        if where is not None:
            stmt = stmt.where(where)
        with self.db.transaction() as s:
            rows = s.connection().execute(stmt).all()
        return views.listed_ports(rows)[0] if rows else None

    def list(
        self,
        who: Principal,
        filters: dict[str, str],
        fixed_ips: Mapping[str, list[str]] | None = None,
    ) -> list[views.PortView]:
        """``fixed_ips``: Neutron's ``fixed_ips=ip_address=…``/``subnet_id=…`` filters,
        by key: a port matches when one of its addresses has one of the values of each key;
        and ``ip_address_substr=…`` (``ip-substring-filtering``): when one of its
        addresses, any, contains one of the values."""
        # Plain rows with their groups: an ORM object per port cost more than the
        # query itself (docs/benchmarks.md).
        stmt = select(*views.LISTED_PORT).order_by(NetworkPort.created_at, NetworkPort.id)
        where = access.ports_filter(who)
        if where is not None:
            stmt = stmt.where(where)
        for key, column in (
            ("network_id", NetworkPort.network_id),
            ("id", NetworkPort.id),
            ("device_id", NetworkPort.device_id),
            ("device_owner", NetworkPort.device_owner),
            ("mac_address", NetworkPort.mac_address),
            ("binding:host_id", NetworkPort.host_id),
            ("status", NetworkPort.status),
            ("name", NetworkPort.name),
        ):
            if key in filters:
                stmt = stmt.where(column == filters[key])
        stmt = tags.filtered(stmt, filters, "ports", NetworkPort.id)
        if fixed_ips:
            stmt = stmt.where(_holding(fixed_ips))
        with self.db.transaction() as s:
            # Core rows (the session's connection): the ORM's loading of plain rows
            # cost as much as fetching them.
            rows = s.connection().execute(stmt).all()
        return views.listed_ports(rows)

    def update(
        self, who: Principal, port_id: str, change: PortUpdate, revision: int | None = None
    ) -> views.PortView:
        """Neutron's PUT of a port: the attributes given, in one transaction that bumps
        the feeds of the NIC hosts concerned; then the port is bound again."""
        require_writer(who)
        body = change.values()  # the attributes given (each already of its type)
        if ({"binding:profile", "binding:host_id", "mac_address"} & body.keys()) and not (
            who.is_admin
        ):
            raise Forbidden("Changing the binding or the MAC address is reserved to admins.")
        with self.db.transaction() as s:
            port = access.writable_port(s, who, port_id)
            port.require_revision(revision)
            access.check_device_owner(who, body, port)
            if "fixed_ips" in body:
                access.check_fixed_ips(who, s.get_one(Network, port.network_id), change.fixed_ips)
            old_host = port.host_id
            before = portfeeds.parts(s, port)
            for key, column in _COPIED:
                if key in body:
                    setattr(port, column, body[key])
            old_mac = port.mac_address
            watchers = self._change_mac(s, port, body, old_host)
            portattrs.update(port, change, self.max_address_pairs)
            if "binding:profile" in body:
                port.profile = _profile(body["binding:profile"])
            watchers |= self._change_groups(s, port, body)
            if "fixed_ips" in body or port.mac_address != old_mac:
                # Replaced in place (a new MAC: new SLAAC addresses too); the port's new
                # revision bumps its host's feed below.
                allocator = ipam.Allocator(s, who, port)
                if "fixed_ips" in body:
                    allocator.replace(change.fixed_ips)
                if port.mac_address != old_mac:
                    allocator.follow_mac()
            if port.host_id != old_host:
                port.status = "DOWN"  # until its agent on the new host reports it plugged
            port.revision_number += 1
            after = portfeeds.parts(s, port)
            hosts = watchers | portfeeds.bump_changed(s, port.network_id, before, after, watchers)
        self.after_change(hosts)
        self.bind(port_id)
        with self.db.transaction() as s:
            return views.port(self._port(s, port_id))

    def _change_mac(
        self, s: Session, port: NetworkPort, body: Mapping[str, object], old_host: str
    ) -> set[str]:
        """A new MAC address: refused while the port stays bound (its agent programmed
        the old one) or when another port of the network has it.  Members' MACs are what
        remote-group rules match: returns the watchers of the port's groups to bump."""
        if "mac_address" not in body:
            return set()
        mac = ids.normalize_mac(str(body["mac_address"]))
        if mac == port.mac_address:
            return set()
        if port.vif_type == "ovs" and body.get("binding:host_id", old_host):
            raise Conflict(f"Port {port.id} is bound: unbind it before changing its MAC address.")
        self._check_mac_free(s, port.network_id, mac)
        port.mac_address = mac
        return self.secgroups.touch_watchers(s, {g.id for g in port.security_groups})

    def _change_groups(self, s: Session, port: NetworkPort, body: Mapping[str, object]) -> set[str]:
        """New groups, or port security switched: the groups are checked again (none
        without port security); returns the watchers of the groups joined or left."""
        if "security_groups" not in body and "port_security_enabled" not in body:
            return set()
        before = [g.id for g in port.security_groups]
        port.security_groups = self.secgroups.for_port(
            s, port.project_id, body.get("security_groups", before), port.port_security_enabled
        )
        moved = set(before) ^ {g.id for g in port.security_groups}
        return self.secgroups.touch_watchers(s, moved)

    def delete(self, who: Principal, port_id: str, revision: int | None = None) -> int | None:
        """Delete; returns the feed revision of its NIC host after the deletion (or None)."""
        require_writer(who)
        with self.db.transaction() as s:
            port = access.writable_port(s, who, port_id)
            port.require_revision(revision)
            access.check_not_dhcp_port(who, port)
            before = portfeeds.parts(s, port)
            groups = {g.id for g in port.security_groups}
            network_id = port.network_id
            s.delete(port)
            s.flush()
            watchers = self.secgroups.touch_watchers(s, groups)
            hosts = watchers | portfeeds.bump_changed(
                s, network_id, before, portfeeds.NONE, watchers
            )
            host = before.nic_host  # the feed that listed it, if any
            revision = feed.revisions(s, host)[0] if host else None
        self.after_change(hosts)
        return revision

    # --- binding ----------------------------------------------------------------------

    def bind(self, port_id: str, members_of: set[str] | None = None) -> None:
        """Decide the binding from one read of the port, its network and the live agents
        and write it in the same transaction; a concurrent change of the port (its
        revision moved on) makes it read and decide again.  ``members_of``: groups the
        port just joined (their watchers' feeds bump too)."""

        def decide_and_write(s: Session) -> set[str]:
            port = self._port(s, port_id)
            return self._decide(s, port, s.get_one(Network, port.network_id), members_of)

        try:
            hosts = self.db.retry(decide_and_write)
        except StaleRevision:
            # Still losing after every retry: other requests keep changing the port,
            # and each of them binds it after its own commit, from a newer read.
            log.warning("port %s kept changing while it was being bound", port_id)
            return
        self.after_change(hosts)

    def _decide(
        self,
        s: Session,
        port: NetworkPort,
        net: Network,
        members_of: set[str] | None,
        new: bool = False,
    ) -> set[str]:
        """Decide and write the binding of ``port`` (read in ``s``, or ``new``: not
        written yet, then added); bump the feeds of its host and of the watchers of
        ``members_of``.  Returns the hosts bumped."""
        agent = agents.serving(s, port.host_id, self.down_time) if port.host_id else None
        decision = bind_decision(port, net, agent)
        before = _binding(port)
        listed = port.vif_type == "ovs"  # in its NIC host's feed before this decision
        port.vif_type, port.vif_details = decision.vif_type, decision.vif_details
        if decision.vif_type == "unbound":
            port.status, port.status_reason = "DOWN", None
        elif decision.vif_type == "binding_failed":
            port.status_reason = decision.reason
        elif decision.vif_type == "ovs":
            port.status_reason = None
            if port.status == "ERROR":
                port.status = "DOWN"
        if new:
            s.add(port)
            s.flush()  # one INSERT, bound already (its first revision: models.py)
        changed = new or _binding(port) != before
        if changed and not new:  # an unchanged binding is no new revision
            port.revision_number += 1
        hosts = self.secgroups.touch_watchers(s, members_of or set())
        # Its NIC host's feed lists it while it is bound (ovs): bumped when that entry
        # changed (a rebind that decides the same is no change for the agent).
        shown = changed and (listed or decision.vif_type == "ovs")
        if port.host_id and shown and port.host_id not in hosts:
            feed.bump_all(s, {port.host_id})
            hosts.add(port.host_id)
        s.flush()
        return hosts

    def rebind_hosts(self, hosts: set[str]) -> None:
        with self.db.transaction() as s:
            ids_ = list(
                s.scalars(
                    select(NetworkPort.id).where(
                        NetworkPort.host_id.in_(hosts), NetworkPort.vnic_type == "smart-nic"
                    )
                )
            )
        for port_id in ids_:
            self.bind(port_id)


def _holding(wanted: Mapping[str, list[str]]) -> Any:
    """Ports with an address that matches every key of ``wanted`` (any of its values),
    and, as Neutron, an address (maybe another) containing one of ``ip_address_substr``
    (SQL ``LIKE '%…%'``, its wildcards unescaped as Neutron's)."""
    clauses = []
    if wanted.get("ip_address") or wanted.get("subnet_id"):
        match = exists().where(IPAllocation.port_id == NetworkPort.id)
        if wanted.get("ip_address"):
            ips = [ipam.normalized(ip) for ip in wanted["ip_address"]]
            match = match.where(IPAllocation.ip_address.in_(ips))
        if wanted.get("subnet_id"):
            match = match.where(IPAllocation.subnet_id.in_(wanted["subnet_id"]))
        clauses.append(match)
    if wanted.get("ip_address_substr"):
        clauses.append(
            exists().where(
                IPAllocation.port_id == NetworkPort.id,
                or_(*(IPAllocation.ip_address.like(f"%{p}%") for p in wanted["ip_address_substr"])),
            )
        )
    return and_(true(), *clauses)


# Attributes an update copies as given: (API name, column); the MAC address, the
# profile and the groups have rules of their own (Ports._change_mac, _change_groups).
_COPIED = (
    ("name", "name"),
    ("description", "description"),
    ("device_id", "device_id"),
    ("device_owner", "device_owner"),
    ("binding:host_id", "host_id"),
    ("binding:vnic_type", "vnic_type"),
    ("admin_state_up", "admin_state_up"),
    ("port_security_enabled", "port_security_enabled"),
)


def _binding(port: NetworkPort) -> tuple[Any, ...]:
    return (port.vif_type, port.vif_details, port.status, port.status_reason)
