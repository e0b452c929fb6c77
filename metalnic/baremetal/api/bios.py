"""Routes for /v1/nodes/{id}/bios (Ironic's cached BIOS settings, API 1.40).

Ironic serves what a node's BIOS interface last read from the BMC.  metalnic's
hardware types offer only the ``fake`` and ``no-bios`` BIOS interfaces, which
read nothing: every node's list is empty and a named setting is not found, as
Ironic answers for such a node.  The node itself is checked first (404 for one
the caller may not see).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from metalnic.baremetal.api.deps import Caller, Context, check_url, version_since
from metalnic.baremetal.api.openapi import errors
from metalnic.baremetal.fields import Version
from metalnic.errors import NotFound
from metalnic.httpjson import JSONResponse

router = APIRouter(prefix="/v1/nodes", dependencies=[Depends(check_url)])
BIOS_SINCE: Version = (1, 40)


BiosVersion = Annotated[Version, Depends(version_since(BIOS_SINCE, "BIOS settings"))]


@router.get("/{ident}/bios", responses=errors(404))
def list_bios(ident: str, ctx: Context, who: Caller, version: BiosVersion) -> JSONResponse:
    ctx.inventory.get_node(who, ident, lambda n: None)
    return JSONResponse({"bios": []})


@router.get("/{ident}/bios/{setting}", responses=errors(404))
def show_bios(
    ident: str, setting: str, ctx: Context, who: Caller, version: BiosVersion
) -> JSONResponse:
    uuid = ctx.inventory.get_node(who, ident, lambda n: n.uuid)
    raise NotFound(f"BIOS setting {setting} could not be found for node {uuid}.")
