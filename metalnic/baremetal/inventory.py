"""The bare-metal inventory as the API uses it: each call is one unit of work.

A method opens one transaction (``Database.transaction``: commit, rollback and
the translation of database errors, in one place), runs the rules of
``nodes.py``, ``ports.py``, ``portgroups.py`` and ``vifs.py`` in it and, where
the caller wants an answer, hands what it read to the caller's ``render``
*inside* that transaction.  That is the one rule for answers: no ORM object or
row leaves a unit of work, so a view may read a relationship (a port's node
UUID) while the session is open and nothing can load lazily from a closed one.
The routes parse, call and render; they never see a session.

The conductor calls the same rule functions in transactions of its own; this
module only adds the boundary the API needs, not new rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.baremetal import chassis, conductors, nodes, portgroups, ports, traits, vifs
from metalnic.baremetal.conductors import ConductorInfo
from metalnic.baremetal.drivers.registry import Registry
from metalnic.baremetal.fields import Version
from metalnic.baremetal.listing import Page
from metalnic.baremetal.models import Chassis, Node, Port, PortGroup
from metalnic.db.session import Database
from metalnic.jsonpatch import PatchOp
from metalnic.jsontypes import JSONObject

R = TypeVar("R")
Rows = Sequence[Row[Any]]


class Inventory:
    """Nodes, ports, port groups and VIF lists for the routes; built once in server.py."""

    def __init__(self, db: Database, registry: Registry) -> None:
        self._db = db
        self._registry = registry

    def _unit(self, work: Callable[[Session], R]) -> R:
        """The one place a request's transaction is opened (one per call)."""
        with self._db.transaction() as session:
            return work(session)

    # --- nodes -------------------------------------------------------------------------

    def list_nodes(
        self, who: Principal, filters: nodes.NodeFilters, page: Page, render: Callable[[Rows], R]
    ) -> R:
        return self._unit(lambda s: render(nodes.list_nodes(s, who, filters, page)))

    def get_node(self, who: Principal, ident: str, render: Callable[[Node], R]) -> R:
        return self._unit(lambda s: render(nodes.get(s, who, ident)))

    def create_node(
        self, who: Principal, payload: JSONObject, version: Version, render: Callable[[Node], R]
    ) -> R:
        return self._unit(lambda s: render(nodes.create(s, who, self._registry, payload, version)))

    def patch_node(
        self,
        who: Principal,
        ident: str,
        ops: list[PatchOp],
        version: Version,
        render: Callable[[Node], R],
    ) -> R:
        return self._unit(
            lambda s: render(nodes.patch(s, who, self._registry, ident, ops, version))
        )

    def delete_node(self, who: Principal, ident: str) -> None:
        self._unit(lambda s: nodes.delete(s, who, ident))

    def set_maintenance(self, who: Principal, ident: str, on: bool, reason: str | None) -> None:
        self._unit(lambda s: nodes.set_maintenance(s, who, ident, on, reason))

    def node_history(
        self,
        who: Principal,
        ident: str,
        limit: int,
        marker_id: int | None,
        render: Callable[[Node, Rows], R],
    ) -> R:
        """One page of a node's history events, after ``marker_id``."""
        return self._unit(lambda s: render(*nodes.history(s, who, ident, limit, marker_id)))

    def list_traits(self, who: Principal, ident: str) -> list[str]:
        return self._unit(lambda s: traits.list_traits(s, who, ident))

    # A trait change is a whole read-and-write of the node's list: when a concurrent
    # write to the node won the row, it is applied again on a fresh read (as Ironic's
    # node lock serialises them), so racing additions all land.

    def set_traits(self, who: Principal, ident: str, body: object) -> None:
        wanted = traits.parse_list(body)  # bad input is refused before the node is read
        self._db.retry(lambda s: traits.replace(s, who, ident, wanted))

    def add_trait(self, who: Principal, ident: str, trait: str) -> None:
        self._db.retry(lambda s: traits.add(s, who, ident, trait))

    def remove_trait(self, who: Principal, ident: str, trait: str | None) -> None:
        """Remove one trait, or all of them (None)."""
        self._db.retry(lambda s: traits.remove(s, who, ident, trait))

    def list_vifs(self, who: Principal, ident: str) -> list[dict[str, str]]:
        """Plain values already: nothing to render."""
        return self._unit(lambda s: vifs.list_vifs(s, who, ident))

    # --- chassis -----------------------------------------------------------------------

    def list_chassis(
        self, who: Principal, filters: None, page: Page, render: Callable[[Rows], R]
    ) -> R:
        return self._unit(lambda s: render(chassis.list_chassis(s, who, page)))

    def get_chassis(self, who: Principal, ident: str, render: Callable[[Chassis], R]) -> R:
        return self._unit(lambda s: render(chassis.get(s, who, ident)))

    def create_chassis(
        self, who: Principal, payload: JSONObject, version: Version, render: Callable[[Chassis], R]
    ) -> R:
        return self._unit(lambda s: render(chassis.create(s, who, payload, version)))

    def patch_chassis(
        self,
        who: Principal,
        ident: str,
        ops: list[PatchOp],
        version: Version,
        render: Callable[[Chassis], R],
    ) -> R:
        return self._unit(lambda s: render(chassis.patch(s, who, ident, ops, version)))

    def delete_chassis(self, who: Principal, ident: str) -> None:
        self._unit(lambda s: chassis.delete(s, who, ident))

    # --- conductors --------------------------------------------------------------------

    def list_conductors(self, who: Principal, dead_after: float) -> list[ConductorInfo]:
        return self._unit(lambda s: conductors.list_conductors(s, who, dead_after))

    def get_conductor(self, who: Principal, hostname: str, dead_after: float) -> ConductorInfo:
        return self._unit(lambda s: conductors.get(s, who, hostname, dead_after))

    # --- ports -------------------------------------------------------------------------

    def list_ports(
        self, who: Principal, filters: ports.PortFilters, page: Page, render: Callable[[Rows], R]
    ) -> R:
        return self._unit(lambda s: render(ports.list_ports(s, who, filters, page)))

    def get_port(self, who: Principal, uuid: str, render: Callable[[Port], R]) -> R:
        return self._unit(lambda s: render(ports.get(s, who, uuid)))

    def create_port(
        self, who: Principal, payload: JSONObject, version: Version, render: Callable[[Port], R]
    ) -> R:
        return self._unit(lambda s: render(ports.create(s, who, payload, version)))

    def patch_port(
        self,
        who: Principal,
        uuid: str,
        ops: list[PatchOp],
        version: Version,
        render: Callable[[Port], R],
    ) -> R:
        return self._unit(lambda s: render(ports.patch(s, who, uuid, ops, version)))

    def delete_port(self, who: Principal, uuid: str) -> None:
        self._unit(lambda s: ports.delete(s, who, uuid))

    # --- port groups -------------------------------------------------------------------

    def list_portgroups(
        self,
        who: Principal,
        filters: portgroups.PortGroupFilters,
        page: Page,
        render: Callable[[Rows], R],
    ) -> R:
        return self._unit(lambda s: render(portgroups.list_portgroups(s, who, filters, page)))

    def get_portgroup(self, who: Principal, ident: str, render: Callable[[PortGroup], R]) -> R:
        return self._unit(lambda s: render(portgroups.get(s, who, ident)))

    def create_portgroup(
        self,
        who: Principal,
        payload: JSONObject,
        version: Version,
        render: Callable[[PortGroup], R],
    ) -> R:
        return self._unit(lambda s: render(portgroups.create(s, who, payload, version)))

    def patch_portgroup(
        self,
        who: Principal,
        ident: str,
        ops: list[PatchOp],
        version: Version,
        render: Callable[[PortGroup], R],
    ) -> R:
        return self._unit(lambda s: render(portgroups.patch(s, who, ident, ops, version)))

    def delete_portgroup(self, who: Principal, ident: str) -> None:
        self._unit(lambda s: portgroups.delete(s, who, ident))
