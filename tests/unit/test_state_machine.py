"""The provisioning state machine, tested over its whole table."""

from __future__ import annotations

import pytest

from metalnic.baremetal import states
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.conductor import task as tasks
from metalnic.baremetal.models import Node
from metalnic.errors import InvalidStateRequested

ALL_STATES = machine.STABLE_STATES | machine.ACTIVE_FLOW_STATES | machine.WAIT_STATES
TARGETS = {
    states.CLEANING: (states.AVAILABLE, states.MANAGEABLE),
    states.CLEANWAIT: (states.AVAILABLE, states.MANAGEABLE),
}


def node_in(state: str, target: str | None = None) -> Node:
    return Node(
        uuid="00000000-0000-0000-0000-000000000001",
        provision_state=state,
        target_provision_state=target,
        driver="fake-hardware",
    )


def test_state_groups_are_disjoint() -> None:
    groups = [machine.STABLE_STATES, machine.ACTIVE_FLOW_STATES, machine.WAIT_STATES]
    assert sum(len(g) for g in groups) == len(ALL_STATES)


def test_every_state_is_reachable_and_can_move() -> None:
    reached = {r.to for r in machine.TABLE} | {states.AVAILABLE, states.MANAGEABLE, states.ENROLL}
    assert reached >= ALL_STATES
    for state in ALL_STATES:
        assert any(r.state == state for r in machine.TABLE), state


def test_no_duplicate_rows() -> None:
    keys = [(r.state, r.event) for r in machine.TABLE]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("row", machine.TABLE, ids=lambda r: f"{r.state}--{r.event}")
def test_each_row_moves_the_node(row: machine.Row) -> None:
    recorded = TARGETS.get(row.state, (row.target or states.AVAILABLE,))
    for target in recorded:
        node = node_in(
            row.state, target if row.to == machine.TARGET or row.target == machine.TARGET else None
        )
        tasks.advance(node, row.event)
        expected = target if row.to == machine.TARGET else row.to
        assert node.provision_state == expected
        if expected in machine.STABLE_STATES:
            assert node.target_provision_state is None
        else:
            assert node.target_provision_state is not None
        assert node.provision_updated_at is not None


@pytest.mark.parametrize("state", sorted(ALL_STATES))
def test_events_not_in_the_table_are_refused_naming_the_allowed_verbs(state: str) -> None:
    allowed = {r.event for r in machine.TABLE if r.state == state}
    for event in sorted(set(machine.VERBS.values()) | machine.INTERNAL_EVENTS):
        if event in allowed:
            continue
        node = node_in(state)
        with pytest.raises(InvalidStateRequested) as err:
            tasks.advance(node, event)
        assert f"'{state}'" in err.value.message
        for verb in machine.verbs_from(state):
            assert verb in err.value.message
        assert node.provision_state == state


def test_cleaning_ends_where_its_starter_wanted() -> None:
    provided = node_in(states.MANAGEABLE)
    tasks.advance(provided, "provide")
    assert (provided.provision_state, provided.target_provision_state) == (
        states.CLEANING,
        states.AVAILABLE,
    )
    tasks.advance(provided, "done")
    assert provided.provision_state == states.AVAILABLE
    manual = node_in(states.MANAGEABLE)
    tasks.advance(manual, "clean")
    tasks.advance(manual, "wait")
    assert manual.provision_state == states.CLEANWAIT
    tasks.advance(manual, "resume")
    tasks.advance(manual, "done")
    assert manual.provision_state == states.MANAGEABLE


def test_undeploy_goes_through_cleaning_to_available() -> None:
    node = node_in(states.ACTIVE)
    for event, state in [
        ("delete", states.DELETING),
        ("done", states.CLEANING),
        ("done", states.AVAILABLE),
    ]:
        tasks.advance(node, event)
        assert node.provision_state == state


def test_verbs_from_enroll_is_manage_only() -> None:
    assert machine.verbs_from(states.ENROLL) == ["manage"]
    assert "active" in machine.verbs_from(states.AVAILABLE)
    assert "deleted" in machine.verbs_from(states.ACTIVE)


# Every verb's row either leads into a busy state that has a flow (which ends by
# releasing the lock) or straight to a stable/failed state (no flow, no lock kept):
# ``manage`` from ``available`` answered 500 and left the node locked when a row of
# the first kind had no flow.
VERB_ROWS = [r for r in machine.TABLE if r.event not in machine.INTERNAL_EVENTS]


@pytest.mark.parametrize("row", VERB_ROWS, ids=lambda r: f"{r.state}--{r.event}")
def test_every_verb_leads_to_a_flow_or_to_a_state_that_needs_none(row: machine.Row) -> None:
    from metalnic.baremetal.conductor import flows

    for target in TARGETS.get(row.state, (states.AVAILABLE,)):
        to, _target = machine.resolve(row, target)
        if to in machine.ACTIVE_FLOW_STATES:
            assert to in flows.FLOWS, f"{row}: busy state {to} has no flow"
        else:
            assert to in machine.STABLE_STATES, f"{row}: leads to {to}, neither busy nor stable"


def test_every_busy_state_has_a_flow_and_every_flow_a_busy_state() -> None:
    from metalnic.baremetal.conductor import flows

    assert set(flows.FLOWS) == set(machine.ACTIVE_FLOW_STATES)
    assert set(flows.RESUMED) <= set(machine.ACTIVE_FLOW_STATES)
    # A "done" that leads into another busy state continues under the same lock.
    for row in machine.TABLE:
        if row.event == "done" and row.to in machine.ACTIVE_FLOW_STATES:
            assert row.to in flows.FLOWS


@pytest.mark.parametrize("row", machine.TABLE, ids=lambda r: f"{r.state}--{r.event}")
def test_the_rescue_password_hash_lives_only_while_rescuing(row: machine.Row) -> None:
    """Ironic's remove_rescue_password, for every row: a move into any state but
    ``rescuing``/``rescue wait`` drops the hash (done, failed, aborted, timed out,
    unrescue, delete); other instance_info stays."""
    target = TARGETS.get(row.state, (row.target or states.AVAILABLE,))[0]
    node = node_in(
        row.state, target if row.to == machine.TARGET or row.target == machine.TARGET else None
    )
    node.instance_info = {"hashed_rescue_password": "$6$salt$digest", "image_source": "x"}
    tasks.advance(node, row.event)
    kept = node.provision_state in (states.RESCUING, states.RESCUEWAIT)
    assert ("hashed_rescue_password" in node.instance_info) == kept
    assert node.instance_info["image_source"] == "x"
