"""``/boot``: what a network-booting host fetches over HTTP (Ironic's ``http_url``).

No credentials — a host in its firmware has none — so only what a booting host
needs, and nothing secret: the generic ``boot.ipxe``; a node's iPXE script
(``<node>/config``, also reached as ``pxelinux.cfg/<mac-with-hyphens>``), which
exists only while the node boots a ramdisk on a phase network (the ``ipxe``
boot interface writes and removes it); and the configured ramdisk images
(``images/{deploy,rescue}/{kernel,initramfs}``).  Every name is checked
before it touches the file system; anything else is a 404.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

from metalnic.baremetal.api.deps import AppContext, get_context
from metalnic.baremetal.drivers.boot import scripts
from metalnic.baremetal.drivers.boot.ipxe import BootTree, IpxeConfig
from metalnic.ids import is_uuid_like

router = APIRouter(prefix="/boot", tags=["network boot"])
Context = Annotated[AppContext, Depends(get_context)]
IPXE = "text/plain; charset=utf-8"
_MAC_FILE = re.compile(r"[0-9a-f]{2}(-[0-9a-f]{2}){5}")


def _config(ctx: AppContext) -> IpxeConfig:
    config = ctx.registry.ipxe_config
    if config is None:
        raise HTTPException(404)
    return config


def _script(ctx: AppContext, relative: Path) -> Response:
    content = BootTree(_config(ctx).http_root).read(relative)
    if content is None:
        raise HTTPException(404)
    return Response(content, media_type=IPXE, headers={"Cache-Control": "no-store"})


@router.get("/" + scripts.BOOT_SCRIPT)
async def boot_script() -> Response:
    return Response(scripts.boot_script(), media_type=IPXE)


@router.get("/" + scripts.MAC_DIR + "/{name}")
def script_of_mac(name: str, ctx: Context) -> Response:
    if not _MAC_FILE.fullmatch(name):
        raise HTTPException(404)
    return _script(ctx, Path(scripts.MAC_DIR) / name)


@router.get("/{node}/" + scripts.NODE_SCRIPT)
def script_of_node(node: str, ctx: Context) -> Response:
    if not is_uuid_like(node):
        raise HTTPException(404)
    return _script(ctx, Path(node.lower()) / scripts.NODE_SCRIPT)


@router.get("/images/{ramdisk}/{part}")
def image(ramdisk: str, part: str, ctx: Context) -> FileResponse:
    path = _config(ctx).image(ramdisk, part) if ramdisk in ("deploy", "rescue") else None
    if path is None or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, media_type="application/octet-stream")
