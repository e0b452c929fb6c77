"""The network service's rules: networks, ports and their binding, agents, feed.

Every method runs its own transaction(s) and raises ``metalnic.errors``; the
HTTP layer (``network/api``) only parses and renders.  Changes that an agent
must see bump the feed revision of the NIC host in the same transaction and
notify waiters after the commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from metalnic import ids, redact
from metalnic.auth import Principal
from metalnic.db.base import utcnow
from metalnic.db.session import Database
from metalnic.errors import (
    AgentNotFound,
    Conflict,
    Forbidden,
    InvalidInput,
    NetworkInUse,
    NetworkMacInUse,
    NetworkPortNotFound,
    StaleRevision,
)
from metalnic.network import access, agents, feed, segments
from metalnic.network.access import require_writer
from metalnic.network.binding import bind_decision
from metalnic.network.models import (
    Agent,
    FeedRevision,
    Network,
    NetworkPort,
    NicHostClaim,
    Verification,
)
from metalnic.network.secgroups import SecurityGroups
from metalnic.settings import Settings

log = logging.getLogger(__name__)

VNIC_TYPES = ("normal", "baremetal", "smart-nic")
PORT_STATUSES = ("DOWN", "BUILD", "ACTIVE", "ERROR")
OVS_AGENT = "Open vSwitch agent"


def _profile(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput("binding:profile must be a JSON object.")
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


class NetworkService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.ranges = segments.parse_ranges(settings.network_vlan_ranges)
        self.notifier = feed.Notifier()
        self.secgroups = SecurityGroups(db, self._after_change)
        # Names the bare-metal side resolves its phase networks by (see access).
        self.phase_networks = {
            settings.provisioning_network,
            settings.cleaning_network,
            settings.rescuing_network,
        }

    def _after_change(self, hosts: set[str]) -> None:
        if hosts:
            self.notifier.notify()

    # --- networks ---------------------------------------------------------------------

    def create_network(self, who: Principal, body: dict[str, Any]) -> Network:
        require_writer(who)
        allowed = {
            "name",
            "description",
            "admin_state_up",
            "shared",
            "mtu",
            "project_id",
            "tenant_id",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
            "port_security_enabled",
        }
        _unknown(body, allowed, "network")
        access.check_sharing(who, body)
        access.check_network_name(who, body, self.phase_networks)
        provider = {k for k in body if k.startswith("provider:")}
        if provider and not who.is_admin:
            raise Forbidden(
                "((rule:create_network and rule:create_network:provider:network_type)) "
                "is disallowed by policy: provider attributes are admin-only."
            )
        project = _project(who, body)
        # Check every field before a segment is allocated: bad input must not
        # be reported as an exhausted pool.
        fields = {
            "name": _str(body.get("name", ""), "name"),
            "description": _str(body.get("description", ""), "description"),
            "admin_state_up": _bool(body.get("admin_state_up", True)),
            "shared": _bool(body.get("shared", False)),
            "mtu": _opt_int(body.get("mtu", 1500), "mtu", 68, 65535) or 1500,
            "port_security_enabled": _bool(body.get("port_security_enabled", True)),
        }
        network_type = _str(body.get("provider:network_type", "vlan"), "network_type")
        wanted_seg = _opt_int(body.get("provider:segmentation_id"), "provider:segmentation_id")
        with self.db.transaction() as s:
            physnet, seg = segments.allocate(
                s, self.ranges, network_type, body.get("provider:physical_network"), wanted_seg
            )
            net = Network(
                id=ids.new_uuid(),
                project_id=project,
                network_type=network_type,
                physical_network=physnet,
                segmentation_id=seg,
                **fields,
            )
            s.add(net)
            s.flush()
            return net

    def get_network(self, who: Principal, net_id: str, s: Session) -> Network:
        return access.visible_network(s, who, net_id)

    def list_networks(self, who: Principal, s: Session, filters: dict[str, str]) -> list[Network]:
        stmt = select(Network).order_by(Network.created_at, Network.id)
        where = access.networks_filter(who)
        if where is not None:
            stmt = stmt.where(where)
        for key, column in (
            ("name", Network.name),
            ("id", Network.id),
            ("project_id", Network.project_id),
            ("provider:network_type", Network.network_type),
        ):
            if key in filters:
                stmt = stmt.where(column == filters[key])
        return list(s.scalars(stmt))

    def update_network(
        self, who: Principal, net_id: str, body: dict[str, Any], revision: int | None = None
    ) -> Network:
        require_writer(who)
        _unknown(
            body,
            {"name", "description", "admin_state_up", "shared", "mtu", "port_security_enabled"},
            "network",
        )
        mtu = _opt_int(body["mtu"], "mtu", 68, 65535) if "mtu" in body else None
        with self.db.transaction() as s:
            net = access.writable_network(s, who, net_id)
            net.require_revision(revision)
            access.check_sharing(who, body)
            access.check_network_name(who, body, self.phase_networks)
            for key in ("name", "description"):
                if key in body:
                    setattr(net, key, _str(body[key], key))
            for key in ("admin_state_up", "shared", "port_security_enabled"):
                if key in body:
                    setattr(net, key, _bool(body[key]))
            if mtu is not None:
                net.mtu = mtu
            net.revision_number += 1
            s.flush()
            return net

    def delete_network(self, who: Principal, net_id: str, revision: int | None = None) -> None:
        require_writer(who)
        with self.db.transaction() as s:
            net = access.writable_network(s, who, net_id)
            net.require_revision(revision)
            used = s.scalar(select(NetworkPort.id).where(NetworkPort.network_id == net_id))
            if used is not None:
                raise NetworkInUse(
                    f"Unable to complete operation on network {net_id}. There are one or more "
                    "ports still in use on the network."
                )
            s.delete(net)

    # --- ports ------------------------------------------------------------------------

    def create_port(self, who: Principal, body: dict[str, Any]) -> NetworkPort:
        require_writer(who)
        allowed = {
            "name",
            "description",
            "network_id",
            "mac_address",
            "admin_state_up",
            "device_id",
            "device_owner",
            "binding:vnic_type",
            "binding:host_id",
            "binding:profile",
            "security_groups",
            "port_security_enabled",
            "project_id",
            "tenant_id",
            "fixed_ips",
        }
        _unknown(body, allowed, "port")
        access.check_device_owner(who, body, None)
        if ("binding:profile" in body or "binding:host_id" in body) and not who.is_admin:
            raise Forbidden(
                "Setting binding:profile or binding:host_id is reserved to admins "
                "(Neutron's default policy)."
            )
        if body.get("fixed_ips"):
            raise InvalidInput("fixed_ips are not supported: metalnic networks have no subnets.")
        vnic = _str(body.get("binding:vnic_type", "normal"), "binding:vnic_type")
        if vnic not in VNIC_TYPES:
            raise InvalidInput(f"Invalid binding:vnic_type {vnic!r}; use {', '.join(VNIC_TYPES)}.")
        profile = _profile(body.get("binding:profile") or {})
        net_id = _str(body.get("network_id", ""), "network_id")
        with self.db.transaction() as s:
            net = self.get_network(who, net_id, s)
            mac = ids.normalize_mac(body["mac_address"]) if body.get("mac_address") else _mac()
            self._check_mac_free(s, net.id, mac)
            port = NetworkPort(
                id=ids.new_uuid(),
                name=_str(body.get("name", ""), "name"),
                description=_str(body.get("description", ""), "description"),
                network_id=net.id,
                project_id=_project(who, body, default=net.project_id),
                mac_address=mac,
                admin_state_up=_bool(body.get("admin_state_up", True)),
                device_id=_str(body.get("device_id", ""), "device_id"),
                device_owner=_str(body.get("device_owner", ""), "device_owner"),
                vnic_type=vnic,
                host_id=_str(body.get("binding:host_id", ""), "binding:host_id"),
                profile=profile,
                port_security_enabled=_bool(
                    body.get("port_security_enabled", net.port_security_enabled)
                ),
            )
            port.security_groups = self.secgroups.for_port(
                s, port.project_id, body.get("security_groups"), port.port_security_enabled
            )
            s.add(port)
            s.flush()
            port_id = port.id
            members_of = {g.id for g in port.security_groups}
        # One feed revision per host for the new port and its new memberships: an
        # agent woken twice would program the NIC twice for one port.
        self.bind(port_id, members_of=members_of)
        with self.db.transaction() as s:
            return self._port(s, port_id)

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

    def get_port(self, who: Principal, port_id: str, s: Session) -> NetworkPort:
        return access.visible_port(s, who, port_id)

    def list_ports(self, who: Principal, s: Session, filters: dict[str, str]) -> list[NetworkPort]:
        stmt = select(NetworkPort).order_by(NetworkPort.created_at, NetworkPort.id)
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
        return list(s.scalars(stmt))

    def update_port(
        self, who: Principal, port_id: str, body: dict[str, Any], revision: int | None = None
    ) -> NetworkPort:
        require_writer(who)
        _unknown(
            body,
            {
                "name",
                "description",
                "admin_state_up",
                "device_id",
                "device_owner",
                "binding:host_id",
                "binding:profile",
                "binding:vnic_type",
                "security_groups",
                "port_security_enabled",
                "mac_address",
            },
            "port",
        )
        if ({"binding:profile", "binding:host_id", "mac_address"} & body.keys()) and not (
            who.is_admin
        ):
            raise Forbidden("Changing the binding or the MAC address is reserved to admins.")
        with self.db.transaction() as s:
            port = access.writable_port(s, who, port_id)
            port.require_revision(revision)
            access.check_device_owner(who, body, port)
            old_host = port.host_id
            watchers: set[str] = set()
            for key, attr in (
                ("name", "name"),
                ("description", "description"),
                ("device_id", "device_id"),
                ("device_owner", "device_owner"),
                ("binding:host_id", "host_id"),
            ):
                if key in body:
                    setattr(port, attr, _str(body[key], key))
            if "mac_address" in body:
                mac = ids.normalize_mac(body["mac_address"])
                stays_bound = port.vif_type == "ovs" and body.get("binding:host_id", old_host)
                if mac != port.mac_address:
                    if stays_bound:
                        raise Conflict(
                            f"Port {port.id} is bound: unbind it before changing its MAC address."
                        )
                    self._check_mac_free(s, port.network_id, mac)
                    port.mac_address = mac
                    # Members' MACs are what remote-group rules match: watchers must know.
                    watchers |= self.secgroups.touch_watchers(
                        s, {g.id for g in port.security_groups}
                    )
            if "binding:vnic_type" in body:
                if body["binding:vnic_type"] not in VNIC_TYPES:
                    raise InvalidInput("Invalid binding:vnic_type.")
                port.vnic_type = body["binding:vnic_type"]
            if "binding:profile" in body:
                port.profile = _profile(body["binding:profile"])
            if "admin_state_up" in body:
                port.admin_state_up = _bool(body["admin_state_up"])
            if "port_security_enabled" in body:
                port.port_security_enabled = _bool(body["port_security_enabled"])
            if "security_groups" in body or "port_security_enabled" in body:
                before = {g.id for g in port.security_groups}
                port.security_groups = self.secgroups.for_port(
                    s,
                    port.project_id,
                    body.get("security_groups", [g.id for g in port.security_groups]),
                    port.port_security_enabled,
                )
                moved = before ^ {g.id for g in port.security_groups}
                watchers |= self.secgroups.touch_watchers(s, moved)
            if port.host_id != old_host:
                port.status = "DOWN"  # until the new host's agent reports it plugged
            port.revision_number += 1
            hosts = {h for h in (old_host, port.host_id) if h} | watchers
            for host in hosts:
                feed.bump(s, host)
        self._after_change(hosts)
        self.bind(port_id)
        with self.db.transaction() as s:
            return self._port(s, port_id)

    def delete_port(self, who: Principal, port_id: str, revision: int | None = None) -> int | None:
        """Delete; returns the feed revision of its NIC host after the deletion (or None)."""
        require_writer(who)
        with self.db.transaction() as s:
            port = access.writable_port(s, who, port_id)
            port.require_revision(revision)
            host = port.host_id if port.vif_type != "unbound" else ""
            groups = {g.id for g in port.security_groups}
            s.delete(port)
            s.flush()
            watchers = self.secgroups.touch_watchers(s, groups)
            revision = feed.bump(s, host) if host else None
        self._after_change(({host} if host else set()) | watchers)
        return revision

    # --- binding ----------------------------------------------------------------------

    def bind(self, port_id: str, members_of: set[str] | None = None) -> None:
        """Decide the binding from one read of the port, its network and the live agents
        and write it in the same transaction; a concurrent change of the port (its
        revision moved on) makes it read and decide again.  ``members_of``: groups the
        port just joined (their watchers' feeds bump too)."""

        def decide_and_write(s: Session) -> set[str]:
            port = self._port(s, port_id)
            net = s.get_one(Network, port.network_id)
            agent = self.serving(s, port.host_id) if port.host_id else None
            decision = bind_decision(port, net, agent)
            before = _binding(port)
            port.vif_type, port.vif_details = decision.vif_type, decision.vif_details
            if decision.vif_type == "unbound":
                port.status, port.status_reason = "DOWN", None
            elif decision.vif_type == "binding_failed":
                port.status_reason = decision.reason
            elif decision.vif_type == "ovs":
                port.status_reason = None
                if port.status == "ERROR":
                    port.status = "DOWN"
            if _binding(port) != before:  # an unchanged binding is no new revision
                port.revision_number += 1
            hosts = self.secgroups.touch_watchers(s, members_of or set())
            if port.host_id and decision.vif_type != "unbound" and port.host_id not in hosts:
                feed.bump(s, port.host_id)
                hosts.add(port.host_id)
            return hosts

        try:
            hosts = self.db.retry(decide_and_write)
        except StaleRevision:
            # Still losing after every retry: other requests keep changing the port,
            # and each of them binds it after its own commit, from a newer read.
            log.warning("port %s kept changing while it was being bound", port_id)
            return
        self._after_change(hosts)

    # --- agents (who serves which NIC host: network/agents.py) -------------------------

    def alive(self, agent: Agent) -> bool:
        return agents.alive(agent, self.settings.agent_down_time)

    def serving(self, s: Session, nic_host: str) -> Agent | None:
        """The live agent that serves ``nic_host`` (the one rule, in network/agents.py)."""
        return agents.serving(s, nic_host, self.settings.agent_down_time)

    def heartbeat(self, who: Principal, body: dict[str, Any]) -> tuple[Agent, bool]:
        """Register or stay alive, holding exactly the NIC hosts the heartbeat names:
        403 for a host outside the caller's grant, 409 for one another live agent
        holds; either way nothing is written."""
        if not who.roles & {"admin", "agent"}:
            raise Forbidden(f"User {who.name} is not an agent.")
        host, config, nic_hosts = _heartbeat_body(body)
        with self.db.transaction() as s:
            refused = agents.not_granted(s, who, nic_hosts)
            if refused:
                raise Forbidden(
                    f"User {who.name} is not granted NIC host(s) {', '.join(refused)}; "
                    "an admin grants them (users file nic_hosts or agent-grants)."
                )
            agent = s.scalars(
                select(Agent).where(Agent.agent_type == OVS_AGENT, Agent.host == host)
            ).first()
            if (
                agent is not None
                and agent.registered_by not in (None, who.name)
                and not who.is_admin
            ):
                raise Forbidden(f"Agent host {host} is registered by another user.")
            revived = agent is None or not self.alive(agent)
            # A new mode, bridge or smart NIC support changes how its ports bind.
            reconfigured = agent is not None and agent.configurations != config
            if agent is None:
                agent = Agent(
                    id=ids.new_uuid(),
                    agent_type=OVS_AGENT,
                    binary=_str(body.get("binary", "metalnic-agent"), "binary"),
                    host=host,
                )
                s.add(agent)
            if revived:
                agent.started_at = utcnow()
            agent.configurations = config
            agent.heartbeat_timestamp = utcnow()
            agent.registered_by = agent.registered_by or who.name
            s.flush()
            changed = agents.claim(s, agent, nic_hosts, self.settings.agent_down_time)
        # Ports waiting for this agent can bind now; ports of hosts it let go fail.
        rebind = set(nic_hosts) | changed if revived or reconfigured else changed
        if rebind:
            self.rebind_hosts(rebind)
        return agent, revived

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

    def delete_agent(self, who: Principal, agent_id: str) -> None:
        if not who.is_admin:
            raise Forbidden("Deleting agents is reserved to admins.")
        with self.db.transaction() as s:
            agent = s.get(Agent, agent_id)
            if agent is None:
                raise AgentNotFound(agent_id)
            held = agents.hosts_of(s, agent.id)
            s.execute(delete(NicHostClaim).where(NicHostClaim.agent_id == agent.id))
            s.delete(agent)
        if held:  # their ports have no agent any more
            self.rebind_hosts(held)

    # --- the agent contract: desired state and status reports --------------------------

    def speaks_for(self, who: Principal, s: Session, nic_host: str) -> None:
        """Only the user whose agent serves ``nic_host`` (or an admin) may act for it."""
        agents.speaks_for(s, who, nic_host)

    def desired(self, who: Principal, nic_host: str) -> dict[str, Any]:
        """Everything an agent needs to program ``nic_host``, with its revision."""
        with self.db.transaction() as s:
            self.speaks_for(who, s, nic_host)
            revision, applied = feed.revisions(s, nic_host)
            ports = s.scalars(
                select(NetworkPort).where(
                    NetworkPort.host_id == nic_host, NetworkPort.vif_type == "ovs"
                )
            ).all()
            out = []
            for p in ports:
                net = s.get_one(Network, p.network_id)
                out.append(
                    {
                        "id": p.id,
                        "mac_address": p.mac_address,
                        "admin_state_up": p.admin_state_up,
                        "device_id": p.device_id,
                        "network_id": net.id,
                        "network_type": net.network_type,
                        "physical_network": net.physical_network,
                        "segmentation_id": net.segmentation_id,
                        "local_link_information": p.profile.get("local_link_information", []),
                        "local_group_information": p.profile.get("local_group_information"),
                        "port_security_enabled": p.port_security_enabled,
                        "security_groups": [g.id for g in p.security_groups],
                        "status": p.status,
                    }
                )
            groups = self.secgroups.rules_for(s, {g for p in out for g in p["security_groups"]})
            remote = {
                str(r["remote_group_id"])
                for rules in groups.values()
                for r in rules
                if r["remote_group_id"]
            }
            pending = s.scalars(
                select(Verification).where(
                    Verification.host == nic_host, Verification.result.is_(None)
                )
            ).all()
            return {
                "host": nic_host,
                "revision": revision,
                "applied": applied,
                "ports": out,
                "security_groups": groups,
                "members": self.secgroups.members(s, remote),
                "verify": [{"id": v.id, "ports": list(v.ports)} for v in pending],
            }

    def revision(self, nic_host: str) -> tuple[int, int]:
        with self.db.transaction() as s:
            return feed.revisions(s, nic_host)

    def report(self, who: Principal, nic_host: str, body: dict[str, Any]) -> None:
        """An agent's report: per-port status and the revision it has programmed."""
        statuses = body.get("ports", {})
        if not isinstance(statuses, dict):
            raise InvalidInput("ports must map port ids to {status, reason}.")

        def record(s: Session) -> None:
            self.speaks_for(who, s, nic_host)
            for port_id, report in statuses.items():
                port = s.get(NetworkPort, port_id)
                if port is None or port.host_id != nic_host:
                    continue  # deleted meanwhile: nothing to update
                status = report.get("status") if isinstance(report, dict) else None
                if status not in PORT_STATUSES:
                    raise InvalidInput(f"Invalid status {status!r} for port {port_id}.")
                port.status = status
                port.status_reason = report.get("reason")
            applied = body.get("applied_revision")
            if isinstance(applied, int):
                row = s.get(FeedRevision, nic_host)
                if row is not None and applied > row.applied:
                    row.applied = min(applied, row.revision)
            self._answer(s, nic_host, body.get("verified", {}))
            feed.announce(s)

        # A user's update of a port racing the report: read again and record it again.
        self.db.retry(record)
        self.notifier.notify()

    # --- boot-gate verifications --------------------------------------------------------

    def request_verification(self, nic_host: str, port_ids: list[str]) -> str:
        """Ask the agent of ``nic_host`` to confirm from OVS that the ports are plugged."""
        with self.db.transaction() as s:
            ident = ids.new_uuid()
            s.add(Verification(id=ident, host=nic_host, ports=list(port_ids)))
            feed.bump(s, nic_host)
        self._after_change({nic_host})
        return ident

    def verification(self, ident: str) -> dict[str, Any] | None:
        with self.db.transaction() as s:
            row = s.get(Verification, ident)
            return dict(row.result) if row is not None and row.result is not None else None

    def forget_verification(self, ident: str) -> None:
        with self.db.transaction() as s:
            row = s.get(Verification, ident)
            if row is not None:
                s.delete(row)

    @staticmethod
    def _answer(s: Session, nic_host: str, verified: Any) -> None:
        if not isinstance(verified, dict):
            raise InvalidInput("verified must map verification ids to per-port answers.")
        for ident, answer in verified.items():
            row = s.get(Verification, ident)
            if row is None or row.host != nic_host or row.result is not None:
                continue  # not asked of this host, or answered already
            if not isinstance(answer, dict):
                raise InvalidInput(f"Invalid answer for verification {ident}.")
            row.result = {
                port: {
                    "plugged": bool(isinstance(a, dict) and a.get("plugged") is True),
                    "reason": str(a.get("reason") or "") if isinstance(a, dict) else "bad answer",
                }
                for port, a in answer.items()
                if port in row.ports
            }

    # --- waits for the bare-metal side ------------------------------------------------

    def wait(self, check: Callable[[Session], bool], timeout: float) -> bool:
        def probe() -> bool:
            with self.db.transaction() as s:
                return check(s)

        return self.notifier.wait_for(probe, timeout)


def _binding(port: NetworkPort) -> tuple[Any, ...]:
    return (port.vif_type, port.vif_details, port.status, port.status_reason)


def _unknown(body: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"Unrecognized attribute(s) '{', '.join(unknown)}' for {what}.")


def _heartbeat_body(body: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """The agent host, its configurations and the NIC hosts it claims."""
    host = _str(body.get("host", ""), "host")
    if not host:
        raise InvalidInput("An agent heartbeat needs host.")
    config = body.get("configurations") or {}
    if not isinstance(config, dict):
        raise InvalidInput("configurations must be a JSON object.")
    if config.get("mode", "local") not in ("local", "remote"):
        raise InvalidInput("configurations.mode must be local or remote.")
    nic_hosts = config.setdefault("nic_hosts", [host])
    if (
        not isinstance(nic_hosts, list)
        or not all(isinstance(h, str) and 0 < len(h) <= 255 for h in nic_hosts)
        or len(nic_hosts) > 1000
    ):
        raise InvalidInput("configurations.nic_hosts must be a list of host names.")
    return host, config, list(nic_hosts)


def _project(who: Principal, body: dict[str, Any], default: str | None = None) -> str:
    """The project a new resource belongs to: the one asked for (only admins may
    name another), else an admin's ``default`` (a port: its network's), else the caller's."""
    asked = body.get("project_id") or body.get("tenant_id")
    if asked and asked != who.project and not who.is_admin:
        raise Forbidden("Only admins may create resources for another project.")
    if not asked and who.is_admin and default:
        return default
    return str(asked or who.project or "admin")


# The coercion below is the service's own guard for callers inside the process (the
# embedded client); HTTP requests arrive already validated by network/api/schemas.py.
# Messages never echo the value: it may be huge, unprintable or a secret.


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 255 or "\x00" in value or not _utf8(value):
        raise InvalidInput(f"Invalid input for {field}. Reason: not a valid string.")
    return value


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _opt_int(value: Any, field: str, low: int = 0, high: int = 2**31 - 1) -> int | None:
    """None, or an integer in ``low..high`` given as an integer or ASCII decimal digits."""
    if value is None:
        return None
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20
    if isinstance(value, bool) or not (isinstance(value, int) or digits):
        raise InvalidInput(f"Invalid input for {field}. Reason: not an integer.")
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"Invalid input for {field}. Reason: not in {low}..{high}.")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput("Invalid input: not a valid boolean value.")
