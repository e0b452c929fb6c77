"""Rendering command results as a table or as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def row(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line, row(list(columns)), line, *(row(r) for r in cells)]
    out.append(line)
    return "\n".join(out)


def record(item: Mapping[str, object]) -> str:
    rows = [{"Field": k, "Value": v} for k, v in sorted(item.items()) if k != "links"]
    return table(rows, ["Field", "Value"])


def emit(data: Any, fmt: str, columns: Sequence[str] | None = None) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    elif isinstance(data, list):
        cols = list(columns or (data[0].keys() if data else []))
        print(table(data, cols))
    elif isinstance(data, dict):
        print(record(data))
