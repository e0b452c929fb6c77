"""The provisioning state machine, as one table of rows.

Each row says: in ``state``, ``event`` leads to ``to``; when ``target`` is
given the node's ``target_provision_state`` becomes it (the stable state the
flow aims for), and ``to=TARGET`` means "the target recorded when the flow
started" (a cleaning run ends in ``available`` or ``manageable`` depending on
who started it).  API verbs map to events in ``VERBS``; ``done``, ``fail``,
``wait`` and ``resume`` are raised by the conductor itself.
"""

from __future__ import annotations

from typing import NamedTuple

from metalnic.baremetal.states import (
    ACTIVE,
    ADOPTFAIL,
    ADOPTING,
    AVAILABLE,
    CLEANFAIL,
    CLEANING,
    CLEANWAIT,
    DELETING,
    DEPLOYFAIL,
    DEPLOYING,
    DEPLOYWAIT,
    ENROLL,
    ERROR,
    INSPECTFAIL,
    INSPECTING,
    INSPECTWAIT,
    MANAGEABLE,
    RESCUE,
    RESCUEFAIL,
    RESCUEWAIT,
    RESCUING,
    UNRESCUEFAIL,
    UNRESCUING,
    VERIFYING,
)

TARGET = "<target>"  # "the recorded target", see the module docstring


class Row(NamedTuple):
    state: str
    event: str
    to: str
    target: str | None = None


TABLE: tuple[Row, ...] = (
    Row(ENROLL, "manage", VERIFYING, MANAGEABLE),
    Row(VERIFYING, "done", MANAGEABLE),
    Row(VERIFYING, "fail", ENROLL),
    Row(MANAGEABLE, "provide", CLEANING, AVAILABLE),
    Row(MANAGEABLE, "clean", CLEANING, MANAGEABLE),
    Row(MANAGEABLE, "inspect", INSPECTING, MANAGEABLE),
    Row(MANAGEABLE, "adopt", ADOPTING, ACTIVE),
    Row(MANAGEABLE, "manage", VERIFYING, MANAGEABLE),
    Row(INSPECTING, "done", MANAGEABLE),
    Row(INSPECTING, "wait", INSPECTWAIT, MANAGEABLE),
    Row(INSPECTING, "fail", INSPECTFAIL),
    Row(INSPECTWAIT, "done", MANAGEABLE),
    Row(INSPECTWAIT, "fail", INSPECTFAIL),
    Row(INSPECTWAIT, "abort", INSPECTFAIL),
    Row(INSPECTFAIL, "inspect", INSPECTING, MANAGEABLE),
    Row(INSPECTFAIL, "manage", MANAGEABLE),
    Row(CLEANING, "wait", CLEANWAIT, TARGET),
    Row(CLEANING, "done", TARGET),
    Row(CLEANING, "fail", CLEANFAIL),
    Row(CLEANWAIT, "resume", CLEANING, TARGET),
    Row(CLEANWAIT, "fail", CLEANFAIL),
    Row(CLEANWAIT, "abort", CLEANFAIL),
    Row(CLEANFAIL, "manage", MANAGEABLE),
    Row(AVAILABLE, "deploy", DEPLOYING, ACTIVE),
    Row(AVAILABLE, "manage", MANAGEABLE),
    Row(DEPLOYING, "wait", DEPLOYWAIT, ACTIVE),
    Row(DEPLOYING, "done", ACTIVE),
    Row(DEPLOYING, "fail", DEPLOYFAIL),
    Row(DEPLOYWAIT, "resume", DEPLOYING, ACTIVE),
    Row(DEPLOYWAIT, "fail", DEPLOYFAIL),
    Row(DEPLOYWAIT, "abort", DEPLOYFAIL),
    Row(DEPLOYFAIL, "deploy", DEPLOYING, ACTIVE),
    Row(DEPLOYFAIL, "rebuild", DEPLOYING, ACTIVE),
    Row(DEPLOYFAIL, "delete", DELETING, AVAILABLE),
    Row(ACTIVE, "rebuild", DEPLOYING, ACTIVE),
    Row(ACTIVE, "delete", DELETING, AVAILABLE),
    Row(ACTIVE, "rescue", RESCUING, RESCUE),
    Row(DELETING, "done", CLEANING, AVAILABLE),
    Row(DELETING, "fail", ERROR),
    Row(ERROR, "rebuild", DEPLOYING, ACTIVE),
    Row(ERROR, "delete", DELETING, AVAILABLE),
    Row(RESCUING, "wait", RESCUEWAIT, RESCUE),
    Row(RESCUING, "done", RESCUE),
    Row(RESCUING, "fail", RESCUEFAIL),
    Row(RESCUEWAIT, "resume", RESCUING, RESCUE),
    Row(RESCUEWAIT, "fail", RESCUEFAIL),
    Row(RESCUEWAIT, "abort", RESCUEFAIL),
    Row(RESCUE, "rescue", RESCUING, RESCUE),
    Row(RESCUE, "unrescue", UNRESCUING, ACTIVE),
    Row(RESCUE, "delete", DELETING, AVAILABLE),
    Row(RESCUEFAIL, "rescue", RESCUING, RESCUE),
    Row(RESCUEFAIL, "unrescue", UNRESCUING, ACTIVE),
    Row(RESCUEFAIL, "delete", DELETING, AVAILABLE),
    Row(UNRESCUING, "done", ACTIVE),
    Row(UNRESCUING, "fail", UNRESCUEFAIL),
    Row(UNRESCUEFAIL, "rescue", RESCUING, RESCUE),
    Row(UNRESCUEFAIL, "unrescue", UNRESCUING, ACTIVE),
    Row(UNRESCUEFAIL, "delete", DELETING, AVAILABLE),
    Row(ADOPTING, "done", ACTIVE),
    Row(ADOPTING, "fail", ADOPTFAIL),
    Row(ADOPTFAIL, "adopt", ADOPTING, ACTIVE),
    Row(ADOPTFAIL, "manage", MANAGEABLE),
)

# The API's verbs (PUT /v1/nodes/{id}/states/provision {"target": verb}) and events.
VERBS = {
    "manage": "manage",
    "provide": "provide",
    "inspect": "inspect",
    "clean": "clean",
    "active": "deploy",
    "deploy": "deploy",
    "rebuild": "rebuild",
    "deleted": "delete",
    "undeploy": "delete",
    "rescue": "rescue",
    "unrescue": "unrescue",
    "abort": "abort",
    "adopt": "adopt",
}
INTERNAL_EVENTS = frozenset({"done", "fail", "wait", "resume"})

# States a flow is running in (the node is locked) or waiting in (unlocked).
WAIT_STATES = frozenset({INSPECTWAIT, CLEANWAIT, DEPLOYWAIT, RESCUEWAIT})
ACTIVE_FLOW_STATES = frozenset(
    {VERIFYING, INSPECTING, CLEANING, DEPLOYING, DELETING, RESCUING, UNRESCUING, ADOPTING}
)
STABLE_STATES = frozenset(
    {
        ENROLL,
        MANAGEABLE,
        AVAILABLE,
        ACTIVE,
        RESCUE,
        ERROR,
        INSPECTFAIL,
        CLEANFAIL,
        DEPLOYFAIL,
        RESCUEFAIL,
        UNRESCUEFAIL,
        ADOPTFAIL,
    }
)

_INDEX = {(r.state, r.event): r for r in TABLE}


def lookup(state: str, event: str) -> Row | None:
    return _INDEX.get((state, event))


def verbs_from(state: str) -> list[str]:
    """The API verbs a node in ``state`` accepts, for error messages."""
    events = {r.event for r in TABLE if r.state == state} - INTERNAL_EVENTS
    return sorted(v for v, e in VERBS.items() if e in events and v not in ("deploy", "undeploy"))


def resolve(row: Row, recorded_target: str | None) -> tuple[str, str | None]:
    """The (provision_state, target_provision_state) that taking ``row`` leads to."""
    to = recorded_target if row.to == TARGET else row.to
    if to is None:
        raise ValueError(f"{row.state} --{row.event}--> needs a recorded target")
    target = recorded_target if row.target == TARGET else row.target
    return to, (None if to in STABLE_STATES else target)
