"""Input checks shared by the network resources: unknown attributes, owning project, values.

The coercion below is the service's own guard for callers inside the process (the
embedded client); HTTP requests arrive already validated by network/api/schemas.py.
Messages never echo the value: it may be huge, unprintable or a secret.
"""

from __future__ import annotations

from typing import Any

from metalnic.auth import Principal
from metalnic.errors import Forbidden, InvalidInput


def unknown(body: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(f"Unrecognized attribute(s) '{', '.join(extra)}' for {what}.")


def project(who: Principal, body: dict[str, Any], default: str | None = None) -> str:
    """The project a new resource belongs to: the one asked for (only admins may
    name another), else an admin's ``default`` (a port: its network's), else the caller's."""
    asked = body.get("project_id") or body.get("tenant_id")
    if asked and asked != who.project and not who.is_admin:
        raise Forbidden("Only admins may create resources for another project.")
    if not asked and who.is_admin and default:
        return default
    return str(asked or who.project or "admin")


def text(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 255 or "\x00" in value or not _utf8(value):
        raise InvalidInput(f"Invalid input for {field}. Reason: not a valid string.")
    return value


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def opt_int(value: Any, field: str, low: int = 0, high: int = 2**31 - 1) -> int | None:
    """None, or an integer in ``low..high`` given as an integer or ASCII decimal digits."""
    if value is None:
        return None
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20
    if isinstance(value, bool) or not (isinstance(value, int) or digits):
        raise InvalidInput(f"Invalid input for {field}. Reason: not an integer.")
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"Invalid input for {field}. Reason: not in {low}..{high}.")
    return number


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidInput("Invalid input: not a valid boolean value.")
