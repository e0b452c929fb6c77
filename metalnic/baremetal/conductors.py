"""The conductors as Ironic's ``/v1/conductors`` shows them (API 1.49).

A conductor is one running metalnic server (``conductor/service.py`` registers it
and heartbeats; a conductor silent for ``conductor_dead_after`` seconds is dead,
and the survivors reap it).  Its ``hostname`` is the conductor's name
(``<host>:<pid>:<random>``, unique like Ironic's ``[DEFAULT]host``, and what a
node's ``reservation`` names), its drivers every hardware type the server offers
(every server offers the same ones), its group ``""`` (metalnic has no conductor
groups).  Conductors are infrastructure: admins and observers see them, project
members do not (Ironic's system-reader rule).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.baremetal import policy
from metalnic.baremetal.models import Conductor
from metalnic.db.base import utcnow
from metalnic.errors import Forbidden, NotFound


def require_infrastructure_reader(who: Principal) -> None:
    policy.require_reader(who)
    if not (who.is_admin or "observer" in who.roles):
        raise Forbidden(f"User {who.name} may not see conductors: admins and observers only.")


@dataclass(frozen=True)
class ConductorInfo:
    """What the API shows of one conductor row (plain values: no ORM object leaves)."""

    hostname: str
    created_at: dt.datetime
    updated_at: dt.datetime
    alive: bool


def _info(row: Conductor, dead_after: float, now: dt.datetime) -> ConductorInfo:
    alive = (now - row.heartbeat_at).total_seconds() < dead_after
    return ConductorInfo(row.name, row.started_at, row.heartbeat_at, alive)


def list_conductors(session: Session, who: Principal, dead_after: float) -> list[ConductorInfo]:
    require_infrastructure_reader(who)
    now = utcnow()
    rows = session.scalars(select(Conductor).order_by(Conductor.name))
    return [_info(row, dead_after, now) for row in rows]


def get(session: Session, who: Principal, hostname: str, dead_after: float) -> ConductorInfo:
    require_infrastructure_reader(who)
    row = session.scalars(select(Conductor).where(Conductor.name == hostname)).first()
    if row is None:
        raise NotFound(f"Conductor {hostname} could not be found.")
    return _info(row, dead_after, utcnow())
