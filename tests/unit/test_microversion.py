"""metalnic.baremetal.api.microversion: parsing X-OpenStack-Ironic-API-Version."""

from __future__ import annotations

import pytest

from metalnic.baremetal.api import microversion
from metalnic.errors import InvalidInput, NotAcceptable


def test_supported_range() -> None:
    assert microversion.MIN_VERSION == (1, 1)
    assert microversion.MAX_VERSION == (1, 53)


def test_no_header_means_the_minimum() -> None:
    assert microversion.parse(None) == microversion.MIN_VERSION


@pytest.mark.parametrize("value", ["latest", "LATEST", "Latest", "  latest\t"])
def test_latest_means_the_maximum(value: str) -> None:
    assert microversion.parse(value) == microversion.MAX_VERSION


@pytest.mark.parametrize(
    ("value", "version"),
    [
        ("1.1", (1, 1)),
        ("1.9", (1, 9)),
        ("1.10", (1, 10)),  # numeric, not lexical: 1.10 > 1.9
        ("1.53", (1, 53)),
        (" 1.31 ", (1, 31)),
        ("1.053", (1, 53)),
    ],
)
def test_supported_versions(value: str, version: tuple[int, int]) -> None:
    assert microversion.parse(value) == version


@pytest.mark.parametrize("value", ["1.0", "1.54", "1.99", "0.9", "2.0", "2.1", "0.53", "1.100"])
def test_unsupported_versions_are_not_acceptable(value: str) -> None:
    with pytest.raises(NotAcceptable) as info:
        microversion.parse(value)
    assert info.value.status == 406
    assert "[1.1, 1.53]" in info.value.message


def test_not_acceptable_names_the_requested_version() -> None:
    with pytest.raises(NotAcceptable, match="Version 1.54 was requested"):
        microversion.parse("1.54")


@pytest.mark.parametrize(
    "value", ["", " ", "1", "1.", ".1", "1.5.3", "v1.5", "1,5", "1.x", "-1.5", "1.-5", "newest"]
)
def test_malformed_versions_are_invalid_input(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        microversion.parse(value)
    assert not isinstance(info.value, NotAcceptable)
    assert info.value.status == 400
    assert microversion.HEADER in info.value.message


@pytest.mark.parametrize(("version", "text"), [((1, 1), "1.1"), ((1, 53), "1.53"), ((2, 0), "2.0")])
def test_fmt(version: tuple[int, int], text: str) -> None:
    assert microversion.fmt(version) == text


def test_range_headers() -> None:
    assert microversion.range_headers() == {
        "X-OpenStack-Ironic-API-Minimum-Version": "1.1",
        "X-OpenStack-Ironic-API-Maximum-Version": "1.53",
    }


def test_parse_round_trips_through_fmt() -> None:
    for minor in range(1, 54):
        version = (1, minor)
        assert microversion.parse(microversion.fmt(version)) == version
