"""metalnic.ids: UUIDs, logical names and MAC addresses."""

from __future__ import annotations

import uuid

import pytest

from metalnic import ids
from metalnic.errors import InvalidInput

CANONICAL = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"


def test_new_uuid_is_a_fresh_canonical_v4() -> None:
    first, second = ids.new_uuid(), ids.new_uuid()
    assert first != second
    assert uuid.UUID(first).version == 4
    assert ids.is_uuid_like(first)


@pytest.mark.parametrize(
    "value", [CANONICAL, CANONICAL.upper(), "00000000-0000-0000-0000-000000000000"]
)
def test_is_uuid_like_accepts_canonical_forms(value: str) -> None:
    assert ids.is_uuid_like(value)


@pytest.mark.parametrize(
    "value",
    [
        CANONICAL.replace("-", ""),  # uuid.UUID accepts it, the canonical form check does not
        "{" + CANONICAL + "}",
        "urn:uuid:" + CANONICAL,
        CANONICAL[:-1],
        CANONICAL + "0",
        CANONICAL[:-1] + "g",
        " " + CANONICAL,
        "",
        "node-1",
        None,
        123,
        uuid.UUID(CANONICAL),  # a UUID object is not a string
    ],
)
def test_is_uuid_like_rejects_other_forms(value: object) -> None:
    assert not ids.is_uuid_like(value)


def test_parse_uuid_lowercases() -> None:
    assert ids.parse_uuid(CANONICAL.upper()) == CANONICAL


def test_parse_uuid_error_names_the_field_and_value() -> None:
    with pytest.raises(InvalidInput) as info:
        ids.parse_uuid("not-a-uuid", "instance_uuid")
    assert "instance_uuid" in info.value.message
    assert "'not-a-uuid'" in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize("value", ["n", "node-1", "Node_1.rack~2", "a" * 255, "0", "1.2.3"])
def test_validate_name_accepts_unreserved_characters(value: str) -> None:
    assert ids.validate_name(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "a" * 256, "node 1", "node/1", "node:1", "nöde", "node@1", "node\t", None, 7, ["node"]],
)
def test_validate_name_rejects_bad_names(value: object) -> None:
    with pytest.raises(InvalidInput, match="logical name"):
        ids.validate_name(value)


@pytest.mark.parametrize("value", [CANONICAL, CANONICAL.upper()])
def test_validate_name_rejects_uuids(value: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be a UUID"):
        ids.validate_name(value)


def test_validate_name_accepts_uuid_without_hyphens() -> None:
    # Not in canonical form, so it is not "UUID-like" and is a valid name.
    value = CANONICAL.replace("-", "")
    assert ids.validate_name(value) == value


def test_validate_name_rejects_trailing_newline() -> None:
    with pytest.raises(InvalidInput):
        ids.validate_name("node\n")


@pytest.mark.parametrize(
    "value",
    [
        "52:54:00:12:34:56",
        "52-54-00-12-34-56",
        "525400123456",
        "52:54:00:12:34:56".upper(),
        "  52:54:00:12:34:56\n",
    ],
)
def test_normalize_mac_accepts_common_spellings(value: str) -> None:
    assert ids.normalize_mac(value) == "52:54:00:12:34:56"


@pytest.mark.parametrize(
    "value",
    [
        "52:54:00-12:34:56",  # mixed separators
        "52:54:00:12:34",  # too short
        "52:54:00:12:34:56:78",  # too long
        "52:54:00:12:34:5g",
        "5254.0012.3456",  # Cisco dotted form is not accepted
        "52:54:0:12:34:56",
        "52::54:00:12:34:56",
        "",
        None,
        0x525400123456,
    ],
)
def test_normalize_mac_rejects_malformed(value: object) -> None:
    with pytest.raises(InvalidInput, match="MAC address"):
        ids.normalize_mac(value)
