"""metalnic.baremetal.coerce (lenient booleans, strings); masking lives in test_redact."""

from __future__ import annotations

from typing import Any

import pytest

from metalnic.baremetal import coerce
from metalnic.errors import InvalidInput

# --- booleans ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [True, "True", "true", "TRUE", "t", "1", "on", "ON", "y", "yes", "Yes", " true "]
)
def test_as_bool_true(value: Any) -> None:
    assert coerce.as_bool("maintenance", value) is True


@pytest.mark.parametrize(
    "value", [False, "False", "false", "f", "0", "off", "n", "no", "NO", "\tfalse\n"]
)
def test_as_bool_false(value: Any) -> None:
    assert coerce.as_bool("maintenance", value) is False


@pytest.mark.parametrize(
    "value", ["", "maybe", "2", "-1", "truee", "yess", "none", "null", 1, 0, 1.0, None, [], {}]
)
def test_as_bool_rejects(value: Any) -> None:
    with pytest.raises(InvalidInput, match="Invalid value for maintenance") as info:
        coerce.as_bool("maintenance", value)
    assert "is not a boolean" in info.value.message
    assert info.value.status == 400


def test_as_optional_bool() -> None:
    assert coerce.as_optional_bool("protected", None) is None
    assert coerce.as_optional_bool("protected", "yes") is True
    assert coerce.as_optional_bool("protected", False) is False
    with pytest.raises(InvalidInput, match="protected"):
        coerce.as_optional_bool("protected", "")


# --- strings and objects ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "x", "a" * 255, " spaced ", "ünïcode"])
def test_as_str_accepts(value: str) -> None:
    assert coerce.as_str("name", value) == value


@pytest.mark.parametrize("value", [None, 1, True, ["x"], {"x": 1}, b"bytes"])
def test_as_str_rejects_non_strings(value: Any) -> None:
    with pytest.raises(InvalidInput, match="Invalid value for name: expected a string"):
        coerce.as_str("name", value)


def test_as_str_length_limit() -> None:
    with pytest.raises(InvalidInput, match="longer than 255 characters"):
        coerce.as_str("name", "a" * 256)
    assert coerce.as_str("name", "a" * 10, max_length=10) == "a" * 10
    with pytest.raises(InvalidInput, match="longer than 10 characters"):
        coerce.as_str("name", "a" * 11, max_length=10)


def test_as_optional_str() -> None:
    assert coerce.as_optional_str("name", None) is None
    assert coerce.as_optional_str("name", "n") == "n"
    with pytest.raises(InvalidInput):
        coerce.as_optional_str("name", 5)


def test_as_text_allows_4096_characters() -> None:
    assert coerce.as_text("description", None) is None
    assert coerce.as_text("description", "d" * 4096) == "d" * 4096
    with pytest.raises(InvalidInput, match="longer than 4096"):
        coerce.as_text("description", "d" * 4097)


def test_as_dict() -> None:
    assert coerce.as_dict("extra", None) == {}
    value = {"a": {"b": 1}}
    assert coerce.as_dict("extra", value) is value


@pytest.mark.parametrize("value", [[], "{}", 1, True, [("a", 1)]])
def test_as_dict_rejects(value: Any) -> None:
    with pytest.raises(InvalidInput, match="Invalid value for extra: expected a JSON object"):
        coerce.as_dict("extra", value)


def test_as_null_only_accepts_null() -> None:
    coerce.as_null_only("chassis_uuid", None)  # does not raise


@pytest.mark.parametrize("value", ["", "x", 0, False, {}, []])
def test_as_null_only_rejects_anything_else(value: Any) -> None:
    with pytest.raises(InvalidInput, match="Setting chassis_uuid is not supported"):
        coerce.as_null_only("chassis_uuid", value)
