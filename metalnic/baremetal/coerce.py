"""Coercion of API input values, with Ironic's leniency and clear errors.

Each function takes the field name (for the message) and the raw JSON value
and returns the value to store, or raises ``InvalidInput``.
"""

from __future__ import annotations

from typing import Any

from metalnic.errors import InvalidInput
from metalnic.jsontypes import JSONObject

_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


def as_bool(field: str, value: Any) -> bool:
    """A JSON boolean, or one of the strings Ironic accepts ("True", "false", "1", ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise InvalidInput(f"Invalid value for {field}: {value!r} is not a boolean.")


def as_optional_bool(field: str, value: Any) -> bool | None:
    return None if value is None else as_bool(field, value)


def as_str(field: str, value: Any, max_length: int = 255) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid value for {field}: expected a string, got {value!r}.")
    if len(value) > max_length:
        raise InvalidInput(f"Invalid value for {field}: longer than {max_length} characters.")
    return value


def as_optional_str(field: str, value: Any, max_length: int = 255) -> str | None:
    return None if value is None else as_str(field, value, max_length)


def as_text(field: str, value: Any) -> str | None:
    return as_optional_str(field, value, max_length=4096)


def as_dict(field: str, value: Any) -> JSONObject:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"Invalid value for {field}: expected a JSON object, got {value!r}.")
    return value


def as_null_only(field: str, value: Any) -> None:
    """For fields of features metalnic does not have (chassis)."""
    if value is not None:
        raise InvalidInput(f"Setting {field} is not supported by metalnic.")
    return None
