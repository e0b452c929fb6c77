"""Who may do what to nodes and ports (RBAC).

* admin — everything;
* member — read and write nodes owned by its project, and their ports;
  other nodes do not exist for it (404, as Ironic hides them);
* observer — read everything, write nothing.
"""

from __future__ import annotations

from metalnic.auth import Principal
from metalnic.errors import Forbidden, NodeNotFound


def require_reader(who: Principal) -> None:
    if not who.roles & {"admin", "member", "observer"}:
        raise Forbidden(f"User {who.name} has no role that allows reading the bare-metal API.")
    if who.roles == {"member"} and not who.project:
        raise Forbidden(f"User {who.name} is a member of no project.")


def require_writer(who: Principal) -> None:
    require_reader(who)
    if not who.roles & {"admin", "member"}:
        raise Forbidden(f"User {who.name} may only read: the observer role cannot make changes.")


def owner_scope(who: Principal) -> str | None:
    """The owner a listing is restricted to, or None for all nodes."""
    if who.is_admin or "observer" in who.roles:
        return None
    return who.project or ""


def check_node(who: Principal, owner: str | None, ident: str, write: bool = False) -> None:
    """Raise unless ``who`` may see (and with ``write``, change) a node with ``owner``."""
    scope = owner_scope(who)
    if write:
        require_writer(who)
        if not who.is_admin and (not who.project or owner != who.project):
            if scope is None:  # it can see the node, just not change it
                raise Forbidden(f"User {who.name} may not change node {ident}.")
            raise NodeNotFound(ident)
        return
    require_reader(who)
    if scope is not None and owner != scope:
        raise NodeNotFound(ident)


def check_owner_change(who: Principal, new_owner: str | None) -> None:
    """Members may only create or keep nodes owned by their own project."""
    if who.is_admin:
        return
    if not who.project or new_owner != who.project:
        raise Forbidden(
            f"User {who.name} may only manage nodes owned by project {who.project}; "
            f"owner {new_owner!r} is not allowed."
        )
