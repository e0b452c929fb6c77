"""Neutron's standard-attr tags: a set of strings on networks, subnets, ports and security
groups.

``KINDS`` is the one table of what can be tagged: the collection name of the API
(``/v2.0/{collection}/{id}/tags``), the tag table and the two access rules of
that kind of resource (who may see its tags, who may change them: the same
callers that may read and update the resource itself, so another project's
object answers as a missing one).  A new kind of resource is one row here, its
tag model (``network/models.py``) and its table (a migration).

``POST …/tags`` (Neutron's ``tag-creation``) adds the tags it names to those the
resource has (idempotent: a tag it has already is left alone).

A change of the tags is a change of the resource: it bumps the resource's
``revision_number`` (and ``updated_at``), as Neutron does; a request that
changes nothing (a tag added twice, the same set put again) bumps nothing.

``TagFilter`` is the list filters ``tags``, ``tags-any``, ``not-tags`` and
``not-tags-any`` (comma-separated): all of, any of, not all of, none of.  Its
``admits`` is the rule on a set of tags in Python (the unit tests hold the SQL
of ``where`` to it); ``where`` is the same rule as a clause on a list's query.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, func, not_, select, true
from sqlalchemy.orm import Session, selectinload

from metalnic.auth import Principal
from metalnic.db.session import Database
from metalnic.errors import InvalidInput, TagNotFound, TagsLimitExceeded
from metalnic.network import access
from metalnic.network.models import (
    Network,
    NetworkPort,
    NetworkTag,
    PortTag,
    SecurityGroup,
    SecurityGroupTag,
    Subnet,
    SubnetTag,
)

MAX_TAG_LEN = 255
# Neutron's per-resource limit, checked as Neutron does: on the tags a PUT or POST
# names, and on the resource's tags plus the one a ``PUT …/tags/{tag}`` adds.
MAX_TAGS = 50
# The list filters, by query parameter name.
FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")

TagModel = type[NetworkTag] | type[SubnetTag] | type[PortTag] | type[SecurityGroupTag]


class Tagged(Protocol):
    """A resource that carries tags (its ``tag_rows``, see ``models._tags_of``)."""

    id: Any
    tag_rows: Any
    revision_number: Any


@dataclass(frozen=True)
class Kind:
    model: TagModel
    relationship: Any  # the resource's ``tag_rows`` (for list loaders)
    visible: Callable[[Session, Principal, str], Tagged]
    writable: Callable[[Session, Principal, str], Tagged]


KINDS: dict[str, Kind] = {
    "networks": Kind(NetworkTag, Network.tag_rows, access.visible_network, access.writable_network),
    "subnets": Kind(SubnetTag, Subnet.tag_rows, access.visible_subnet, access.writable_subnet),
    "ports": Kind(PortTag, NetworkPort.tag_rows, access.visible_port, access.writable_port),
    "security-groups": Kind(
        SecurityGroupTag,
        SecurityGroup.tag_rows,
        access.visible_security_group,
        access.writable_security_group,
    ),
}


def names(resource: Tagged) -> list[str]:
    """The tags of a resource as its views show them (sorted)."""
    return sorted(row.tag for row in resource.tag_rows)


def check_tag(tag: str) -> str:
    """A tag named in a path (``…/tags/{tag}``): a string of at most 255 characters."""
    if len(tag) > MAX_TAG_LEN:
        raise InvalidInput(f"'{tag[:32]}…' exceeds maximum length of {MAX_TAG_LEN}.")
    return tag


class Tags:
    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, who: Principal, kind: str, resource_id: str) -> builtins.list[str]:
        with self.db.transaction() as s:
            return names(_kind(kind).visible(s, who, resource_id))

    def check(self, who: Principal, kind: str, resource_id: str, tag: str) -> None:
        """Raises TagNotFound unless the resource has ``tag``."""
        check_tag(tag)
        with self.db.transaction() as s:
            if tag not in names(_kind(kind).visible(s, who, resource_id)):
                raise TagNotFound(tag)

    def replace(
        self, who: Principal, kind: str, resource_id: str, tags: builtins.list[str]
    ) -> builtins.list[str]:
        """``PUT …/tags``: exactly ``tags`` (checked unique by ``portinputs.Tags``)."""
        _check_count(kind, tags)
        return self._change(who, kind, resource_id, lambda _old: set(tags))

    def create(self, who: Principal, kind: str, resource_id: str, tags: builtins.list[str]) -> None:
        """``POST …/tags``: ``tags`` added to the resource's (those it has stay)."""
        _check_count(kind, tags)
        self._change(who, kind, resource_id, lambda old: old | set(tags), relative=True)

    def add(self, who: Principal, kind: str, resource_id: str, tag: str) -> None:
        check_tag(tag)

        def plus(old: set[str]) -> set[str]:
            _check_count(kind, old | {tag})
            return old | {tag}

        self._change(who, kind, resource_id, plus, relative=True)

    def remove(self, who: Principal, kind: str, resource_id: str, tag: str) -> None:
        check_tag(tag)

        def without(old: set[str]) -> set[str]:
            if tag not in old:
                raise TagNotFound(tag)
            return old - {tag}

        self._change(who, kind, resource_id, without, relative=True)

    def clear(self, who: Principal, kind: str, resource_id: str) -> None:
        self._change(who, kind, resource_id, lambda _old: set(), relative=True)

    def _change(
        self,
        who: Principal,
        kind: str,
        resource_id: str,
        new: Callable[[set[str]], set[str]],
        relative: bool = False,
    ) -> builtins.list[str]:
        """One transaction that changes the tags to ``new(old)``.  A change relative to
        what is there (add, remove, remove all) that lost the resource's row to a
        concurrent write (StaleRevision) is made again on a fresh read: it still
        means the same, and nothing of the other write is lost.  A replacement of all
        tags is answered 409 instead, as every other PUT that raced."""
        k = _kind(kind)

        def change(s: Session) -> builtins.list[str]:
            resource = k.writable(s, who, resource_id)
            set_tags(resource, k.model, new({row.tag for row in resource.tag_rows}))
            s.flush()
            return names(resource)

        if relative:
            return self.db.retry(change)
        with self.db.transaction() as s:
            return change(s)


def set_tags(resource: Tagged, model: TagModel, wanted: set[str]) -> None:
    """Make ``resource``'s tags ``wanted``; a change bumps its revision."""
    rows = resource.tag_rows
    old = {row.tag for row in rows}
    if old == wanted:
        return
    for row in [r for r in rows if r.tag not in wanted]:
        rows.remove(row)
    for tag in sorted(wanted - old):
        rows.append(model(resource_id=resource.id, tag=tag))
    resource.revision_number += 1


def _check_count(kind: str, tags: builtins.list[str] | set[str]) -> None:
    if len(set(tags)) > MAX_TAGS:
        raise TagsLimitExceeded(kind.replace("-", "_"), MAX_TAGS)


def _kind(kind: str) -> Kind:
    found = KINDS.get(kind)
    if found is None:  # the routes are made from KINDS: a programming error
        raise InvalidInput(f"Resource {kind} has no tags.")
    return found


# --- list filters ---------------------------------------------------------------------


def _split(value: str | builtins.list[str] | None) -> frozenset[str]:
    """Neutron's ``tags=a,b``; repeated parameters (``tags=a&tags=b``) add up."""
    if value is None:
        return frozenset()
    values = [value] if isinstance(value, str) else value
    return frozenset(t for v in values for t in v.split(",") if t)


@dataclass(frozen=True)
class TagFilter:
    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()
    not_all_of: frozenset[str] = frozenset()
    none_of: frozenset[str] = frozenset()

    @classmethod
    def of(cls, filters: Mapping[str, Any]) -> TagFilter:
        """From a list's filters (the query's ``tags``… parameters, others ignored)."""
        return cls(*(_split(filters.get(name)) for name in FILTERS))

    def __bool__(self) -> bool:
        return bool(self.all_of or self.any_of or self.not_all_of or self.none_of)

    def admits(self, tags: set[str] | frozenset[str]) -> bool:
        """The rule: has all of ``tags``, one of ``tags-any``, not all of
        ``not-tags``, none of ``not-tags-any`` (each only when given)."""
        return (
            (not self.all_of or self.all_of <= tags)
            and (not self.any_of or bool(self.any_of & tags))
            and (not self.not_all_of or not self.not_all_of <= tags)
            and (not self.none_of or not self.none_of & tags)
        )

    def where(self, model: TagModel, resource_id: Any) -> ColumnElement[bool]:
        """``admits`` as a clause on ``resource_id`` (the listed resource's id column)."""
        clauses: builtins.list[ColumnElement[bool]] = []
        if self.all_of:
            clauses.append(resource_id.in_(_having_all(model, self.all_of)))
        if self.any_of:
            clauses.append(resource_id.in_(_having_any(model, self.any_of)))
        if self.not_all_of:
            clauses.append(not_(resource_id.in_(_having_all(model, self.not_all_of))))
        if self.none_of:
            clauses.append(not_(resource_id.in_(_having_any(model, self.none_of))))
        return and_(true(), *clauses)


def _having_any(model: TagModel, tags: frozenset[str]) -> Select[Any]:
    return select(model.resource_id).where(model.tag.in_(sorted(tags)))


def _having_all(model: TagModel, tags: frozenset[str]) -> Select[Any]:
    # (resource_id, tag) is the primary key: a resource counts each tag once.
    return _having_any(model, tags).group_by(model.resource_id).having(func.count() == len(tags))


def loaded(kind: str) -> Any:
    """The loader option of an ORM list of ``kind``: the tags of all its rows in one
    more query (not one per row)."""
    return selectinload(_kind(kind).relationship)


def filtered(
    stmt: Select[Any], filters: Mapping[str, Any], kind: str, resource_id: Any
) -> Select[Any]:
    """``stmt`` (a list of ``kind``) narrowed by the tag filters among ``filters``."""
    tag_filter = TagFilter.of(filters)
    return stmt.where(tag_filter.where(_kind(kind).model, resource_id)) if tag_filter else stmt
