"""metalnic.jsonpatch: the RFC 6902 subset used by the PATCH routes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from metalnic import jsonpatch
from metalnic.errors import InvalidInput, InvalidPatch


def doc() -> dict[str, Any]:
    return {
        "name": "node-1",
        "extra": {"rack": "r1", "a/b": 1, "m~n": 2, "tags": ["x", "y"]},
        "list": [10, 20, 30],
        "flag": None,
    }


# --- parse_pointer -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/name", ["name"]),
        ("/extra/rack", ["extra", "rack"]),
        ("/extra/a~1b", ["extra", "a/b"]),
        ("/extra/m~0n", ["extra", "m~n"]),
        ("/x/~01", ["x", "~1"]),  # RFC 6901: decode ~1 before ~0
        ("/a/", ["a", ""]),
        ("/list/0", ["list", "0"]),
    ],
)
def test_parse_pointer(path: str, parts: list[str]) -> None:
    assert jsonpatch.parse_pointer(path) == parts


@pytest.mark.parametrize("path", ["", "/", "name", "name/x", None, 1, ["name"]])
def test_parse_pointer_rejects(path: object) -> None:
    with pytest.raises(InvalidPatch, match="Invalid patch path"):
        jsonpatch.parse_pointer(path)


# --- validate ------------------------------------------------------------------


def test_validate_returns_the_operations() -> None:
    patch = [
        {"op": "add", "path": "/a", "value": 1},
        {"op": "replace", "path": "/b", "value": None},
        {"op": "remove", "path": "/c"},
        {"op": "test", "path": "/d", "value": [1]},
    ]
    assert jsonpatch.validate(patch) == patch


def test_invalid_patch_is_a_400_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        jsonpatch.validate([])
    assert isinstance(info.value, InvalidPatch)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ([], "non-empty JSON list"),
        ({}, "non-empty JSON list"),
        ({"op": "add", "path": "/a", "value": 1}, "non-empty JSON list"),
        (None, "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        (["add"], "Invalid patch operation"),
        ([{"path": "/a", "value": 1}], "Invalid patch operation"),
        ([{"op": "move", "path": "/a", "from": "/b"}], "Invalid patch operation"),
        ([{"op": "copy", "path": "/a", "from": "/b"}], "Invalid patch operation"),
        ([{"op": "ADD", "path": "/a", "value": 1}], "Invalid patch operation"),
        ([{"op": "add", "value": 1}], "Invalid patch path"),
        ([{"op": "add", "path": "a", "value": 1}], "Invalid patch path"),
        ([{"op": "add", "path": "/", "value": 1}], "Invalid patch path"),
        ([{"op": "add", "path": "/a", "value": 1, "from": "/b"}], "Unknown keys.*from"),
        ([{"op": "add", "path": "/a"}], "needs a 'value'"),
        ([{"op": "replace", "path": "/a"}], "needs a 'value'"),
        ([{"op": "test", "path": "/a"}], "needs a 'value'"),
        ([{"op": "remove", "path": "/a", "value": 1}], "takes no 'value'"),
    ],
)
def test_validate_rejects(patch: object, message: str) -> None:
    with pytest.raises(InvalidPatch, match=message):
        jsonpatch.validate(patch)


def test_validate_checks_every_operation() -> None:
    patch = [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b", "value": 2}]
    with pytest.raises(InvalidPatch, match="remove on /b"):
        jsonpatch.validate(patch)


def test_validate_accepts_null_value() -> None:
    patch = [{"op": "add", "path": "/a", "value": None}]
    assert jsonpatch.validate(patch) == patch


# --- apply: objects -------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "check"),
    [
        ({"op": "add", "path": "/new", "value": {"k": 1}}, lambda d: d["new"] == {"k": 1}),
        ({"op": "add", "path": "/name", "value": "n2"}, lambda d: d["name"] == "n2"),
        ({"op": "replace", "path": "/name", "value": "n3"}, lambda d: d["name"] == "n3"),
        ({"op": "replace", "path": "/flag", "value": True}, lambda d: d["flag"] is True),
        ({"op": "remove", "path": "/name"}, lambda d: "name" not in d),
        ({"op": "remove", "path": "/flag"}, lambda d: "flag" not in d),
        ({"op": "add", "path": "/extra/pdu", "value": "p1"}, lambda d: d["extra"]["pdu"] == "p1"),
        ({"op": "remove", "path": "/extra/a~1b"}, lambda d: "a/b" not in d["extra"]),
        ({"op": "replace", "path": "/extra/m~0n", "value": 3}, lambda d: d["extra"]["m~n"] == 3),
        (
            {"op": "add", "path": "/extra/tags/1", "value": "z"},
            lambda d: d["extra"]["tags"] == ["x", "z", "y"],
        ),
    ],
)
def test_apply_object_operations(op: dict[str, Any], check: Any) -> None:
    result = jsonpatch.apply(doc(), [op])
    assert check(result)


def test_apply_leaves_other_fields_alone() -> None:
    result = jsonpatch.apply(doc(), [{"op": "replace", "path": "/extra/rack", "value": "r2"}])
    expected = doc()
    expected["extra"]["rack"] = "r2"
    assert result == expected


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "replace", "path": "/missing", "value": 1}, "Cannot replace /missing"),
        ({"op": "remove", "path": "/missing"}, "Cannot remove /missing"),
        ({"op": "test", "path": "/missing", "value": 1}, "Cannot test /missing"),
        ({"op": "add", "path": "/missing/child", "value": 1}, "/missing/child does not exist"),
        ({"op": "remove", "path": "/extra/nope/x"}, "does not exist"),
        ({"op": "add", "path": "/name/x", "value": 1}, "not an object or list"),
        ({"op": "add", "path": "/flag/x", "value": 1}, "not an object or list"),
    ],
)
def test_apply_object_errors(op: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPatch, match=message):
        jsonpatch.apply(doc(), [op])


# --- apply: lists ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ({"op": "add", "path": "/list/0", "value": 5}, [5, 10, 20, 30]),
        ({"op": "add", "path": "/list/1", "value": 15}, [10, 15, 20, 30]),
        ({"op": "add", "path": "/list/3", "value": 40}, [10, 20, 30, 40]),  # index == len
        ({"op": "add", "path": "/list/-", "value": 40}, [10, 20, 30, 40]),
        ({"op": "replace", "path": "/list/2", "value": 33}, [10, 20, 33]),
        ({"op": "remove", "path": "/list/0"}, [20, 30]),
        ({"op": "remove", "path": "/list/2"}, [10, 20]),
        ({"op": "test", "path": "/list/1", "value": 20}, [10, 20, 30]),
    ],
)
def test_apply_list_operations(op: dict[str, Any], expected: list[int]) -> None:
    assert jsonpatch.apply(doc(), [op])["list"] == expected


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "/list/4", "value": 1},
        {"op": "replace", "path": "/list/3", "value": 1},
        {"op": "remove", "path": "/list/3"},
        {"op": "test", "path": "/list/3", "value": 1},
        {"op": "remove", "path": "/list/-"},
        {"op": "replace", "path": "/list/-", "value": 1},
        {"op": "add", "path": "/list/-1", "value": 1},
        {"op": "add", "path": "/list/x", "value": 1},
        {"op": "add", "path": "/list/", "value": 1},
    ],
)
def test_apply_list_index_errors(op: dict[str, Any]) -> None:
    with pytest.raises(InvalidPatch, match="not a valid list index"):
        jsonpatch.apply(doc(), [op])


def test_apply_through_a_list_index() -> None:
    data = {"items": [{"k": 1}, {"k": 2}]}
    result = jsonpatch.apply(data, [{"op": "replace", "path": "/items/1/k", "value": 3}])
    assert result == {"items": [{"k": 1}, {"k": 3}]}


def test_apply_through_a_missing_list_index() -> None:
    data = {"items": [{"k": 1}]}
    with pytest.raises(InvalidPatch, match="does not exist"):
        jsonpatch.apply(data, [{"op": "replace", "path": "/items/1/k", "value": 3}])


@pytest.mark.parametrize("path", ["/list/\u00b2", "/items/\u00b2/k"])
def test_apply_non_ascii_digit_index_is_invalid_patch(path: str) -> None:
    data = {"list": [1, 2, 3], "items": [{"k": 1}]}
    with pytest.raises(InvalidPatch):
        jsonpatch.apply(data, [{"op": "replace", "path": path, "value": 0}])


# --- apply: test -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/name", "node-1"),
        ("/flag", None),
        ("/extra/tags", ["x", "y"]),
        ("/extra", {"rack": "r1", "a/b": 1, "m~n": 2, "tags": ["x", "y"]}),
    ],
)
def test_test_operation_passes(path: str, value: Any) -> None:
    assert jsonpatch.apply(doc(), [{"op": "test", "path": path, "value": value}]) == doc()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/name", "node-2"),
        ("/flag", False),
        ("/extra/tags", ["y", "x"]),
        ("/list/0", "10"),
    ],
)
def test_test_operation_fails(path: str, value: Any) -> None:
    with pytest.raises(InvalidPatch, match="Patch test failed"):
        jsonpatch.apply(doc(), [{"op": "test", "path": path, "value": value}])


@pytest.mark.parametrize(("actual", "expected"), [(1, True), (0, False), (True, 1)])
def test_test_operation_distinguishes_booleans_from_numbers(actual: Any, expected: Any) -> None:
    with pytest.raises(InvalidPatch, match="Patch test failed"):
        jsonpatch.apply({"a": actual}, [{"op": "test", "path": "/a", "value": expected}])


def test_failed_test_stops_the_whole_patch() -> None:
    patch = [
        {"op": "replace", "path": "/name", "value": "changed"},
        {"op": "test", "path": "/name", "value": "something else"},
    ]
    with pytest.raises(InvalidPatch):
        jsonpatch.apply(doc(), patch)


# --- apply: sequencing and copying -----------------------------------------------


def test_operations_apply_in_order() -> None:
    patch: list[dict[str, Any]] = [
        {"op": "add", "path": "/extra/new", "value": {"a": []}},
        {"op": "add", "path": "/extra/new/a/-", "value": 1},
        {"op": "test", "path": "/extra/new", "value": {"a": [1]}},
        {"op": "remove", "path": "/extra/new/a/0"},
    ]
    assert jsonpatch.apply(doc(), patch)["extra"]["new"] == {"a": []}


def test_apply_does_not_modify_the_input_document() -> None:
    original = doc()
    snapshot = copy.deepcopy(original)
    jsonpatch.apply(
        original,
        [{"op": "remove", "path": "/extra/rack"}, {"op": "add", "path": "/list/-", "value": 1}],
    )
    assert original == snapshot


def test_apply_failure_does_not_modify_the_input_document() -> None:
    original = doc()
    snapshot = copy.deepcopy(original)
    with pytest.raises(InvalidPatch):
        jsonpatch.apply(
            original,
            [{"op": "remove", "path": "/extra/rack"}, {"op": "remove", "path": "/missing"}],
        )
    assert original == snapshot


@pytest.mark.parametrize(
    ("path", "kind", "stored"),
    [
        ("/v", "add", lambda d: d["v"]),
        ("/v", "replace", lambda d: d["v"]),
        ("/l/-", "add", lambda d: d["l"][1]),
        ("/l/0", "add", lambda d: d["l"][0]),
        ("/l/0", "replace", lambda d: d["l"][0]),
    ],
)
def test_apply_copies_patch_values(path: str, kind: str, stored: Any) -> None:
    value: dict[str, list[int]] = {"deep": [1]}
    result = jsonpatch.apply({"v": None, "l": [0]}, [{"op": kind, "path": path, "value": value}])
    value["deep"].append(2)
    assert stored(result) == {"deep": [1]}


# --- top_level_fields ------------------------------------------------------------


def test_top_level_fields() -> None:
    patch: list[dict[str, Any]] = [
        {"op": "add", "path": "/extra/rack", "value": 1},
        {"op": "remove", "path": "/extra/a~1b"},
        {"op": "replace", "path": "/name", "value": "x"},
        {"op": "add", "path": "/a~1b/c", "value": 1},
    ]
    assert jsonpatch.top_level_fields(patch) == {"extra", "name", "a/b"}


def test_top_level_fields_rejects_bad_paths() -> None:
    with pytest.raises(InvalidPatch):
        jsonpatch.top_level_fields([{"op": "remove", "path": "nope"}])
