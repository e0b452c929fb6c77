"""Identifiers: UUIDs, logical names and MAC addresses, parsed strictly.

Patterns are applied with ``fullmatch``: ``$`` would also accept a trailing newline.
"""

from __future__ import annotations

import re
import uuid

from metalnic.errors import InvalidInput

# Ironic (API >= 1.10) allows RFC 3986 unreserved characters in node names.
_NAME_RE = re.compile(r"[A-Za-z0-9\-._~]{1,255}")
_MAC_RE = re.compile(r"([0-9a-f]{2})([:-]?)([0-9a-f]{2})(\2[0-9a-f]{2}){4}")


def new_uuid() -> str:
    return str(uuid.uuid4())


def is_uuid_like(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def parse_uuid(value: object, what: str = "UUID") -> str:
    if not is_uuid_like(value):
        raise InvalidInput(f"Expected a UUID for {what} but received {value!r}.")
    return str(value).lower()


def validate_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            f"Expected a logical name but received {value!r}: use 1-255 letters, "
            "digits or the characters '-', '.', '_' and '~'."
        )
    if is_uuid_like(value):
        raise InvalidInput(f"A logical name cannot be a UUID: {value}.")
    return value


def normalize_mac(value: object) -> str:
    """Return ``aa:bb:cc:dd:ee:ff`` for a MAC given with ':' , '-' or no separator."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not _MAC_RE.fullmatch(text):
        raise InvalidInput(f"Expected a MAC address but received {value!r}.")
    digits = text.replace(":", "").replace("-", "")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
