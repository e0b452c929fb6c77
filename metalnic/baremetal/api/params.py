"""The query parameters of /v1, declared once and typed.

FastAPI checks them before a route runs (a bad one is a 400 in Ironic's
format, see server.py) and the OpenAPI document describes them.  Integers
are ASCII digits within signed 64 bits (``str.isdigit`` would also pass
``²``); booleans take Ironic's spellings ("True", "yes", "1", "off", …).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from metalnic.web import INT64_MAX

# The ``sort_key`` values of each listing (the same tuples the queries check).
NodeSortKey = Literal["id", "uuid", "name", "created_at", "provision_state", "driver"]
PortSortKey = Literal["id", "uuid", "address", "created_at"]
PortGroupSortKey = Literal["id", "uuid", "name", "address", "created_at"]

_TEXT = 255

Limit = Annotated[
    int | None,
    Query(ge=0, le=INT64_MAX, description="Page size; 0 or absent: the server's maximum."),
]
Marker = Annotated[
    str | None,
    Query(max_length=_TEXT, description="UUID (or name) of the last item of the previous page."),
]
SortDir = Annotated[Literal["asc", "desc"] | None, Query(description="Sort direction.")]
Detail = Annotated[bool | None, Query(description="Show every field of each item.")]
Fields = Annotated[
    str | None,
    Query(max_length=4096, description="Comma-separated names of the fields to show."),
]
Text = Annotated[str | None, Query(max_length=_TEXT)]
Flag = Annotated[bool | None, Query()]
HistoryLimit = Annotated[int, Query(ge=0, le=INT64_MAX, description="At most 10000 are shown.")]
HistoryMarker = Annotated[
    int | None, Query(ge=0, le=INT64_MAX, description="seq of the last event already seen.")
]
DriverType = Annotated[Literal["classic", "dynamic"] | None, Query(alias="type")]
Addresses = Annotated[
    str | None, Query(max_length=4096, description="Comma-separated MAC addresses.")
]
NodeSort = Annotated[NodeSortKey | None, Query(description="Sort by this field (then id).")]
PortSort = Annotated[PortSortKey | None, Query(description="Sort by this field (then id).")]
ChassisSortKey = Literal["id", "uuid", "description", "created_at"]
ChassisSort = Annotated[ChassisSortKey | None, Query(description="Sort by this field (then id).")]
PortGroupSort = Annotated[
    PortGroupSortKey | None, Query(description="Sort by this field (then id).")
]
