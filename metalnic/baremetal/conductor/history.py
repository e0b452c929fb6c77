"""The node event log: every power action, boot device change and network step.

Rows are written in their own short transactions as things happen, so the
log shows the real order (BIOS → network ACTIVE → boot) even when a flow fails
halfway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from metalnic import ids
from metalnic.baremetal.models import NodeHistory

# Event types, so that tests and auditors can filter the log.
POWER = "power"
BOOT_DEVICE = "boot_device"
NETWORK = "network"
BOOT_GATE = "boot_gate"
BOOT = "boot"  # what the boot interface set up for a network boot (DHCP options, scripts)
PROVISION = "provision"
AGENT = "agent"
ERROR = "error"
RETRY = "retry"  # a retryable BMC failure that is tried again (conductor/bmc.py)


def record(
    session: Session,
    node_id: int,
    event_type: str,
    event: str,
    *,
    severity: str = "INFO",
    conductor: str | None = None,
    user: str | None = None,
) -> None:
    session.add(
        NodeHistory(
            uuid=ids.new_uuid(),
            node_id=node_id,
            event_type=event_type,
            severity=severity,
            event=event,
            conductor=conductor,
            user=user,
        )
    )


def for_node(
    session: Session, node_id: int, limit: int, marker_id: int | None
) -> Sequence[Row[Any]]:
    stmt = select(*NodeHistory.__table__.c).where(NodeHistory.node_id == node_id)
    if marker_id is not None:
        stmt = stmt.where(NodeHistory.id > marker_id)
    return session.execute(stmt.order_by(NodeHistory.id).limit(limit)).all()
