"""Masking of secrets in driver_info and instance_info before they leave the server."""

from __future__ import annotations

from typing import Any

MASK = "******"
_SECRET_MARKERS = (
    "password",
    "passwd",
    "pswd",
    "secret",
    "token",
    "private_key",
    "passphrase",
    "credential",
    "kg_key",
    "configdrive",
)


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def mask(data: Any) -> Any:
    """A copy of ``data`` with the value of every secret-looking key replaced by ``******``."""
    if isinstance(data, dict):
        return {
            k: (MASK if is_secret_key(k) and v is not None else mask(v)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [mask(v) for v in data]
    return data
