"""Which agent serves a NIC host: the one rule, used by binding, heartbeats and the feed.

A NIC host is served by exactly one agent, the holder of its row in
``nic_host_claims`` (the NIC host is the primary key, so two holders cannot
exist).  An agent claims NIC hosts by naming them in its heartbeat:

* an agent user may claim only the NIC hosts an admin granted it — in the
  users file (``nic_hosts``) or over the API (``agent_grants``); anything
  else is 403.  Admins need no grant (``noauth`` callers are admins) but obey
  the rest;
* a NIC host held by another agent that is alive is 409, naming the holder;
* a holder is dead once its claim was not renewed for ``agent_down_time``
  seconds or an admin disabled it (``admin_state_up`` false); then the first
  granted claimant takes the host over.

Every claim is a single conditional statement — an UPDATE that matches only
the claimant's own, a dead or a disabled holder's row, else an INSERT that
does nothing on conflict — so of two agents claiming at once exactly one wins,
on SQLite (one writer at a time) and PostgreSQL (the row lock re-checks the
condition) alike; no read-then-write decides ownership.

``serving`` (the live holder) is what binding, the boot gate and waits ask;
``speaks_for`` (the holder's user, still granted) guards desired state and
reports.  ``Agents`` below applies these rules to heartbeats (which claim) and
to an admin deleting an agent (which releases).
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.contract import agent as ac
from metalnic.db.base import utcnow
from metalnic.db.session import Database
from metalnic.errors import AgentNotFound, Forbidden, NicHostHeld
from metalnic.jsontypes import JSONObject
from metalnic.network import access, views
from metalnic.network.models import Agent, AgentGrant, NicHostClaim
from metalnic.settings import Settings


def alive(agent: Agent, down_time: float, now: dt.datetime | None = None) -> bool:
    age = (now or utcnow()) - agent.heartbeat_timestamp
    return agent.admin_state_up and age < dt.timedelta(seconds=down_time)


def api_grants(s: Session, user: str) -> set[str]:
    return set(s.scalars(select(AgentGrant.nic_host).where(AgentGrant.user_name == user)))


def not_granted(s: Session, who: Principal, nic_hosts: Iterable[str]) -> list[str]:
    """The NIC hosts among ``nic_hosts`` that ``who`` may not serve (admins: none)."""
    wanted = set(nic_hosts)
    if who.is_admin:
        return []
    if "agent" not in who.roles:
        return sorted(wanted)
    return sorted(wanted - who.nic_hosts - api_grants(s, who.name))


def holder(s: Session, nic_host: str) -> Agent | None:
    """The agent holding ``nic_host``, alive or not."""
    return s.scalars(
        select(Agent)
        .join(NicHostClaim, NicHostClaim.agent_id == Agent.id)
        .where(NicHostClaim.nic_host == nic_host)
    ).first()


def serving(s: Session, nic_host: str, down_time: float) -> Agent | None:
    """The live agent that serves ``nic_host``, if any."""
    agent = holder(s, nic_host)
    return agent if agent is not None and alive(agent, down_time) else None


def hosts_of(s: Session, agent_id: str) -> set[str]:
    return set(s.scalars(select(NicHostClaim.nic_host).where(NicHostClaim.agent_id == agent_id)))


def claim(s: Session, agent: Agent, nic_hosts: Iterable[str], down_time: float) -> set[str]:
    """Hold exactly ``nic_hosts`` for ``agent`` (flushed); returns the hosts it did not
    hold before (gained or released: their ports must be bound again).  Raises
    NicHostHeld for a host another live agent holds (the caller's transaction
    then rolls back: a heartbeat claims all its hosts or none)."""
    now = utcnow()
    wanted = sorted(set(nic_hosts))  # one order for everyone: no deadlock between claimants
    before = hosts_of(s, agent.id)
    released = before - set(wanted)
    if released:
        s.execute(
            delete(NicHostClaim).where(
                NicHostClaim.agent_id == agent.id, NicHostClaim.nic_host.in_(released)
            )
        )
    for host in wanted:
        if not _take(s, agent.id, host, now, down_time):
            raise _held(s, host, down_time)
    return (set(wanted) - before) | released


def _take(s: Session, agent_id: str, host: str, now: dt.datetime, down_time: float) -> bool:
    """One atomic statement per step: renew or take over, else insert if free; each
    returns the row it wrote, so "it matched" is what the database says, not a guess."""
    cutoff = now - dt.timedelta(seconds=down_time)
    disabled = select(Agent.id).where(Agent.admin_state_up.is_(False))
    taken = s.execute(
        update(NicHostClaim)
        .where(
            NicHostClaim.nic_host == host,
            or_(
                NicHostClaim.agent_id == agent_id,
                NicHostClaim.renewed_at < cutoff,
                NicHostClaim.agent_id.in_(disabled),
            ),
        )
        .values(agent_id=agent_id, renewed_at=now)
        .returning(NicHostClaim.nic_host)
        .execution_options(synchronize_session=False)
    ).first()
    if taken is not None:
        return True
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    inserted = s.execute(
        dialect.insert(NicHostClaim)
        .values(nic_host=host, agent_id=agent_id, renewed_at=now)
        .on_conflict_do_nothing(index_elements=["nic_host"])
        .returning(NicHostClaim.nic_host)  # (rowcount is -1 on psycopg: not a witness)
    ).first()
    return inserted is not None


def _held(s: Session, host: str, down_time: float) -> NicHostHeld:
    other = holder(s, host)
    who = f"agent {other.host} (user {other.registered_by})" if other else "another agent"
    return NicHostHeld(
        f"NIC host {host} is served by {who}, which is alive; another agent may take it "
        f"over only after {down_time:g} s without a heartbeat from it."
    )


def speaks_for(s: Session, who: Principal, nic_host: str) -> None:
    """Only the user of the agent holding ``nic_host`` (still granted), or an admin,
    may read its desired state or report for it."""
    if who.is_admin:
        return
    if "agent" not in who.roles:
        raise Forbidden(f"User {who.name} is not an agent.")
    agent = holder(s, nic_host)
    if agent is None or agent.registered_by != who.name or not_granted(s, who, [nic_host]):
        raise Forbidden(f"User {who.name} runs no agent that serves NIC host {nic_host}.")


def grants(s: Session, user: str | None = None) -> dict[str, list[str]]:
    """API grants by user (one user's, or everyone's)."""
    stmt = select(AgentGrant).order_by(AgentGrant.user_name, AgentGrant.nic_host)
    if user is not None:
        stmt = stmt.where(AgentGrant.user_name == user)
    out: dict[str, list[str]] = {}
    for row in s.scalars(stmt):
        out.setdefault(row.user_name, []).append(row.nic_host)
    return out


def set_grants(s: Session, user: str, nic_hosts: Iterable[str], kept: frozenset[str]) -> set[str]:
    """Make ``nic_hosts`` the API grant of ``user``.  Claims of that user's agents on
    revoked hosts (unless ``kept``: still granted by the users file) are released at
    once; returns those hosts (their ports must be bound again)."""
    old, new = api_grants(s, user), set(nic_hosts)
    s.execute(
        delete(AgentGrant).where(AgentGrant.user_name == user, AgentGrant.nic_host.in_(old - new))
    )
    s.add_all(AgentGrant(user_name=user, nic_host=h) for h in sorted(new - old))
    revoked = old - new - kept
    if not revoked:
        return set()
    theirs = select(Agent.id).where(Agent.registered_by == user)
    lost = (NicHostClaim.agent_id.in_(theirs), NicHostClaim.nic_host.in_(revoked))
    released = set(s.scalars(select(NicHostClaim.nic_host).where(*lost)))
    s.execute(delete(NicHostClaim).where(*lost))
    s.flush()
    return released


# --- the agents themselves: heartbeats and removal ------------------------------------------

OVS_AGENT = "Open vSwitch agent"


class Agents:
    """Heartbeats and removal; ``rebind_hosts`` binds again the ports of NIC hosts
    that gained or lost their agent (``Ports.rebind_hosts``)."""

    def __init__(
        self, settings: Settings, db: Database, rebind_hosts: Callable[[set[str]], None]
    ) -> None:
        self.settings = settings
        self.db = db
        self.rebind_hosts = rebind_hosts
        # A DHCP agent that (re)started: networks waiting for one are scheduled to it
        # (set by the DHCP scheduler when the service is built; none: nothing to do).
        self.on_dhcp_agent: Callable[[Session, Agent], set[str]] = lambda s, agent: set()
        self.on_dhcp_agent_gone: Callable[[Session, Agent], set[str]] = lambda s, agent: set()
        self.notify: Callable[[set[str]], None] = lambda keys: None

    def alive(self, agent: Agent) -> bool:
        return alive(agent, self.settings.agent_down_time)

    def serving(self, s: Session, nic_host: str) -> Agent | None:
        """The live agent that serves ``nic_host`` (the one rule, ``serving`` above)."""
        return serving(s, nic_host, self.settings.agent_down_time)

    def list(self, who: Principal, filters: dict[str, str]) -> list[views.AgentView]:
        """Every agent (admins only, as Neutron), ordered by host; ``filters``: exact
        matches on host, agent_type or binary."""
        access.require_agents_reader(who)
        with self.db.transaction() as s:
            found = s.scalars(select(Agent).order_by(Agent.host))
            return [
                views.agent(a, self.alive(a))
                for a in found
                if all(getattr(a, key) == wanted for key, wanted in filters.items())
            ]

    def show(self, who: Principal, agent_id: str) -> views.AgentView:
        access.require_agents_reader(who)
        with self.db.transaction() as s:
            agent = self._get(s, agent_id)
            return views.agent(agent, self.alive(agent))

    def update(self, who: Principal, agent_id: str, change: dict[str, object]) -> views.AgentView:
        """An admin enables or disables an agent (``admin_state_up``)."""
        if not who.is_admin:
            raise Forbidden("Changing agents is reserved to admins.")
        with self.db.transaction() as s:
            agent = self._get(s, agent_id)
            if "admin_state_up" in change:
                agent.admin_state_up = bool(change["admin_state_up"])
            return views.agent(agent, self.alive(agent))

    @staticmethod
    def _get(s: Session, agent_id: str) -> Agent:
        agent = s.get(Agent, agent_id)
        if agent is None:
            raise AgentNotFound(agent_id)
        return agent

    # --- agent grants (metalnic's extension; admins only: network/api/grants.py) ------

    def grants(self, user: str | None = None) -> dict[str, builtins.list[str]]:
        """The API's grants by user (one user's, or everyone's)."""
        with self.db.transaction() as s:
            return grants(s, user)

    def set_grant(self, user: str, nic_hosts: Iterable[str], kept: frozenset[str]) -> None:
        """Make ``nic_hosts`` the API grant of ``user`` (see ``set_grants``); the ports of
        the NIC hosts its agents had to release are bound again."""
        with self.db.transaction() as s:
            released = set_grants(s, user, nic_hosts, kept)
        if released:
            self.rebind_hosts(released)

    def heartbeat(self, who: Principal, body: ac.Heartbeat) -> tuple[Agent, bool]:
        """Register or stay alive, holding exactly the NIC hosts the heartbeat names:
        403 for a host outside the caller's grant, 409 for one another live agent
        holds; either way nothing is written."""
        if not who.roles & {"admin", "agent"}:
            raise Forbidden(f"User {who.name} is not an agent.")
        # Only smart NIC (OVS) agents serve NIC hosts; a DHCP agent claims none.
        ovs = body.agent_type == OVS_AGENT
        nic_hosts = body.nic_hosts() if ovs else []
        config = body.configurations.model_dump(exclude_unset=True)
        config["nic_hosts"] = nic_hosts
        with self.db.transaction() as s:
            _check_granted(s, who, nic_hosts)
            agent = _registered(s, who, body.host, body.agent_type)
            revived = agent is None or not self.alive(agent)
            # A new mode, bridge or smart NIC support changes how its ports bind.
            reconfigured = agent is not None and agent.configurations != config
            agent = _record_beat(s, who, agent, body, config, revived)
            changed = claim(s, agent, nic_hosts, self.settings.agent_down_time) if ovs else set()
            scheduled = self.on_dhcp_agent(s, agent) if not ovs else set()
        # Ports waiting for this agent can bind now; ports of hosts it let go fail.
        rebind = set(nic_hosts) | changed if revived or reconfigured else changed
        if not ovs:
            self.notify(scheduled)
            return agent, revived
        if rebind:
            self.rebind_hosts(rebind)
        return agent, revived

    def delete(self, who: Principal, agent_id: str) -> None:
        if not who.is_admin:
            raise Forbidden("Deleting agents is reserved to admins.")
        with self.db.transaction() as s:
            agent = s.get(Agent, agent_id)
            if agent is None:
                raise AgentNotFound(agent_id)
            held = hosts_of(s, agent.id)
            s.execute(delete(NicHostClaim).where(NicHostClaim.agent_id == agent.id))
            s.delete(agent)
            s.flush()
            # A DHCP agent's networks go to another live one (or wait for the next).
            moved = self.on_dhcp_agent_gone(s, agent) if agent.agent_type != OVS_AGENT else set()
        if held:  # their ports have no agent any more
            self.rebind_hosts(held)
        self.notify(moved)


def _check_granted(s: Session, who: Principal, nic_hosts: Iterable[str]) -> None:
    refused = not_granted(s, who, nic_hosts)
    if refused:
        raise Forbidden(
            f"User {who.name} is not granted NIC host(s) {', '.join(refused)}; "
            "an admin grants them (users file nic_hosts or agent-grants)."
        )


def _registered(s: Session, who: Principal, host: str, agent_type: str) -> Agent | None:
    """The agent of ``agent_type`` registered for ``host`` (None: none yet); 403 when
    another user registered it (an admin may speak for any)."""
    agent = s.scalars(
        select(Agent).where(Agent.agent_type == agent_type, Agent.host == host)
    ).first()
    if agent is not None and agent.registered_by not in (None, who.name) and not who.is_admin:
        raise Forbidden(f"Agent host {host} is registered by another user.")
    return agent


def _record_beat(
    s: Session,
    who: Principal,
    agent: Agent | None,
    body: ac.Heartbeat,
    config: JSONObject,
    revived: bool,
) -> Agent:
    """The heartbeat written: the agent (registered now if new, by ``who``), its
    configuration as sent, its heartbeat time and, when it (re)starts, its start."""
    if agent is None:
        agent = Agent(
            id=ids.new_uuid(), agent_type=body.agent_type, binary=body.binary, host=body.host
        )
        s.add(agent)
    if revived:
        agent.started_at = utcnow()
    agent.configurations = config
    agent.heartbeat_timestamp = utcnow()
    agent.registered_by = agent.registered_by or who.name
    s.flush()
    return agent
