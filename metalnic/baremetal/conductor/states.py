"""The provisioning state machine, as one table of rows.

Each row says: in ``state``, ``event`` leads to ``to``; when ``target`` is
given the node's ``target_provision_state`` becomes it (the stable state the
flow aims for), and ``to=TARGET`` means "the target recorded when the flow
started" (a cleaning run ends in ``available`` or ``manageable`` depending on
who started it).  API verbs (``Verb``) map to events (``Event``) in ``VERBS``;
``done``, ``fail``, ``wait`` and ``resume`` are raised by the conductor itself.
States, verbs and events are ``StrEnum``s (their values are Ironic's strings),
so a misspelt one in the table or in a flow is a mypy error, not a dead row.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, NamedTuple

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
    ProvisionState,
)


class Event(StrEnum):
    """What moves a node from one provision state to the next."""

    MANAGE = "manage"
    PROVIDE = "provide"
    INSPECT = "inspect"
    CLEAN = "clean"
    DEPLOY = "deploy"
    REBUILD = "rebuild"
    DELETE = "delete"
    RESCUE = "rescue"
    UNRESCUE = "unrescue"
    ABORT = "abort"
    ADOPT = "adopt"
    # raised by the conductor: a flow ended, failed, waits for its agent, is called back
    DONE = "done"
    FAIL = "fail"
    WAIT = "wait"
    RESUME = "resume"


class Verb(StrEnum):
    """``PUT /v1/nodes/{id}/states/provision {"target": verb}``, as Ironic spells them."""

    MANAGE = "manage"
    PROVIDE = "provide"
    INSPECT = "inspect"
    CLEAN = "clean"
    ACTIVE = "active"
    DEPLOY = "deploy"
    REBUILD = "rebuild"
    DELETED = "deleted"
    UNDEPLOY = "undeploy"
    RESCUE = "rescue"
    UNRESCUE = "unrescue"
    ABORT = "abort"
    ADOPT = "adopt"


E = Event  # short, for the table


class _Recorded(StrEnum):
    TARGET = "<target>"  # "the recorded target", see the module docstring


TARGET: Final = _Recorded.TARGET
Target = ProvisionState | Literal[_Recorded.TARGET]


class Row(NamedTuple):
    state: ProvisionState
    event: Event
    to: Target
    target: Target | None = None


TABLE: tuple[Row, ...] = (
    Row(ENROLL, E.MANAGE, VERIFYING, MANAGEABLE),
    Row(VERIFYING, E.DONE, MANAGEABLE),
    Row(VERIFYING, E.FAIL, ENROLL),
    Row(MANAGEABLE, E.PROVIDE, CLEANING, AVAILABLE),
    Row(MANAGEABLE, E.CLEAN, CLEANING, MANAGEABLE),
    Row(MANAGEABLE, E.INSPECT, INSPECTING, MANAGEABLE),
    Row(MANAGEABLE, E.ADOPT, ADOPTING, ACTIVE),
    Row(MANAGEABLE, E.MANAGE, VERIFYING, MANAGEABLE),
    Row(INSPECTING, E.DONE, MANAGEABLE),
    Row(INSPECTING, E.WAIT, INSPECTWAIT, MANAGEABLE),
    Row(INSPECTING, E.FAIL, INSPECTFAIL),
    Row(INSPECTWAIT, E.DONE, MANAGEABLE),
    Row(INSPECTWAIT, E.FAIL, INSPECTFAIL),
    Row(INSPECTWAIT, E.ABORT, INSPECTFAIL),
    Row(INSPECTFAIL, E.INSPECT, INSPECTING, MANAGEABLE),
    Row(INSPECTFAIL, E.MANAGE, MANAGEABLE),
    Row(CLEANING, E.WAIT, CLEANWAIT, TARGET),
    Row(CLEANING, E.DONE, TARGET),
    Row(CLEANING, E.FAIL, CLEANFAIL),
    Row(CLEANWAIT, E.RESUME, CLEANING, TARGET),
    Row(CLEANWAIT, E.FAIL, CLEANFAIL),
    Row(CLEANWAIT, E.ABORT, CLEANFAIL),
    Row(CLEANFAIL, E.MANAGE, MANAGEABLE),
    Row(AVAILABLE, E.DEPLOY, DEPLOYING, ACTIVE),
    Row(AVAILABLE, E.MANAGE, MANAGEABLE),
    Row(DEPLOYING, E.WAIT, DEPLOYWAIT, ACTIVE),
    Row(DEPLOYING, E.DONE, ACTIVE),
    Row(DEPLOYING, E.FAIL, DEPLOYFAIL),
    Row(DEPLOYWAIT, E.RESUME, DEPLOYING, ACTIVE),
    Row(DEPLOYWAIT, E.FAIL, DEPLOYFAIL),
    Row(DEPLOYWAIT, E.ABORT, DEPLOYFAIL),
    Row(DEPLOYFAIL, E.DEPLOY, DEPLOYING, ACTIVE),
    Row(DEPLOYFAIL, E.REBUILD, DEPLOYING, ACTIVE),
    Row(DEPLOYFAIL, E.DELETE, DELETING, AVAILABLE),
    Row(ACTIVE, E.REBUILD, DEPLOYING, ACTIVE),
    Row(ACTIVE, E.DELETE, DELETING, AVAILABLE),
    Row(ACTIVE, E.RESCUE, RESCUING, RESCUE),
    Row(DELETING, E.DONE, CLEANING, AVAILABLE),
    Row(DELETING, E.FAIL, ERROR),
    Row(ERROR, E.REBUILD, DEPLOYING, ACTIVE),
    Row(ERROR, E.DELETE, DELETING, AVAILABLE),
    Row(RESCUING, E.WAIT, RESCUEWAIT, RESCUE),
    Row(RESCUING, E.DONE, RESCUE),
    Row(RESCUING, E.FAIL, RESCUEFAIL),
    Row(RESCUEWAIT, E.RESUME, RESCUING, RESCUE),
    Row(RESCUEWAIT, E.FAIL, RESCUEFAIL),
    Row(RESCUEWAIT, E.ABORT, RESCUEFAIL),
    Row(RESCUE, E.RESCUE, RESCUING, RESCUE),
    Row(RESCUE, E.UNRESCUE, UNRESCUING, ACTIVE),
    Row(RESCUE, E.DELETE, DELETING, AVAILABLE),
    Row(RESCUEFAIL, E.RESCUE, RESCUING, RESCUE),
    Row(RESCUEFAIL, E.UNRESCUE, UNRESCUING, ACTIVE),
    Row(RESCUEFAIL, E.DELETE, DELETING, AVAILABLE),
    Row(UNRESCUING, E.DONE, ACTIVE),
    Row(UNRESCUING, E.FAIL, UNRESCUEFAIL),
    Row(UNRESCUEFAIL, E.RESCUE, RESCUING, RESCUE),
    Row(UNRESCUEFAIL, E.UNRESCUE, UNRESCUING, ACTIVE),
    Row(UNRESCUEFAIL, E.DELETE, DELETING, AVAILABLE),
    Row(ADOPTING, E.DONE, ACTIVE),
    Row(ADOPTING, E.FAIL, ADOPTFAIL),
    Row(ADOPTFAIL, E.ADOPT, ADOPTING, ACTIVE),
    Row(ADOPTFAIL, E.MANAGE, MANAGEABLE),
)

# The API's verbs and the events they raise.
VERBS: dict[Verb, Event] = {
    Verb.MANAGE: E.MANAGE,
    Verb.PROVIDE: E.PROVIDE,
    Verb.INSPECT: E.INSPECT,
    Verb.CLEAN: E.CLEAN,
    Verb.ACTIVE: E.DEPLOY,
    Verb.DEPLOY: E.DEPLOY,
    Verb.REBUILD: E.REBUILD,
    Verb.DELETED: E.DELETE,
    Verb.UNDEPLOY: E.DELETE,
    Verb.RESCUE: E.RESCUE,
    Verb.UNRESCUE: E.UNRESCUE,
    Verb.ABORT: E.ABORT,
    Verb.ADOPT: E.ADOPT,
}
INTERNAL_EVENTS = frozenset({E.DONE, E.FAIL, E.WAIT, E.RESUME})

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


def lookup(state: ProvisionState, event: Event) -> Row | None:
    return _INDEX.get((state, event))


def event_of(verb: object) -> Event | None:
    """The event an API verb (any JSON value) raises; None for anything else."""
    if not isinstance(verb, str) or verb not in _VERB_VALUES:
        return None
    return VERBS[Verb(verb)]


_VERB_VALUES = frozenset(v.value for v in Verb)


def verbs_from(state: ProvisionState) -> list[Verb]:
    """The API verbs a node in ``state`` accepts, for error messages."""
    events = {r.event for r in TABLE if r.state == state} - INTERNAL_EVENTS
    aliases = (Verb.DEPLOY, Verb.UNDEPLOY)  # Ironic's older names of active and deleted
    return sorted(v for v, e in VERBS.items() if e in events and v not in aliases)


def _or_recorded(value: Target | None, recorded: ProvisionState | None) -> ProvisionState | None:
    return recorded if isinstance(value, _Recorded) else value


def resolve(
    row: Row, recorded_target: ProvisionState | None
) -> tuple[ProvisionState, ProvisionState | None]:
    """The (provision_state, target_provision_state) that taking ``row`` leads to."""
    to = _or_recorded(row.to, recorded_target)
    if to is None:
        raise ValueError(f"{row.state} --{row.event}--> needs a recorded target")
    target = _or_recorded(row.target, recorded_target)
    return to, (None if to in STABLE_STATES else target)
