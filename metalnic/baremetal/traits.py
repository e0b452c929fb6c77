"""Node traits, as Ironic's ``/v1/nodes/{id}/traits`` (API 1.37).

A trait is a standard name from the ``os_traits`` library (``HW_CPU_X86_VMX``) or
a custom one: ``CUSTOM_`` followed by capital letters, digits and underscores; at
most 255 characters and at most 50 traits a node, as Ironic.  They live in the
node's ``traits`` column (a JSON list, kept sorted and without repeats), so a
change is one update of the node's row, checked against its revision; the
inventory applies a change that lost that race again on a fresh read, so racing
additions all land.  A flow holding the node refuses trait writes (409
NodeLocked) as it does every other write to the node.  Reading needs the right to
see the node; changing needs the right to change it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import os_traits
from sqlalchemy.orm import Session

from metalnic.auth import Principal
from metalnic.baremetal import nodes, policy
from metalnic.baremetal.models import Node
from metalnic.errors import InvalidInput, NotFound

MAX_TRAITS = 50
MAX_LENGTH = 255
_CUSTOM = re.compile(r"CUSTOM_[A-Z0-9_]+")
_STANDARD = frozenset(os_traits.get_traits())

INVALID = (
    "Invalid trait {trait!r}: a trait is at most 255 characters; standard traits are "
    "those of the os_traits library; a custom trait starts with CUSTOM_ and uses only "
    "A-Z, 0-9 and _."
)


def check(trait: object) -> str:
    """``trait`` if it is a valid trait name, else 400."""
    if (
        not isinstance(trait, str)
        or len(trait) > MAX_LENGTH
        or not (trait in _STANDARD or _CUSTOM.fullmatch(trait))
    ):
        raise InvalidInput(INVALID.format(trait=trait))
    return trait


def parse_list(body: object) -> list[str]:
    """The body of ``PUT /v1/nodes/{id}/traits``: ``{"traits": [<trait>, ...]}``."""
    if (
        not isinstance(body, dict)
        or set(body) != {"traits"}
        or not isinstance(body["traits"], list)
    ):
        raise InvalidInput('Expected {"traits": [<trait>, ...]}.')
    return [check(t) for t in body["traits"]]


def _writable(session: Session, who: Principal, ident: str) -> Node:
    node = nodes.find(session, ident, for_update=True)
    policy.check_node(who, node.owner, ident, write=True)
    policy.require_unlocked(node)
    return node


def _store(node: Node, traits: Iterable[str]) -> None:
    unique = sorted(set(traits))
    if len(unique) > MAX_TRAITS:
        raise InvalidInput(
            f"Node {node.uuid} would have {len(unique)} traits; at most {MAX_TRAITS} are allowed."
        )
    node.traits = unique


def list_traits(session: Session, who: Principal, ident: str) -> list[str]:
    return list(nodes.get(session, who, ident).traits or [])


def replace(session: Session, who: Principal, ident: str, traits: Sequence[str]) -> None:
    _store(_writable(session, who, ident), traits)


def add(session: Session, who: Principal, ident: str, trait: str) -> None:
    check(trait)  # refused before the node is read
    node = _writable(session, who, ident)
    _store(node, [*(node.traits or []), trait])


def remove(session: Session, who: Principal, ident: str, trait: str | None) -> None:
    """Remove ``trait`` (404 when the node lacks it), or every trait (None)."""
    node = _writable(session, who, ident)
    if trait is None:
        node.traits = []
        return
    if trait not in (node.traits or []):
        raise NotFound(f"Node {node.uuid} does not have trait {trait}.")
    node.traits = [t for t in node.traits if t != trait]
