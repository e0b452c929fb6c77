"""Keyset pagination and sorting for list routes (``limit``, ``marker``, ``sort_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, and_, func, or_
from sqlalchemy.orm import InstrumentedAttribute

from metalnic.errors import InvalidInput


@dataclass(frozen=True)
class Page:
    limit: int
    marker: str | None = None
    sort_key: str = "id"
    sort_dir: Literal["asc", "desc"] = "asc"


def make_page(
    limit: int | None,
    marker: str | None,
    sort_key: str | None,
    sort_dir: str | None,
    max_limit: int,
    sort_keys: tuple[str, ...],
) -> Page:
    if limit is not None and limit < 0:
        raise InvalidInput(f"Limit must be positive, got {limit}.")
    effective = max_limit if not limit else min(limit, max_limit)
    key = sort_key or "id"
    if key not in sort_keys:
        raise InvalidInput(f"Invalid sort_key {key!r}; choose from {', '.join(sort_keys)}.")
    direction = (sort_dir or "asc").lower()
    if direction not in ("asc", "desc"):
        raise InvalidInput(f"Invalid sort_dir {sort_dir!r}; use asc or desc.")
    return Page(effective, marker, key, direction)  # type: ignore[arg-type]


def _column(model: Any, key: str) -> Any:
    column: InstrumentedAttribute[Any] = getattr(model, key)
    # NULLs cannot be compared in a keyset condition: sort them as empty.
    if column.property.columns[0].nullable:
        return func.coalesce(column, "")
    return column


def paginate(stmt: Select[Any], model: Any, page: Page, marker: Any | None) -> Select[Any]:
    """Order ``stmt`` by the sort key then id, start after ``marker``, cap at the limit."""
    key = _column(model, page.sort_key)
    ident = model.id
    descending = page.sort_dir == "desc"
    if marker is not None:
        mark_value = getattr(marker, page.sort_key)
        if mark_value is None:
            mark_value = ""
        if descending:
            cond = or_(key < mark_value, and_(key == mark_value, ident < marker.id))
        else:
            cond = or_(key > mark_value, and_(key == mark_value, ident > marker.id))
        stmt = stmt.where(cond)
    order = (key.desc(), ident.desc()) if descending else (key.asc(), ident.asc())
    return stmt.order_by(*order).limit(page.limit)
