"""Types of free-form JSON: what a client, a driver or a document may put anywhere.

Fields such as a node's ``extra`` or ``driver_info`` and the OpenAPI documents
hold whatever JSON their writer chose; ``JSONValue`` says exactly that (any
JSON value, nested to any depth) where ``Any`` would switch the type checker
off.  A reader narrows a value with ``isinstance`` before it relies on a shape.
Values with a known shape get their own TypedDict or dataclass instead.
"""

from __future__ import annotations

from typing import TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
# Written so that the aliases are real objects at run time too (SQLAlchemy reads
# the model annotations that use them).
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]


def text(doc: JSONObject, key: str) -> str | None:
    """``doc[key]`` when it is a string, else None: the usual read of a free-form field."""
    value = doc.get(key)
    return value if isinstance(value, str) else None
