"""Neutron's tag filters (``tags``, ``tags-any``, ``not-tags``, ``not-tags-any``): the rule
in Python (``TagFilter.admits``) against hand-written cases, and the SQL of
``TagFilter.where`` held to that rule for every resource of every subset of a few
tags, on an in-memory SQLite database."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from metalnic.db.base import Base
from metalnic.network.models import Network, NetworkTag
from metalnic.network.tags import TagFilter

TAGS = ("a", "b", "c")


@pytest.mark.parametrize(
    ("filters", "tags", "admitted"),
    [
        ({"tags": "a"}, {"a", "b"}, True),
        ({"tags": "a,b"}, {"a"}, False),  # all of
        ({"tags": "a,b"}, {"a", "b", "c"}, True),
        ({"tags-any": "a,b"}, {"b"}, True),  # any of
        ({"tags-any": "a,b"}, {"c"}, False),
        ({"tags-any": "a"}, set(), False),
        ({"not-tags": "a,b"}, {"a"}, True),  # not all of
        ({"not-tags": "a,b"}, {"a", "b"}, False),
        ({"not-tags": "a"}, set(), True),
        ({"not-tags-any": "a,b"}, {"c"}, True),  # none of
        ({"not-tags-any": "a,b"}, {"b", "c"}, False),
        ({"tags": "a", "not-tags-any": "c"}, {"a", "b"}, True),  # several: all must hold
        ({"tags": "a", "not-tags-any": "c"}, {"a", "c"}, False),
        ({}, set(), True),
        ({"tags": ""}, set(), True),  # an empty value filters nothing
        ({"tags": "a,,b"}, {"a", "b"}, True),
        ({"name": "x"}, set(), True),  # other filters are not tag filters
    ],
)
def test_admits(filters: dict[str, str], tags: set[str], admitted: bool) -> None:
    assert TagFilter.of(filters).admits(tags) is admitted


def test_repeated_parameters_add_up() -> None:
    assert TagFilter.of({"tags": ["a", "b,c"]}).all_of == {"a", "b", "c"}
    assert not TagFilter.of({"name": "x"})


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    tables = [Base.metadata.tables[name] for name in ("networks", "network_tags")]
    Base.metadata.create_all(engine, tables=tables)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _subsets() -> list[frozenset[str]]:
    return [frozenset(c) for n in range(len(TAGS) + 1) for c in itertools.combinations(TAGS, n)]


def test_sql_matches_the_rule(session: Session) -> None:
    tagged: dict[str, frozenset[str]] = {}
    for i, tags in enumerate(_subsets()):
        ident = f"net-{i}"
        session.add(Network(id=ident, project_id="p", network_type="vlan"))
        session.add_all(NetworkTag(resource_id=ident, tag=t) for t in tags)
        tagged[ident] = tags
    session.flush()
    names = ("tags", "tags-any", "not-tags", "not-tags-any")
    values = ["", "a", "a,b", "a,b,c", "c"]
    checked = 0
    for name_a, name_b in itertools.combinations_with_replacement(names, 2):
        for value_a, value_b in itertools.product(values, repeat=2):
            filters = {name_a: value_a} if name_a == name_b else {name_a: value_a, name_b: value_b}
            rule = TagFilter.of(filters)
            stmt = select(Network.id).where(rule.where(NetworkTag, Network.id))
            found = set(session.scalars(stmt))
            assert found == {i for i, t in tagged.items() if rule.admits(t)}, filters
            checked += 1
    assert checked > 200
