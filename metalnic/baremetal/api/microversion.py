"""Ironic's API microversions: which one a request asked for, and the range we serve.

A request names its version in ``X-OpenStack-Ironic-API-Version`` ("1.53",
or "latest"); without the header it gets the minimum, as with Ironic.
Every ``/v1`` answer carries the minimum, maximum and chosen version in
headers, so clients can negotiate down after a 406.
"""

from __future__ import annotations

import re

from metalnic.baremetal.fields import Version
from metalnic.errors import InvalidInput, NotAcceptable

HEADER = "X-OpenStack-Ironic-API-Version"
MIN_HEADER = "X-OpenStack-Ironic-API-Minimum-Version"
MAX_HEADER = "X-OpenStack-Ironic-API-Maximum-Version"

MIN_VERSION: Version = (1, 1)
# 1.53 adds is_smartnic to ports; nothing newer is implemented yet.
MAX_VERSION: Version = (1, 53)

_VERSION_RE = re.compile(r"\s*([0-9]+)\.([0-9]+)\s*")
# The same rule for the OpenAPI document.
HEADER_MAX_LENGTH = 64
PATTERN = r"^\s*([0-9]+\.[0-9]+|[Ll][Aa][Tt][Ee][Ss][Tt])\s*$"


def fmt(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def parse(value: str | None) -> Version:
    if value is None:
        return MIN_VERSION
    if value.strip().lower() == "latest":
        return MAX_VERSION
    match = _VERSION_RE.fullmatch(value)
    if not match:
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
        raise InvalidInput(
            f"Invalid value for {HEADER} header: {shown}; expected 'latest' or 'MAJOR.MINOR'."
        )
    # More than 9 digits cannot be in range (and 4,301 would make int() itself fail).
    major, minor = match.group(1), match.group(2)
    if len(major) > 9 or len(minor) > 9:
        raise NotAcceptable(
            f"Version {major[:12]}.{minor[:12]} was requested but is not supported by this "
            f"service. The supported version range is: [{fmt(MIN_VERSION)}, {fmt(MAX_VERSION)}]."
        )
    version = (int(major), int(minor))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise NotAcceptable(
            f"Version {fmt(version)} was requested but is not supported by this service. "
            f"The supported version range is: [{fmt(MIN_VERSION)}, {fmt(MAX_VERSION)}]."
        )
    return version


def range_headers() -> dict[str, str]:
    return {MIN_HEADER: fmt(MIN_VERSION), MAX_HEADER: fmt(MAX_VERSION)}
