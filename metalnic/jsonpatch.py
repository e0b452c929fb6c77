"""RFC 6902 JSON patches (add, replace, remove, test) applied to plain data.

Used by the bare-metal API's PATCH routes.  The caller decides which
top-level paths may be touched; this module only moves values around and
reports a precise error for a patch that does not apply.

A ``test`` compares against the document *as a GET shows it* (redacted by
``metalnic.redact``): ``/driver_info/ipmi_password`` reads ``******`` and a
``redfish_address`` with credentials reads ``https://******@bmc``, so a test
answers the same for a right and a wrong guess and can tell nothing a GET
does not.  ``copy`` and ``move`` are not offered (they could lift a secret
into a field that is shown).
"""

from __future__ import annotations

import copy
import re
from typing import Any, NotRequired, TypedDict

from metalnic import redact
from metalnic.errors import InvalidPatch
from metalnic.jsontypes import JSONObject, JSONValue

OPS = ("add", "replace", "remove", "test")
# An index has at most 9 digits: no list here is longer, and int() of 4,301 digits raises.
_INDEX_RE = re.compile(r"0|[1-9][0-9]{0,8}")


def _is_index(part: str) -> bool:
    return _INDEX_RE.fullmatch(part) is not None


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1`` (RFC 6902 section 4.6)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class PatchOp(TypedDict):
    """One checked operation of a JSON patch (RFC 6902, without move and copy)."""

    op: str
    path: str
    value: NotRequired[JSONValue]


def parse_pointer(path: object) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise InvalidPatch(f"Invalid patch path {path!r}: it must start with '/' and name a field.")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def validate(patch: object) -> list[PatchOp]:
    """Check the document's shape; return it as a list of operations."""
    if not isinstance(patch, list) or not patch:
        raise InvalidPatch("A patch must be a non-empty JSON list of operations.")
    for op in patch:
        if not isinstance(op, dict) or op.get("op") not in OPS:
            raise InvalidPatch(
                f"Invalid patch operation {op!r}: 'op' must be one of {', '.join(OPS)}."
            )
        parse_pointer(op.get("path"))
        unknown = set(op) - {"op", "path", "value"}
        if unknown:
            raise InvalidPatch(f"Unknown keys in patch operation: {', '.join(sorted(unknown))}.")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise InvalidPatch(f"Patch operation {op['op']} on {op['path']} needs a 'value'.")
        if op["op"] == "remove" and "value" in op:
            raise InvalidPatch(f"Patch operation remove on {op['path']} takes no 'value'.")
    return patch


def _container(doc: Any, parts: list[str], path: str) -> Any:
    target = doc
    for part in parts[:-1]:
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and _is_index(part) and int(part) < len(target):
            target = target[int(part)]
        else:
            raise InvalidPatch(f"Cannot apply the patch: {path} does not exist.")
    return target


def _apply_one(doc: JSONObject, op: PatchOp) -> None:
    path: str = op["path"]
    parts = parse_pointer(path)
    target = _container(doc, parts, path)
    key = parts[-1]
    kind = op["op"]
    if isinstance(target, dict):
        if kind in ("replace", "remove", "test") and key not in target:
            raise InvalidPatch(f"Cannot {kind} {path}: it does not exist.")
        if kind == "remove":
            del target[key]
        elif kind == "test":
            if not json_equal(target[key], op["value"]):
                raise InvalidPatch(f"Patch test failed: {path} is not the expected value.")
        else:
            target[key] = copy.deepcopy(op["value"])
        return
    if isinstance(target, list):
        if key == "-" and kind == "add":
            target.append(copy.deepcopy(op["value"]))
            return
        limit = len(target) + (1 if kind == "add" else 0)
        if not _is_index(key) or int(key) >= limit:
            raise InvalidPatch(f"Cannot apply the patch: {path} is not a valid list index.")
        index = int(key)
        if kind == "add":
            target.insert(index, copy.deepcopy(op["value"]))
        elif kind == "remove":
            del target[index]
        elif kind == "replace":
            target[index] = copy.deepcopy(op["value"])
        elif not json_equal(target[index], op["value"]):
            raise InvalidPatch(f"Patch test failed: {path} is not the expected value.")
        return
    raise InvalidPatch(f"Cannot apply the patch: the parent of {path} is not an object or list.")


def apply(doc: JSONObject, patch: list[PatchOp]) -> JSONObject:
    """Return a patched deep copy of ``doc``; ``doc`` itself is left alone."""
    result = copy.deepcopy(doc)
    for op in patch:
        _apply_one(redact.redact(result) if op["op"] == "test" else result, op)
    return result


def top_level_fields(patch: list[PatchOp]) -> set[str]:
    return {parse_pointer(op["path"])[0] for op in patch}
