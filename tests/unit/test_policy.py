"""metalnic.baremetal.policy: admin, member and observer rules."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from metalnic.auth import NOAUTH_PRINCIPAL, Principal
from metalnic.baremetal import policy
from metalnic.baremetal import states as st
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.fields import NODE_FIELDS, PORT_FIELDS
from metalnic.baremetal.models import Node
from metalnic.errors import Forbidden, InvalidStateForChange, NodeNotFound, NotFound


def who(*roles: str, project: str | None = None, name: str = "u") -> Principal:
    return Principal(name, frozenset(roles), project)


ADMIN = who("admin", project="ops", name="admin")
ADMIN_NO_PROJECT = who("admin", name="root")
MEMBER_A = who("member", project="a", name="alice")
MEMBER_B = who("member", project="b", name="bob")
OBSERVER = who("observer", name="olga")
OBSERVER_A = who("observer", project="a", name="oscar")
NOBODY = who(name="nobody")  # authenticated, but without any role

OWNERS = [None, "", "a", "b", "ops"]


# --- require_reader / require_writer ---------------------------------------------------


@pytest.mark.parametrize(
    "principal", [ADMIN, ADMIN_NO_PROJECT, MEMBER_A, OBSERVER, NOAUTH_PRINCIPAL]
)
def test_every_role_may_read(principal: Principal) -> None:
    policy.require_reader(principal)  # does not raise


@pytest.mark.parametrize("principal", [ADMIN, MEMBER_A, who("member", "observer")])
def test_admin_and_member_may_write(principal: Principal) -> None:
    policy.require_writer(principal)


def test_observer_may_not_write() -> None:
    with pytest.raises(Forbidden, match="olga may only read"):
        policy.require_writer(OBSERVER)


@pytest.mark.parametrize("check", [policy.require_reader, policy.require_writer])
@pytest.mark.parametrize("principal", [NOBODY, who("operator"), who("reader", project="a")])
def test_no_known_role_may_do_anything(
    check: Callable[[Principal], None], principal: Principal
) -> None:
    with pytest.raises(Forbidden, match="no role that allows reading") as info:
        check(principal)
    assert info.value.status == 403


# --- owner_scope ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "scope"),
    [
        (ADMIN, None),
        (ADMIN_NO_PROJECT, None),
        (NOAUTH_PRINCIPAL, None),
        (OBSERVER, None),
        (OBSERVER_A, None),  # observers see everything, whatever their project
        (who("member", "observer", project="a"), None),
        (MEMBER_A, "a"),
        (MEMBER_B, "b"),
        (who("member"), ""),  # a member without a project sees nothing owned
    ],
)
def test_owner_scope(principal: Principal, scope: str | None) -> None:
    assert policy.owner_scope(principal) == scope


# --- check_node ----------------------------------------------------------------------


@pytest.mark.parametrize("owner", OWNERS)
@pytest.mark.parametrize("write", [False, True])
def test_admin_may_do_anything(owner: str | None, write: bool) -> None:
    policy.check_node(ADMIN, owner, "n1", write=write)
    policy.check_node(NOAUTH_PRINCIPAL, owner, "n1", write=write)


@pytest.mark.parametrize("owner", OWNERS)
def test_observer_reads_every_node(owner: str | None) -> None:
    policy.check_node(OBSERVER, owner, "n1")
    policy.check_node(OBSERVER_A, owner, "n1")


@pytest.mark.parametrize("principal", [OBSERVER, OBSERVER_A])
@pytest.mark.parametrize("owner", OWNERS)
def test_observer_changes_no_node(principal: Principal, owner: str | None) -> None:
    with pytest.raises(Forbidden, match="may only read"):
        policy.check_node(principal, owner, "n1", write=True)


@pytest.mark.parametrize("write", [False, True])
def test_member_may_use_own_projects_nodes(write: bool) -> None:
    policy.check_node(MEMBER_A, "a", "n1", write=write)
    policy.check_node(MEMBER_B, "b", "n1", write=write)


@pytest.mark.parametrize("owner", [None, "", "b", "ops", "A"])
@pytest.mark.parametrize("write", [False, True])
def test_member_does_not_see_other_nodes(owner: str | None, write: bool) -> None:
    with pytest.raises(NodeNotFound) as info:
        policy.check_node(MEMBER_A, owner, "node-x", write=write)
    assert isinstance(info.value, NotFound)
    assert info.value.status == 404
    assert "node-x" in info.value.message


@pytest.mark.parametrize("owner", [None, "a", "ops"])
def test_member_and_observer_may_read_but_not_change_others(owner: str | None) -> None:
    both = who("member", "observer", project="b", name="mo")
    policy.check_node(both, owner, "n1")
    with pytest.raises(Forbidden, match="mo may not change node n1"):
        policy.check_node(both, owner, "n1", write=True)
    policy.check_node(both, "b", "n1", write=True)


@pytest.mark.parametrize("write", [False, True])
def test_no_role_is_forbidden_even_on_own_project(write: bool) -> None:
    with pytest.raises(Forbidden):
        policy.check_node(who(project="a"), "a", "n1", write=write)


def test_member_without_project_cannot_read_unowned_nodes() -> None:
    with pytest.raises(Forbidden, match="no project"):
        policy.check_node(who("member"), None, "n1")


def test_member_without_project_cannot_change_unowned_nodes() -> None:
    with pytest.raises(Forbidden, match="no project"):
        policy.check_node(who("member"), None, "n1", write=True)


# --- check_owner_change ------------------------------------------------------------------


@pytest.mark.parametrize("owner", OWNERS)
def test_admin_may_set_any_owner(owner: str | None) -> None:
    policy.check_owner_change(ADMIN, owner)


def test_member_may_keep_its_own_project() -> None:
    policy.check_owner_change(MEMBER_A, "a")


@pytest.mark.parametrize("owner", [None, "", "b", "ops"])
def test_member_may_not_give_nodes_away(owner: str | None) -> None:
    with pytest.raises(Forbidden, match="owned by project a") as info:
        policy.check_owner_change(MEMBER_A, owner)
    assert repr(owner) in info.value.message


@pytest.mark.parametrize(
    ("principal", "owner"),
    [(OBSERVER, "a"), (OBSERVER, "ops"), (OBSERVER_A, None), (OBSERVER_A, "ops")],
)
def test_observer_may_not_set_another_owner(principal: Principal, owner: str | None) -> None:
    with pytest.raises(Forbidden):
        policy.check_owner_change(principal, owner)


# --- the field rules (fields.py data, enforced by check_field_writers/_states) ------------

EVERY_STATE = sorted(
    {row.state for row in machine.TABLE} | {row.to for row in machine.TABLE} - {machine.TARGET}
)
INTERFACES = sorted(k for k in NODE_FIELDS if k.endswith("_interface") or k == "driver")
# States in which a node holds, or may still hold, an instance on its disk.
DEPLOYED = {st.ACTIVE, st.DEPLOYFAIL, st.ERROR, st.CLEANFAIL, st.ADOPTFAIL, st.RESCUE,
            st.RESCUEFAIL, st.UNRESCUEFAIL}  # fmt: skip
HELD = machine.ACTIVE_FLOW_STATES | machine.WAIT_STATES
CONNECTIVITY = ["is_smartnic", "local_link_connection", "pxe_enabled", "physical_network",
                "portgroup_uuid"]  # fmt: skip


def node_in(state: str, maintenance: bool) -> Node:
    return Node(uuid="n-1", provision_state=state, maintenance=maintenance, owner="a")


@pytest.mark.parametrize("key", ["is_smartnic", "local_link_connection"])
def test_smartnic_wiring_is_writable_by_admins_only(key: str) -> None:
    policy.check_field_writers(ADMIN, PORT_FIELDS, [key])
    for caller in (MEMBER_A, OBSERVER):
        with pytest.raises(Forbidden, match=key):
            policy.check_field_writers(caller, PORT_FIELDS, [key])


@pytest.mark.parametrize("state", EVERY_STATE)
@pytest.mark.parametrize("key", INTERFACES)
def test_driver_and_interfaces_never_change_while_deployed_or_held(key: str, state: str) -> None:
    rule = NODE_FIELDS[key].change_states
    assert rule is not None
    for caller, maintenance in itertools.product((ADMIN, MEMBER_A), (False, True)):
        may = (state not in DEPLOYED | HELD and state in rule) or (maintenance and caller.is_admin)
        node = node_in(state, maintenance)
        try:
            policy.check_field_states(caller, NODE_FIELDS, [key], node, "the node")
            refused = None
        except InvalidStateForChange as exc:
            refused = exc.message
        assert (refused is None) == may, (caller.name, maintenance, refused)
        assert refused is None or f"'{state}'" in refused


@pytest.mark.parametrize("state", EVERY_STATE)
@pytest.mark.parametrize("key", CONNECTIVITY)
def test_connectivity_changes_only_while_nothing_is_plugged(key: str, state: str) -> None:
    for maintenance in (False, True):
        node = node_in(state, maintenance)
        if maintenance or state in st.WIRING_CHANGE_STATES:
            policy.check_field_states(MEMBER_A, PORT_FIELDS, [key], node, "port p")
        else:
            with pytest.raises(InvalidStateForChange, match=key):
                policy.check_field_states(MEMBER_A, PORT_FIELDS, [key], node, "port p")
