"""Tables of the bare-metal service: nodes, their ports and port groups (bonds), chassis.

A node's ``last_error`` and its history events are written by many flows from
many error texts (drivers quote vendor messages); the model redacts them on
assignment (``metalnic.redact``), so no writer can store a credential.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from metalnic import redact
from metalnic.baremetal.states import PowerState, PowerTarget, ProvisionState
from metalnic.db.base import Base, StrEnumColumn, UTCDateTime, utcnow
from metalnic.jsontypes import JSONObject

# Where a port's or port group's ``internal_info`` records its attached tenant VIF.
VIF_KEY = "tenant_vif_port_id"


class Timestamped:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)


def revision_column() -> Mapped[int]:
    """The row's revision: checked and bumped by every ORM write (``version_id_col``),
    so a write based on an outdated read is refused, never lost (db/session.py)."""
    return mapped_column(Integer, server_default="1")


class Chassis(Timestamped, Base):
    """Ironic's chassis: an admin's grouping of nodes (a rack, an enclosure)."""

    __tablename__ = "chassis"

    version: Mapped[int] = revision_column()
    __mapper_args__ = {"version_id_col": version}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[JSONObject] = mapped_column(JSON, default=dict)


class Node(Timestamped, Base):
    __tablename__ = "nodes"

    version: Mapped[int] = revision_column()
    __mapper_args__ = {"version_id_col": version}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str | None] = mapped_column(String(255), unique=True)
    driver: Mapped[str] = mapped_column(String(255))
    driver_info: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    driver_internal_info: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    properties: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    instance_info: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    extra: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), unique=True)

    # The typed vocabulary (states.py), stored as Ironic's strings.
    power_state: Mapped[PowerState | None] = mapped_column(StrEnumColumn(PowerState, 15))
    target_power_state: Mapped[PowerTarget | None] = mapped_column(StrEnumColumn(PowerTarget, 15))
    provision_state: Mapped[ProvisionState] = mapped_column(
        StrEnumColumn(ProvisionState, 15), index=True
    )
    target_provision_state: Mapped[ProvisionState | None] = mapped_column(
        StrEnumColumn(ProvisionState, 15)
    )
    provision_updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    maintenance_reason: Mapped[str | None] = mapped_column(Text)
    fault: Mapped[str | None] = mapped_column(String(255))
    reservation: Mapped[str | None] = mapped_column(String(255), index=True)
    console_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    inspection_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    inspection_finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    clean_step: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    deploy_step: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    raid_config: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    target_raid_config: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    traits: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A chassis with nodes cannot be deleted (the key refuses it, chassis.delete says why).
    chassis_uuid: Mapped[str | None] = mapped_column(
        ForeignKey("chassis.uuid", ondelete="RESTRICT"), index=True
    )

    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    resource_class: Mapped[str | None] = mapped_column(String(80))
    conductor_group: Mapped[str] = mapped_column(String(255), default="")
    automated_clean: Mapped[bool | None] = mapped_column(Boolean)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    protected_reason: Mapped[str | None] = mapped_column(Text)

    bios_interface: Mapped[str | None] = mapped_column(String(255))
    boot_interface: Mapped[str | None] = mapped_column(String(255))
    console_interface: Mapped[str | None] = mapped_column(String(255))
    deploy_interface: Mapped[str | None] = mapped_column(String(255))
    inspect_interface: Mapped[str | None] = mapped_column(String(255))
    management_interface: Mapped[str | None] = mapped_column(String(255))
    network_interface: Mapped[str | None] = mapped_column(String(255))
    power_interface: Mapped[str | None] = mapped_column(String(255))
    raid_interface: Mapped[str | None] = mapped_column(String(255))
    rescue_interface: Mapped[str | None] = mapped_column(String(255))
    storage_interface: Mapped[str | None] = mapped_column(String(255))
    vendor_interface: Mapped[str | None] = mapped_column(String(255))

    ports: Mapped[list[Port]] = relationship(
        back_populates="node", cascade="all, delete-orphan", passive_deletes=True
    )
    portgroups: Mapped[list[PortGroup]] = relationship(
        back_populates="node", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("last_error")
    def _redact_last_error(self, _key: str, value: str | None) -> str | None:
        return None if value is None else redact.redact_text(value)


class Port(Timestamped, Base):
    __tablename__ = "ports"

    version: Mapped[int] = revision_column()
    __mapper_args__ = {"version_id_col": version}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    address: Mapped[str] = mapped_column(String(18), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    pxe_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    physical_network: Mapped[str | None] = mapped_column(String(64))
    local_link_connection: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    is_smartnic: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    internal_info: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    portgroup_id: Mapped[int | None] = mapped_column(
        ForeignKey("portgroups.id", ondelete="SET NULL"), index=True
    )

    node: Mapped[Node] = relationship(back_populates="ports")
    portgroup: Mapped[PortGroup | None] = relationship(back_populates="ports")

    @property
    def node_uuid(self) -> str:
        return self.node.uuid

    @property
    def portgroup_uuid(self) -> str | None:
        return self.portgroup.uuid if self.portgroup is not None else None


class PortGroup(Timestamped, Base):
    """A bond of a node's ports; one network port serves all its members."""

    __tablename__ = "portgroups"

    version: Mapped[int] = revision_column()
    __mapper_args__ = {"version_id_col": version}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str | None] = mapped_column(String(255), unique=True)
    address: Mapped[str | None] = mapped_column(String(18), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    standalone_ports_supported: Mapped[bool] = mapped_column(Boolean, default=True)
    mode: Mapped[str | None] = mapped_column(String(255))
    properties: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    extra: Mapped[JSONObject] = mapped_column(JSON, default=dict)
    internal_info: Mapped[JSONObject] = mapped_column(JSON, default=dict)

    node: Mapped[Node] = relationship(back_populates="portgroups")
    ports: Mapped[list[Port]] = relationship(back_populates="portgroup", order_by="Port.id")

    @property
    def node_uuid(self) -> str:
        return self.node.uuid


class VifClaim(Base):
    """One row per attached tenant VIF, keyed on the VIF id: the database itself
    lets a network port be attached to one link of one node at a time.  Two racing
    attaches of the same VIF (to two nodes, or twice to one) both pass the checks
    before either commits; the second insert then breaks this key and is refused
    (409).  A link's ``internal_info`` says which VIF it carries; the claim goes
    with the link when it is deleted."""

    __tablename__ = "vif_claims"

    vif_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    port_id: Mapped[int | None] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), index=True
    )
    portgroup_id: Mapped[int | None] = mapped_column(
        ForeignKey("portgroups.id", ondelete="CASCADE"), index=True
    )


class NodeHistory(Base):
    """The event log of a node: power actions, boot devices, network steps, errors."""

    __tablename__ = "node_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    event_type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(Text)
    conductor: Mapped[str | None] = mapped_column(String(255))
    user: Mapped[str | None] = mapped_column(String(255))

    @validates("event")
    def _redact_event(self, _key: str, value: str) -> str:
        return redact.redact_text(value)


class Conductor(Base):
    """A running conductor; node reservations name it, its heartbeat proves it alive."""

    __tablename__ = "conductors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
