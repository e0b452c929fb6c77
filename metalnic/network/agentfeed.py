"""The agent feed: what an agent must program on its NIC host, and what it reports back.

An agent reads the desired state of each NIC host it serves (its ports, their
networks, security groups and members, pending boot-gate verifications) with
the host's feed revision, and reports per-port status, the revision it has
programmed and its answers to verifications.  The bare-metal side asks for
those verifications and waits here for what agents report.  Revisions and the
notifier that wakes waiters are ``network/feed.py``; who may speak for a NIC
host is ``network/agents.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.contract import agent as ac
from metalnic.db.session import Database
from metalnic.network import agents, feed, ipam
from metalnic.network.models import FeedRevision, Network, NetworkPort, Verification
from metalnic.network.secgroups import SecurityGroups


class PlugResult(TypedDict):
    """One port's answer to a verification, as recorded (``Verification.result``)."""

    plugged: bool
    reason: str


class AgentFeed:
    def __init__(
        self,
        db: Database,
        notifier: feed.Notifier,
        secgroups: SecurityGroups,
        after_change: Callable[[set[str]], None],
    ) -> None:
        self.db = db
        self.notifier = notifier
        self.secgroups = secgroups
        self.after_change = after_change

    def speaks_for(self, who: Principal, s: Session, nic_host: str) -> None:
        """Only the user whose agent serves ``nic_host`` (or an admin) may act for it."""
        agents.speaks_for(s, who, nic_host)

    def desired(self, who: Principal, nic_host: str) -> ac.DesiredStateData:
        """Everything an agent needs to program ``nic_host``, with its revision: the
        contract's ``DesiredState`` as plain data (built fast, rendered by orjson; the
        route declares the model and the tests check every answer against it)."""
        with self.db.transaction() as s:
            self.speaks_for(who, s, nic_host)
            revision, applied = feed.revisions(s, nic_host)
            ports = _bound_ports(s, nic_host)
            groups = self.secgroups.rules_for(s, {g for p in ports for g in p["security_groups"]})
            return {
                "host": nic_host,
                "revision": revision,
                "applied": applied,
                "ports": ports,
                "security_groups": groups,
                "members": self.secgroups.members(s, _remote_groups(groups)),
                "verify": _pending_verifications(s, nic_host),
            }

    def check_speaks_for(self, who: Principal, nic_host: str) -> None:
        """``speaks_for`` in a transaction of its own (before an agent's long poll)."""
        with self.db.transaction() as s:
            self.speaks_for(who, s, nic_host)

    def revision(self, nic_host: str) -> tuple[int, int]:
        with self.db.transaction() as s:
            return feed.revisions(s, nic_host)

    async def wait_past(self, nic_host: str, since: int, timeout: float) -> bool:
        """An agent's long poll: until the revision of ``nic_host`` passes ``since``
        (woken by the commit that bumps it), at most ``timeout`` seconds."""
        return await self.notifier.wait_for_async(
            lambda: self.revision(nic_host)[0] > since, timeout
        )

    def report(self, who: Principal, nic_host: str, body: ac.Report) -> None:
        """An agent's report: per-port status and the revision it has programmed."""

        def record(s: Session) -> None:
            self.speaks_for(who, s, nic_host)
            for port_id, report in body.ports.items():
                port = s.get(NetworkPort, port_id)
                if port is None or port.host_id != nic_host:
                    continue  # deleted meanwhile: nothing to update
                port.status = report.status
                port.status_reason = report.reason
            applied = body.applied_revision
            if applied is not None:
                row = s.get(FeedRevision, nic_host)
                if row is not None and applied > row.applied:
                    row.applied = min(applied, row.revision)
            self._answer(s, nic_host, body.verified)
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
        self.after_change({nic_host})
        return ident

    def verification(self, ident: str) -> dict[str, PlugResult] | None:
        """The agent's answer to verification ``ident`` by port id (None: not yet)."""
        with self.db.transaction() as s:
            row = s.get(Verification, ident)
            return dict(row.result) if row is not None and row.result is not None else None

    def forget_verification(self, ident: str) -> None:
        with self.db.transaction() as s:
            row = s.get(Verification, ident)
            if row is not None:
                s.delete(row)

    @staticmethod
    def _answer(s: Session, nic_host: str, verified: dict[str, dict[str, ac.PlugAnswer]]) -> None:
        for ident, answer in verified.items():
            row = s.get(Verification, ident)
            if row is None or row.host != nic_host or row.result is not None:
                continue  # not asked of this host, or answered already
            row.result = {
                port: PlugResult(plugged=a.plugged, reason=a.reason or "")
                for port, a in answer.items()
                if port in row.ports
            }

    # --- waits for the bare-metal side ------------------------------------------------

    def wait(self, check: Callable[[Session], bool], timeout: float) -> bool:
        def probe() -> bool:
            with self.db.transaction() as s:
                return check(s)

        return self.notifier.wait_for(probe, timeout)


# --- the desired state's parts ------------------------------------------------------------


def _bound_ports(s: Session, nic_host: str) -> list[ac.DesiredPortData]:
    """The ports bound to ``nic_host`` (an agent plugs them), with their networks."""
    ports = s.scalars(
        select(NetworkPort).where(NetworkPort.host_id == nic_host, NetworkPort.vif_type == "ovs")
    ).all()
    return [_desired_port(p, s.get_one(Network, p.network_id)) for p in ports]


def _desired_port(port: NetworkPort, net: Network) -> ac.DesiredPortData:
    return {
        "id": port.id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "device_id": port.device_id,
        "network_id": net.id,
        "network_type": net.network_type,
        "physical_network": net.physical_network,
        "segmentation_id": net.segmentation_id,
        "local_link_information": port.profile.get("local_link_information", []),
        "local_group_information": port.profile.get("local_group_information"),
        "port_security_enabled": port.port_security_enabled,
        "security_groups": [g.id for g in port.security_groups],
        "status": port.status,
        "fixed_ips": ipam.shown(port.fixed_ips),
        "allowed_address_pairs": [
            {"ip_address": a["ip_address"], "mac_address": a["mac_address"]}
            for a in port.allowed_address_pairs
        ],
        "dhcp_servers": [],
    }


def _remote_groups(groups: ac.SecurityGroupRulesData) -> set[str]:
    """The groups the rules name as peers (their members' MACs are sent along)."""
    return {
        r["remote_group_id"] for rules in groups.values() for r in rules if r["remote_group_id"]
    }


def _pending_verifications(s: Session, nic_host: str) -> list[ac.VerifyRequestData]:
    pending = s.scalars(
        select(Verification).where(Verification.host == nic_host, Verification.result.is_(None))
    ).all()
    return [{"id": v.id, "ports": list(v.ports)} for v in pending]
