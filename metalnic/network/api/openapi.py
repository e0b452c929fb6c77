"""The published OpenAPI document of the network API, served at /network/v2.0/openapi.json.

Built from the routes themselves, so it cannot drift from what is served: the
path and query parameters are the routes' typed parameters, each request body
is the request model the route validates with (``deps.body_of``) inside
Neutron's envelope, each 2xx body is the route's reply model (``replies.py``),
and the error statuses are those the route declares, each with Neutron's
error body.  FastAPI's own 422 (metalnic answers validation errors with 400)
is removed.  Routes that need credentials say so (HTTP basic; with
``auth = "noauth"`` none are asked for).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from metalnic.network.api.deps import PREFIX

REF = "#/components/schemas/{model}"
OPEN_PATHS = {
    PREFIX,
    PREFIX + "/",
    PREFIX + "/v2.0",
    PREFIX + "/v2.0/",
    PREFIX + "/v2.0/openapi.json",
}


def document(app: FastAPI, routers: Sequence[APIRouter]) -> dict[str, Any]:
    """The document of ``routers`` (built once, then kept on the app)."""
    cached: dict[str, Any] | None = getattr(app.state, "network_openapi", None)
    if cached is None:
        cached = build(routers)
        app.state.network_openapi = cached
    return cached


def build(routers: Sequence[APIRouter]) -> dict[str, Any]:
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    doc = get_openapi(
        title="metalnic network API",
        version="2.0",
        summary="A Neutron v2.0-compatible subset, and metalnic's agent contract.",
        description=(
            "Every error body is Neutron's: "
            '{"NeutronError": {"type": ..., "message": ..., "detail": ""}}.'
        ),
        routes=routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc["components"]["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
    for route in routes:
        for method in route.methods or ():
            op = doc["paths"][route.path_format][method.lower()]
            op["responses"].pop("422", None)
            op["security"] = [] if route.path in OPEN_PATHS else [{"basic": []}]
            for param in op.get("parameters", []):
                param["schema"] = _not_null(param["schema"])
            body = _request_model(route.dependant)
            if body is not None:
                op["requestBody"] = _request_body(*body, schemas)
    _link(doc)
    return doc


def _link(doc: dict[str, Any]) -> None:
    """OpenAPI links from each create to the operations on what it created (the fuzz
    test's stateful phase follows them): ``POST /x`` → ``GET|PUT|DELETE /x/{id}``."""
    paths = doc["paths"]
    for path, ops in paths.items():
        created = ops.get("post", {}).get("responses", {}).get("201")
        schema = ops.get("post", {}).get("requestBody", {}).get("content", {})
        envelope = schema.get("application/json", {}).get("schema", {}).get("required")
        if not created or not envelope:
            continue
        for item, item_ops in paths.items():
            head, _, param = item.rpartition("/")
            if head != path or not param.startswith("{"):
                continue
            created["links"] = {
                f"{method}-{item_ops[method]['operationId']}": {
                    "operationId": item_ops[method]["operationId"],
                    "parameters": {param.strip("{}"): f"$response.body#/{envelope[0]}/id"},
                }
                for method in item_ops
            }


def _request_model(dependant: Dependant) -> tuple[type[Any], str] | None:
    for dep in dependant.dependencies:
        model = getattr(dep.call, "request_model", None)
        if model is not None:
            return model, str(getattr(dep.call, "envelope", ""))
        found = _request_model(dep)
        if found is not None:
            return found
    return None


def _request_body(model: type[Any], envelope: str, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    ref: dict[str, Any] = {"$ref": REF.format(model=model.__name__)}
    if envelope:
        ref = {
            "type": "object",
            "properties": {envelope: ref},
            "required": [envelope],
            "additionalProperties": False,
        }
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: ``X | None`` is documented as ``X``."""
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        merged = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**merged, **rest[0]} if len(rest) == 1 else {**merged, "anyOf": rest}
    return schema
