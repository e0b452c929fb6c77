"""Values a list renders, formatted by the database instead of per row in Python.

A list of hundreds of rows spent most of its time turning each timestamp into
a ``datetime`` and back into text; the database does it in the query, in C,
for every row at once.  ``utc_seconds(column)`` is the text Neutron shows
(``2026-12-02T03:50:13Z``), the same as ``metalnic.network.views.stamp`` makes
of the column's value (a test compares both on SQLite and PostgreSQL);
``joined(column)`` aggregates ids a row shows (a port's security groups) into
its own query instead of one more query whose rows Python groups;
``json_list(column)`` does the same as a JSON list for values that may hold a
comma (a port's tags).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class utc_seconds(FunctionElement[str]):  # noqa: N801 - a SQL function reads like one
    """A ``UTCDateTime`` column as ``YYYY-MM-DDTHH:MM:SSZ`` text (NULL stays NULL)."""

    type = String()
    inherit_cache = True
    name = "utc_seconds"


def _arg(element: FunctionElement[str], compiler: SQLCompiler, **kw: Any) -> str:
    """The SQL of a one-argument function's argument."""
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(utc_seconds, "sqlite")
def _sqlite(element: utc_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite stores the UTC value as "YYYY-MM-DD HH:MM:SS.ffffff" (metalnic.db.base).
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', {_arg(element, compiler, **kw)})"


@compiles(utc_seconds, "postgresql")
def _postgresql(element: utc_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    value = _arg(element, compiler, **kw)
    return f"""to_char({value} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


class joined(FunctionElement[str]):  # noqa: N801 - a SQL function reads like one
    """An aggregate: the column's values of the group joined by "," (NULL for none),
    for ids (which hold no comma) a list shows per row, read in the row's query."""

    type = String()
    inherit_cache = True
    name = "joined"


@compiles(joined, "sqlite")
def _sqlite_joined(element: joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({_arg(element, compiler, **kw)}, ',')"


@compiles(joined, "postgresql")
def _postgresql_joined(element: joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({_arg(element, compiler, **kw)}, ',')"


class json_list(FunctionElement[str]):  # noqa: N801 - a SQL function reads like one
    """An aggregate: the column's values of the group as the text of a JSON list
    (NULL or ``[]`` for none), for values that may hold any character (tags)."""

    type = String()
    inherit_cache = True
    name = "json_list"


@compiles(json_list, "sqlite")
def _sqlite_json_list(element: json_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({_arg(element, compiler, **kw)})"


@compiles(json_list, "postgresql")
def _postgresql_json_list(element: json_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(json_agg({_arg(element, compiler, **kw)}) AS TEXT)"
