"""Networks: create, read, update and delete, with their VLAN segment allocated on create.

Each method runs its own transaction and raises ``metalnic.errors``; bodies
arrive as the request models of ``network/inputs.py`` (every value
already of its type and range, checked once for HTTP and in-process callers).  Who may
see or change a network is ``network/access.py``; which segment a network gets
is ``network/segments.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select

from metalnic import ids
from metalnic.auth import Principal
from metalnic.db.session import Database
from metalnic.errors import Forbidden, NetworkInUse
from metalnic.network import access, dhcpfeed, dhcpports, feed, segments, subnets, tags, views
from metalnic.network.access import require_writer
from metalnic.network.inputs import NetworkCreate, NetworkUpdate
from metalnic.network.models import Network, NetworkPort, Subnet
from metalnic.settings import Settings


class Networks:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        after_change: Callable[[set[str]], None] = lambda hosts: None,
    ) -> None:
        self.db = db
        self.after_change = after_change  # wakes the waiters of the feeds a write bumped
        self.ranges = segments.parse_ranges(settings.network_vlan_ranges)
        # Names the bare-metal side resolves its phase networks by (see access).
        self.phase_networks = {
            settings.provisioning_network,
            settings.cleaning_network,
            settings.rescuing_network,
        }

    def create(self, who: Principal, body: NetworkCreate) -> views.NetworkView:
        require_writer(who)
        given = body.values()
        access.check_sharing(who, given)
        access.check_network_name(who, given, self.phase_networks)
        if any(k.startswith("provider:") for k in given) and not who.is_admin:
            raise Forbidden(
                "((rule:create_network and rule:create_network:provider:network_type)) "
                "is disallowed by policy: provider attributes are admin-only."
            )
        owner = access.owner_project(who, body.project_id or body.tenant_id)
        with self.db.transaction() as s:
            physnet, seg = segments.allocate(
                s, self.ranges, body.network_type, body.physical_network, body.segmentation_id
            )
            net = Network(
                id=ids.new_uuid(),
                project_id=owner,
                network_type=body.network_type,
                physical_network=physnet,
                segmentation_id=seg,
                name=body.name,
                description=body.description,
                admin_state_up=body.admin_state_up,
                shared=body.shared,
                mtu=body.mtu or 1500,
                port_security_enabled=body.port_security_enabled,
                tag_rows=[],
            )
            s.add(net)
            s.flush()
            return views.network(net)

    def show(self, who: Principal, net_id: str) -> views.NetworkView:
        with self.db.transaction() as s:
            net = access.visible_network(s, who, net_id)
            return views.network(net, subnets.subnet_ids(s, [net.id])[net.id])

    def list(self, who: Principal, filters: dict[str, str]) -> list[views.NetworkView]:
        stmt = (
            select(Network)
            .options(tags.loaded("networks"))
            .order_by(Network.created_at, Network.id)
        )
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
        stmt = tags.filtered(stmt, filters, "networks", Network.id)
        with self.db.transaction() as s:
            nets = list(s.scalars(stmt))
            owned = subnets.subnet_ids(s, [n.id for n in nets])
            return [views.network(n, owned[n.id]) for n in nets]

    def update(
        self, who: Principal, net_id: str, body: NetworkUpdate, revision: int | None = None
    ) -> views.NetworkView:
        require_writer(who)
        given = body.values()
        bumped: set[str] = set()
        with self.db.transaction() as s:
            net = access.writable_network(s, who, net_id)
            net.require_revision(revision)
            access.check_sharing(who, given)
            access.check_network_name(who, given, self.phase_networks)
            for key in ("name", "description", "admin_state_up", "shared", "port_security_enabled"):
                if key in given:
                    setattr(net, key, given[key])
            if "mtu" in given and body.mtu != net.mtu:
                net.mtu = body.mtu
                # Its DHCP agent sets the MTU of its interface on the network.
                bumped = dhcpfeed.serving_keys(s, [net.id])
                feed.bump_all(s, bumped)
            net.revision_number += 1
            s.flush()
            view = views.network(net, subnets.subnet_ids(s, [net.id])[net.id])
        self.after_change(bumped)
        return view

    def delete(self, who: Principal, net_id: str, revision: int | None = None) -> None:
        require_writer(who)
        with self.db.transaction() as s:
            net = access.writable_network(s, who, net_id)
            net.require_revision(revision)
            bumped = dhcpports.remove_for_network(s, net_id)  # Neutron removes it itself
            used = s.scalar(select(NetworkPort.id).where(NetworkPort.network_id == net_id))
            if used is not None:
                raise NetworkInUse(
                    f"Unable to complete operation on network {net_id}. There are one or more "
                    "ports still in use on the network."
                )
            # Its subnets go with it, as in Neutron (no port holds an address of them).
            s.execute(delete(Subnet).where(Subnet.network_id == net_id))
            s.delete(net)
        self.after_change(bumped)
