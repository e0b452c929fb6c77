"""The one JSON reader of both APIs, and the response encoder behind it."""

from __future__ import annotations

import json

import orjson
import pytest

from metalnic import web
from metalnic.errors import InvalidInput
from metalnic.httpjson import JSONResponse, repair

BIG = b"9" * 5000

REFUSED = {
    "lone high surrogate": (b'{"a": "\\ud800"}', "surrogate"),
    "lone low surrogate": (b'{"a": "x\\udfffy"}', "surrogate"),
    "surrogate in a key": (b'{"\\udc00": 1}', "surrogate"),
    "surrogate deep in a list": (b'{"a": [[{"b": ["\\ud83d"]}]]}', "surrogate"),
    "over 4300 digits": (b'{"a": ' + BIG + b"}", "64 bits"),
    "negative over 4300 digits": (b"[-" + BIG + b"]", "64 bits"),
    "2**63": (b"[9223372036854775808]", "64 bits"),
    "-2**63-1": (b"[-9223372036854775809]", "64 bits"),
    "2**64 in a key's value": (b'{"k": {"j": 18446744073709551616}}', "64 bits"),
    "float overflow": (b'{"a": 1e999}', "out of range"),
    "negative float overflow": (b"[-1e400]", "out of range"),
    "NaN": (b"[NaN]", "NaN"),
    "Infinity": (b"[Infinity]", "Infinity"),
    "NUL": (b'["a\\u0000b"]', "NUL"),
    "NUL in a key": (b'{"a\\u0000": 1}', "NUL"),
    "too deep": (b"[" * 40 + b"]" * 40, "nested deeper"),
    "not utf-8": (b'["\xff"]', "Malformed"),
    "malformed": (b'{"a": ', "Malformed"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case: str) -> None:
    raw, needle = REFUSED[case]
    with pytest.raises(InvalidInput) as caught:
        web.parse_json(raw)
    assert needle.lower() in caught.value.message.lower()


@pytest.mark.parametrize(
    "raw",
    [
        b"[9223372036854775807, -9223372036854775808]",
        b'{"a": "\\ud83d\\ude00"}',  # a surrogate *pair* is one character: fine
        '{"\u00b2": "\u00b2\u0663"}'.encode(),
        b'{"a": 1.5e308, "b": -0.0, "c": 1e-400}',
    ],
)
def test_accepted_and_encodable(raw: bytes) -> None:
    body = web.parse_json(raw)
    assert json.loads(orjson.dumps(body)) == body


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("5", True),
        ("-5", True),
        ("+5", True),
        ("9223372036854775807", True),
        ("9223372036854775808", False),
        ("²", False),
        ("٣", False),
        ("--5", False),
        ("5.0", False),
        ("", False),
        (" 5", False),
        ("9" * 5000, False),
    ],
)
def test_strict_int(text: str, ok: bool) -> None:
    if ok:
        assert web.strict_int(text, "n") == int(text)
    else:
        with pytest.raises(InvalidInput):
            web.strict_int(text, "n")


def test_a_stored_value_orjson_refuses_is_repaired_not_a_500() -> None:
    content = {"name": "a\ud800b", "n": 2**70, "ok": [1, True, None], "\udc00": 2**64 - 1}
    rendered = json.loads(JSONResponse(content).body)
    assert rendered == {
        "name": "a?b",
        "n": "<integer of 71 bits>",
        "ok": [1, True, None],
        "?": 2**64 - 1,
    }
    assert repair({"x": "fine"}) == {"x": "fine"}


def test_patch_index_of_thousands_of_digits_is_a_patch_error() -> None:
    from metalnic import jsonpatch
    from metalnic.errors import InvalidPatch

    ops = [{"op": "add", "path": "/l/" + "9" * 5000, "value": 1}]
    with pytest.raises(InvalidPatch, match="list index"):
        jsonpatch.apply({"l": []}, ops)


@pytest.mark.parametrize("header", ["1." + "9" * 5000, "18446744073709551616.1", "1.99999999999"])
def test_huge_microversion_is_not_acceptable(header: str) -> None:
    from metalnic.baremetal.api import microversion
    from metalnic.errors import NotAcceptable

    with pytest.raises(NotAcceptable):
        microversion.parse(header)
