"""Neutron's tag routes, for every kind of resource in ``network/tags.py``'s ``KINDS``.

Under ``/v2.0/{collection}/{id}``, with Neutron's status codes:

* ``GET …/tags`` → 200 ``{"tags": [...]}``;
* ``PUT …/tags`` with ``{"tags": [...]}`` (no envelope) → 200, all tags replaced;
* ``POST …/tags`` with ``{"tags": [...]}`` → 200, those tags added (extension
  ``tag-creation``); the answer is the body as given, as Neutron's;
* ``DELETE …/tags`` → 204, all removed;
* ``GET …/tags/{tag}`` → 204 when the resource has it, else 404 ``TagNotFound``;
* ``PUT …/tags/{tag}`` → 201, added (already there: no change);
* ``DELETE …/tags/{tag}`` → 204, removed (404 ``TagNotFound`` when it was not there).

A tag is a string of at most 255 characters (400 otherwise); a PUT or POST naming
more than 50 tags, or a ``PUT …/tags/{tag}`` that would make 51, is Neutron's 400
``BadRequest``.  Reading the tags
needs the right to read the resource, changing them the right to update it: an
id the caller may not see is the resource's own 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from metalnic.contract.values import Name
from metalnic.httpjson import JSONResponse
from metalnic.network import portinputs
from metalnic.network.api import replies as rp
from metalnic.network.api.deps import PREFIX, Caller, Context, PathId, body_of
from metalnic.network.api.replies import answers
from metalnic.network.tags import KINDS

router = APIRouter(prefix=PREFIX + "/v2.0")

TagsBody = Annotated[portinputs.Tags, Depends(body_of(portinputs.Tags, ""))]
PathTag = Annotated[Name, Path(min_length=1, max_length=255)]
READ = answers(400, 401, 403, 404)
WRITE = answers(400, 401, 403, 404, 409, 413)  # 409: the resource changed meanwhile


def _routes(kind: str) -> None:
    """The seven routes of one kind of resource (their functions close over ``kind``)."""
    base = f"/{kind}/{{resource_id}}/tags"
    name = kind.replace("-", "_")

    def list_tags(resource_id: PathId, ctx: Context, who: Caller) -> JSONResponse:
        return JSONResponse({"tags": ctx.service.tags.list(who, kind, resource_id)})

    def replace_tags(
        resource_id: PathId, ctx: Context, who: Caller, body: TagsBody
    ) -> JSONResponse:
        return JSONResponse({"tags": ctx.service.tags.replace(who, kind, resource_id, body.tags)})

    def create_tags(resource_id: PathId, ctx: Context, who: Caller, body: TagsBody) -> JSONResponse:
        ctx.service.tags.create(who, kind, resource_id, body.tags)
        return JSONResponse({"tags": body.tags})

    def clear_tags(resource_id: PathId, ctx: Context, who: Caller) -> Response:
        ctx.service.tags.clear(who, kind, resource_id)
        return Response(status_code=204)

    def check_tag(resource_id: PathId, tag: PathTag, ctx: Context, who: Caller) -> Response:
        ctx.service.tags.check(who, kind, resource_id, tag)
        return Response(status_code=204)

    def add_tag(resource_id: PathId, tag: PathTag, ctx: Context, who: Caller) -> Response:
        ctx.service.tags.add(who, kind, resource_id, tag)
        return Response(status_code=201)

    def remove_tag(resource_id: PathId, tag: PathTag, ctx: Context, who: Caller) -> Response:
        ctx.service.tags.remove(who, kind, resource_id, tag)
        return Response(status_code=204)

    table: tuple[tuple[str, str, Callable[..., Any], int, dict[int | str, Any]], ...] = (
        ("GET", base, list_tags, 200, READ),
        ("PUT", base, replace_tags, 200, WRITE),
        ("POST", base, create_tags, 200, WRITE),
        ("DELETE", base, clear_tags, 204, WRITE),
        ("GET", base + "/{tag}", check_tag, 204, READ),
        ("PUT", base + "/{tag}", add_tag, 201, WRITE),
        ("DELETE", base + "/{tag}", remove_tag, 204, WRITE),
    )
    for method, path, endpoint, status, errors in table:
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            status_code=status,
            response_model=rp.TagsReply if status == 200 else None,
            # 201 and 204 answer no body (the document shows none).
            response_class=JSONResponse if status == 200 else Response,
            responses=errors,
            name=f"{endpoint.__name__}_{name}",
            operation_id=f"{endpoint.__name__}_{name}",
        )


for _kind in KINDS:
    _routes(_kind)
