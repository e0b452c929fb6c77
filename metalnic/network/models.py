"""Tables of the network service: networks, subnets and IP allocations, ports, security
groups, agents."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypedDict

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from metalnic.db.base import Base, UTCDateTime, utcnow
from metalnic.errors import RevisionMismatch


class Stamped:
    """Neutron's timestamps and ``revision_number``; the revision is also the row's
    ``version_id_col``: every ORM write checks it against the value read and bumps
    it, so a write based on an outdated read is refused (409), never lost."""

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.revision_number}

    def require_revision(self, expected: int | None) -> None:
        """Neutron's ``If-Match: revision_number=N``: refuse (412) unless the row is at N."""
        if expected is not None and expected != self.revision_number:
            raise RevisionMismatch(
                f"Constrained to {expected}, but current revision is {self.revision_number}"
            )


class AddressPairRecord(TypedDict):
    """One of a port's ``allowed_address_pairs`` as stored (and shown)."""

    ip_address: str
    mac_address: str


class DhcpOptRecord(TypedDict):
    """One of a port's ``extra_dhcp_opts`` as stored (and shown)."""

    opt_name: str
    opt_value: str
    ip_version: int


def _tags_of(model: str, lazy: Literal["select", "selectin"]) -> Any:
    """A resource's tag rows (Neutron's standard-attr tags, ``network/tags.py``); the
    database deletes them with the resource (ON DELETE CASCADE)."""
    return relationship(model, lazy=lazy, cascade="all, delete-orphan", passive_deletes=True)


class Network(Stamped, Base):
    __tablename__ = "networks"
    __table_args__ = (
        UniqueConstraint("physical_network", "segmentation_id", name="uq_networks_segment"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    network_type: Mapped[str] = mapped_column(String(32))
    physical_network: Mapped[str | None] = mapped_column(String(64))
    segmentation_id: Mapped[int | None] = mapped_column(Integer)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tag_rows: Mapped[list[NetworkTag]] = _tags_of("NetworkTag", lazy="selectin")


# --- subnets and IP allocations (issue 13; the rules are network/subnets.py and ipam.py) ----


class Subnet(Stamped, Base):
    """A subnet of a network.  ``cidr``, ``gateway_ip`` and the pools' addresses are
    stored in their normalized text (``network/ipam.py``); the pools, name servers
    and host routes as the JSON lists Neutron shows, in the order given."""

    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64))
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32))
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32))
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class IPAllocation(Base):
    """One address of a port.  The primary key (subnet, address) is what makes a double
    allocation impossible, whatever the number of racing requests or server processes:
    the second INSERT of an address conflicts in the database (``network/ipam.py``).
    A port's deletion deletes its rows (ON DELETE CASCADE)."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True
    )
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(
        ForeignKey("network_ports.id", ondelete="CASCADE"), index=True
    )
    network_id: Mapped[str] = mapped_column(String(36), index=True)


port_security_groups = Table(
    "port_security_groups",
    Base.metadata,
    Column("port_id", ForeignKey("network_ports.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "security_group_id", ForeignKey("security_groups.id", ondelete="CASCADE"), primary_key=True
    ),
)


def _next_port_revision(current: int | None) -> int:
    """A new port is written at revision 2: until ports were bound before their INSERT,
    a create was an insert and a write of the binding, and clients have seen 2."""
    return 2 if current is None else current + 1


class NetworkPort(Stamped, Base):
    __tablename__ = "network_ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uq_ports_network_mac"),)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, object]:
        return {"version_id_col": cls.revision_number, "version_id_generator": _next_port_revision}

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    mac_address: Mapped[str] = mapped_column(String(18))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    status_reason: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    vnic_type: Mapped[str] = mapped_column(String(32), default="normal")
    host_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    vif_type: Mapped[str] = mapped_column(String(32), default="unbound")
    vif_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Neutron's lists of dicts, stored as given (``network/portattrs.py`` checks them):
    # [{"ip_address", "mac_address"}] and [{"opt_name", "opt_value", "ip_version"}].
    allowed_address_pairs: Mapped[list[AddressPairRecord]] = mapped_column(JSON, default=list)
    extra_dhcp_opts: Mapped[list[DhcpOptRecord]] = mapped_column(JSON, default=list)
    # Read on access (one query for a port's own view); a list reads them in its query.
    tag_rows: Mapped[list[PortTag]] = _tags_of("PortTag", lazy="select")

    # Loaded with the port, for all ports of one query in one more query ("selectin"):
    # every view of a port shows its groups, and a lazy load per port made every
    # list cost one query per port.
    security_groups: Mapped[list[SecurityGroup]] = relationship(
        secondary=port_security_groups, lazy="selectin"
    )
    # Its addresses, loaded like its groups; written only by network/ipam.py (Core
    # INSERTs that may conflict), so the ORM only reads them.
    fixed_ips: Mapped[list[IPAllocation]] = relationship(
        lazy="selectin", viewonly=True, order_by=IPAllocation.ip_address
    )


class SecurityGroup(Stamped, Base):
    __tablename__ = "security_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    rules: Mapped[list[SecurityGroupRule]] = relationship(
        back_populates="group",
        cascade="all, delete-orphan",
        passive_deletes=True,
        foreign_keys="SecurityGroupRule.security_group_id",
    )
    tag_rows: Mapped[list[SecurityGroupTag]] = _tags_of("SecurityGroupTag", lazy="selectin")


class SecurityGroupRule(Stamped, Base):
    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str | None] = mapped_column(String(40))
    port_range_min: Mapped[int | None] = mapped_column(Integer)
    port_range_max: Mapped[int | None] = mapped_column(Integer)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64))
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE")
    )
    description: Mapped[str] = mapped_column(Text, default="")

    group: Mapped[SecurityGroup] = relationship(
        back_populates="rules", foreign_keys=[security_group_id]
    )


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("agent_type", "host", name="uq_agents_type_host"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(64))
    binary: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    configurations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The user the agent authenticated as when it registered: only that user
    # may speak for the NIC hosts this agent serves.
    registered_by: Mapped[str | None] = mapped_column(String(255))


class FeedRevision(Base):
    """One row per NIC host: ``revision`` is bumped on every change an agent serving
    the host must see; ``applied`` is the revision the agent last reported as
    programmed on the NIC (so "the port is gone from the NIC" is checkable)."""

    __tablename__ = "feed_revisions"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)


class Verification(Base):
    """A boot-gate question to a NIC's agent: are these ports plugged as desired —
    answered from OVS itself, not from the agent's memory.  ``result`` maps each
    port id to ``{"plugged": bool, "reason": str | None}``; None while unanswered."""

    __tablename__ = "verifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    ports: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class NicHostClaim(Base):
    """Which agent serves a NIC host: at most one row per NIC host (the primary key),
    so two agents can never hold one at once.  ``renewed_at`` is the holder's last
    heartbeat; a claim older than ``agent_down_time`` may be taken over, and the
    takeover is one conditional UPDATE of this row (see ``network/agents.py``)."""

    __tablename__ = "nic_host_claims"

    nic_host: Mapped[str] = mapped_column(String(255), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    renewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentGrant(Base):
    """An admin's grant, made over the API: agent user ``user_name`` may serve
    ``nic_host``.  Grants in the users file (``nic_hosts``) add to these."""

    __tablename__ = "agent_grants"

    user_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    nic_host: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- tags (Neutron's standard-attr tags): one table per kind of resource, each
# row a (resource, tag) pair; ``network/tags.py`` has the table of kinds.


class NetworkTag(Base):
    __tablename__ = "network_tags"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class PortTag(Base):
    __tablename__ = "network_port_tags"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("network_ports.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class SecurityGroupTag(Base):
    __tablename__ = "security_group_tags"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
