"""Networks: create, read, update and delete, with their VLAN segment allocated on create.

Each method runs its own transaction and raises ``metalnic.errors``.  Who may
see or change a network is ``network/access.py``; which segment a network gets
is ``network/segments.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.auth import Principal
from metalnic.db.session import Database
from metalnic.errors import Forbidden, NetworkInUse
from metalnic.network import access, segments
from metalnic.network.access import require_writer
from metalnic.network.inputs import boolean, opt_int, project, text, unknown
from metalnic.network.models import Network, NetworkPort
from metalnic.settings import Settings


class Networks:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.ranges = segments.parse_ranges(settings.network_vlan_ranges)
        # Names the bare-metal side resolves its phase networks by (see access).
        self.phase_networks = {
            settings.provisioning_network,
            settings.cleaning_network,
            settings.rescuing_network,
        }

    def create(self, who: Principal, body: dict[str, Any]) -> Network:
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
        unknown(body, allowed, "network")
        access.check_sharing(who, body)
        access.check_network_name(who, body, self.phase_networks)
        provider = {k for k in body if k.startswith("provider:")}
        if provider and not who.is_admin:
            raise Forbidden(
                "((rule:create_network and rule:create_network:provider:network_type)) "
                "is disallowed by policy: provider attributes are admin-only."
            )
        owner = project(who, body)
        # Check every field before a segment is allocated: bad input must not
        # be reported as an exhausted pool.
        fields = {
            "name": text(body.get("name", ""), "name"),
            "description": text(body.get("description", ""), "description"),
            "admin_state_up": boolean(body.get("admin_state_up", True)),
            "shared": boolean(body.get("shared", False)),
            "mtu": opt_int(body.get("mtu", 1500), "mtu", 68, 65535) or 1500,
            "port_security_enabled": boolean(body.get("port_security_enabled", True)),
        }
        network_type = text(body.get("provider:network_type", "vlan"), "network_type")
        wanted_seg = opt_int(body.get("provider:segmentation_id"), "provider:segmentation_id")
        with self.db.transaction() as s:
            physnet, seg = segments.allocate(
                s, self.ranges, network_type, body.get("provider:physical_network"), wanted_seg
            )
            net = Network(
                id=ids.new_uuid(),
                project_id=owner,
                network_type=network_type,
                physical_network=physnet,
                segmentation_id=seg,
                **fields,
            )
            s.add(net)
            s.flush()
            return net

    def get(self, who: Principal, net_id: str, s: Session) -> Network:
        return access.visible_network(s, who, net_id)

    def list(self, who: Principal, s: Session, filters: dict[str, str]) -> list[Network]:
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

    def update(
        self, who: Principal, net_id: str, body: dict[str, Any], revision: int | None = None
    ) -> Network:
        require_writer(who)
        unknown(
            body,
            {"name", "description", "admin_state_up", "shared", "mtu", "port_security_enabled"},
            "network",
        )
        mtu = opt_int(body["mtu"], "mtu", 68, 65535) if "mtu" in body else None
        with self.db.transaction() as s:
            net = access.writable_network(s, who, net_id)
            net.require_revision(revision)
            access.check_sharing(who, body)
            access.check_network_name(who, body, self.phase_networks)
            for key in ("name", "description"):
                if key in body:
                    setattr(net, key, text(body[key], key))
            for key in ("admin_state_up", "shared", "port_security_enabled"):
                if key in body:
                    setattr(net, key, boolean(body[key]))
            if mtu is not None:
                net.mtu = mtu
            net.revision_number += 1
            s.flush()
            return net

    def delete(self, who: Principal, net_id: str, revision: int | None = None) -> None:
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
