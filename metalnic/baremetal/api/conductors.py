"""Routes for /v1/conductors (Ironic's, API 1.49; rules in ``metalnic.baremetal.conductors``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from metalnic.baremetal.api import params, views
from metalnic.baremetal.api.deps import (
    Caller,
    Context,
    base_url,
    check_url,
    version_since,
)
from metalnic.baremetal.api.openapi import errors
from metalnic.baremetal.conductors import ConductorInfo
from metalnic.baremetal.fields import Field, Version
from metalnic.errors import InvalidInput, NotFound
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/conductors", dependencies=[Depends(check_url)])
CONDUCTORS_SINCE: Version = (1, 49)
FIELDS = {
    name: Field(name, CONDUCTORS_SINCE)
    for name in (
        "hostname", "conductor_group", "alive", "drivers", "created_at", "updated_at", "links"
    )
}  # fmt: skip
LIST_FIELDS = ("hostname", "conductor_group", "alive", "links")


ConductorsVersion = Annotated[Version, Depends(version_since(CONDUCTORS_SINCE, "Conductors"))]


def _view(ctx: Context, c: ConductorInfo, base: str, fields: Sequence[str]) -> views.View:
    values: views.View = {
        "hostname": c.hostname,
        "conductor_group": "",
        "alive": c.alive,
        "drivers": sorted(hw.name for hw in ctx.registry.all()),
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
        "links": views.links(base, "conductors", c.hostname),
    }
    return {name: values[name] for name in fields}


@router.get("", responses=errors(403, 404))
def list_conductors(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ConductorsVersion,
    detail: params.Detail = None,
    fields: params.Fields = None,
    limit: params.Limit = None,
    marker: params.Marker = None,
) -> JSONResponse:
    if detail and fields is not None:
        raise InvalidInput("Can not specify ?detail=True and fields in the same request.")
    default = list(FIELDS) if detail else list(LIST_FIELDS)
    shown = views.select_fields(FIELDS, fields, version, default)
    base = base_url(request)

    rows = ctx.inventory.list_conductors(who, ctx.settings.conductor_dead_after)
    names = [r.hostname for r in rows]
    if marker is not None and marker not in names:
        raise NotFound(f"Conductor {marker} could not be found.")
    start = names.index(marker) + 1 if marker is not None else 0
    page = rows[start : start + limit] if limit else rows[start:]
    out: views.View = {"conductors": [_view(ctx, r, base, shown) for r in page]}
    if limit and start + limit < len(rows):
        out["next"] = f"{base}/v1/conductors?limit={limit}&marker={page[-1].hostname}"
    return JSONResponse(out)


@router.get("/{hostname}", responses=errors(403, 404))
def show_conductor(
    hostname: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: ConductorsVersion,
    fields: params.Fields = None,
) -> JSONResponse:
    shown = views.select_fields(FIELDS, fields, version, list(FIELDS))
    base = base_url(request)
    found = ctx.inventory.get_conductor(who, hostname, ctx.settings.conductor_dead_after)
    return JSONResponse(_view(ctx, found, base, shown))
