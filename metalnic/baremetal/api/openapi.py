"""The OpenAPI document of the bare-metal API (/ and /v1), served at /v1/openapi.json.

Built from the routes themselves, then completed with what FastAPI cannot
see: the request bodies (the models of bodies.py, read by metalnic.web, not
by FastAPI), the error answers in Ironic's format and the shapes of the
views.  Which errors a route can give follows from its dependencies: one
that reads the microversion header can answer 400 and 406, one that needs a
caller 401 and 403, one that reads a body 400 and 413; the rest (404, 409,
500) the route declares with ``errors()``.  FastAPI's own 422 is never sent
(server.py answers a RequestValidationError with 400) and is removed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from metalnic.baremetal.api import microversion
from metalnic.baremetal.fields import NODE_FIELDS, PORT_FIELDS, PORTGROUP_FIELDS, Field
from metalnic.jsontypes import JSONObject, JSONValue

_REF = "#/components/schemas/{model}"
_ERROR = "IronicError"
_MEANING = {
    400: "The request is malformed or breaks a rule.",
    401: "No or wrong credentials.",
    403: "The caller's role does not allow this.",
    404: "The resource does not exist (or the caller may not see it).",
    406: "The requested microversion or a field is not available.",
    409: "Conflict: a duplicate, a locked node or a state that does not allow it.",
    413: "The request body is larger than max_request_body_size.",
    500: "A driver (BMC, ramdisk agent or network) step failed.",
}
# Schemas the request bodies refer to, gathered by body_doc().
_COMPONENTS: JSONObject = {}


def errors(*codes: int) -> dict[int | str, JSONObject]:
    """The ``responses=`` of a route for these statuses, each with Ironic's error body."""
    return {
        code: {
            "description": _MEANING[code],
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=_ERROR)}}},
        }
        for code in codes
    }


def body_doc(kind: Any, required: bool = True) -> JSONObject:
    """The ``openapi_extra=`` naming a route's JSON body (a model or an annotated type)."""
    schema = TypeAdapter(kind).json_schema(ref_template=_REF)
    _COMPONENTS.update(schema.pop("$defs", {}))
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        _COMPONENTS[kind.__name__] = schema
        schema = {"$ref": _REF.format(model=kind.__name__)}
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


# --- the views ------------------------------------------------------------------------

_LINK: JSONObject = {
    "type": "object",
    "properties": {"href": {"type": "string"}, "rel": {"type": "string"}},
    "required": ["href", "rel"],
}
_LINKS: JSONObject = {"type": "array", "items": _LINK}
_OBJECT: JSONObject = {"type": ["object", "null"]}
_TIME: JSONObject = {"type": ["string", "null"], "format": "date-time"}
_TEXT: JSONObject = {"type": ["string", "null"]}
_BOOL: JSONObject = {"type": "boolean"}
_VIEW_TYPES: dict[str, JSONObject] = {
    "links": _LINKS,
    "ports": _LINKS,
    "portgroups": _LINKS,
    "states": _LINKS,
    "traits": {"type": ["array", "null"], "items": {"type": "string"}},
    "maintenance": _BOOL,
    "console_enabled": _BOOL,
    "protected": _BOOL,
    "pxe_enabled": _BOOL,
    "is_smartnic": _BOOL,
    "standalone_ports_supported": _BOOL,
    "automated_clean": {"type": ["boolean", "null"]},
}
_OBJECT_FIELDS = {
    "driver_info",
    "driver_internal_info",
    "properties",
    "instance_info",
    "extra",
    "clean_step",
    "deploy_step",
    "raid_config",
    "target_raid_config",
    "internal_info",
    "local_link_connection",
}


def _view_schema(table: dict[str, Field]) -> JSONObject:
    """Any subset of the fields (``fields=`` chooses), each of its JSON type."""
    properties: JSONObject = {}
    for name in table:
        if name in _VIEW_TYPES:
            properties[name] = _VIEW_TYPES[name]
        elif name in _OBJECT_FIELDS:
            properties[name] = _OBJECT
        elif name.endswith("_at"):
            properties[name] = _TIME
        else:
            properties[name] = _TEXT
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _list_of(key: str, item: str) -> JSONObject:
    return {
        "type": "object",
        "properties": {
            key: {"type": "array", "items": {"$ref": _REF.format(model=item)}},
            "next": {"type": "string"},
        },
        "required": [key],
        "additionalProperties": False,
    }


def _ref(model: str) -> JSONObject:
    return {"$ref": _REF.format(model=model)}


def _views() -> JSONObject:
    return {
        _ERROR: {
            "type": "object",
            "description": "Ironic's error: error_message is the JSON text of "
            '{"faultcode": "Client"|"Server", "faultstring": "...", "debuginfo": null}.',
            "properties": {"error_message": {"type": "string"}},
            "required": ["error_message"],
            "additionalProperties": False,
        },
        "Node": _view_schema(NODE_FIELDS),
        "Port": _view_schema(PORT_FIELDS),
        "PortGroup": _view_schema(PORTGROUP_FIELDS),
        "NodeList": _list_of("nodes", "Node"),
        "PortList": _list_of("ports", "Port"),
        "PortGroupList": _list_of("portgroups", "PortGroup"),
    }


def _object_with(key: str, value: JSONValue) -> JSONObject:
    return {"type": "object", "properties": {key: value}, "required": [key]}


# The body of each route's success answer, by endpoint name.
_SUCCESS: dict[str, JSONObject] = {
    **dict.fromkeys(("list_nodes", "list_nodes_detail"), _ref("NodeList")),
    **dict.fromkeys(("create_node", "show_node", "patch_node"), _ref("Node")),
    **dict.fromkeys(
        ("list_ports", "list_ports_detail", "node_ports", "portgroup_ports"), _ref("PortList")
    ),
    "portgroup_ports_detail": _ref("PortList"),
    **dict.fromkeys(("create_port", "show_port", "patch_port"), _ref("Port")),
    **dict.fromkeys(
        ("list_portgroups", "list_portgroups_detail", "node_portgroups"), _ref("PortGroupList")
    ),
    **dict.fromkeys(("create_portgroup", "show_portgroup", "patch_portgroup"), _ref("PortGroup")),
    "list_vifs": _object_with(
        "vifs", {"type": "array", "items": _object_with("id", {"type": "string"})}
    ),
    "node_history": _object_with("history", {"type": "array", "items": {"type": "object"}}),
    "list_traits": _object_with("traits", {"type": "array", "items": {"type": "string"}}),
    "supported_boot_devices": _object_with(
        "supported_boot_devices", {"type": "array", "items": {"type": "string"}}
    ),
    "list_drivers": _object_with("drivers", {"type": "array", "items": {"type": "object"}}),
}


# What a created resource's uuid feeds (OpenAPI links: clients and stateful fuzzing follow them).
_FOLLOWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "create_node": (
        "ident",
        (
            "show_node",
            "patch_node",
            "delete_node",
            "node_states",
            "node_ports",
            "node_portgroups",
            "list_vifs",
            "attach_vif",
            "set_maintenance",
            "set_provision_state",
            "set_power_state",
            "node_history",
            "validate",
            "list_traits",
            "set_traits",
        ),
    ),
    "create_port": ("uuid", ("show_port", "patch_port", "delete_port")),
    "create_portgroup": (
        "ident",
        ("show_portgroup", "patch_portgroup", "delete_portgroup", "portgroup_ports"),
    ),
}

# --- the document ---------------------------------------------------------------------


def _calls(dependant: Dependant) -> set[str]:
    found: set[str] = set()
    for dep in dependant.dependencies:
        if dep.call is not None:
            found.add(getattr(dep.call, "__name__", ""))
        found |= _calls(dep)
    return found


def _implied_errors(route: APIRoute, operation: JSONObject) -> list[int]:
    calls = _calls(route.dependant)
    codes: list[int] = []
    if "get_version" in calls or operation.get("parameters") or "requestBody" in operation:
        codes.append(400)
    if "get_principal" in calls:
        codes += [401, 403]
    if "get_version" in calls:
        codes.append(406)
    if "requestBody" in operation:
        codes.append(413)
    return codes


def _objects(value: JSONValue) -> list[JSONObject]:
    """The objects in a JSON list (FastAPI's document: parameters, schema alternatives)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _not_null(parameter: JSONObject) -> None:
    """A query parameter or header is absent or a string, never JSON null."""
    schema = parameter.get("schema")
    if not isinstance(schema, dict) or "anyOf" not in schema:
        return
    kinds = [k for k in _objects(schema["anyOf"]) if k != {"type": "null"}]
    if len(kinds) == 1:
        del schema["anyOf"]
        schema.update(kinds[0])


_VERSION_HEADER: JSONObject = {
    "description": "API microversion: MAJOR.MINOR or latest (default: the minimum).",
    "in": "header",
    "name": microversion.HEADER,
    "required": False,
    "schema": {
        "description": "API microversion: MAJOR.MINOR or latest (default: the minimum).",
        "maxLength": microversion.HEADER_MAX_LENGTH,
        "pattern": microversion.PATTERN,
        "title": "X-Openstack-Ironic-Api-Version",
        "type": "string",
    },
}


def _complete(route: APIRoute, operation: JSONObject) -> None:
    for parameter in _objects(operation.get("parameters")):
        _not_null(parameter)
    if "get_version" in _calls(route.dependant):  # read by hand: see deps.get_version
        parameters = operation.setdefault("parameters", [])
        assert isinstance(parameters, list)
        parameters.append(copy.deepcopy(_VERSION_HEADER))
    responses = operation["responses"]
    assert isinstance(responses, dict)
    responses.pop("422", None)
    for code, answer in errors(*_implied_errors(route, operation)).items():
        responses.setdefault(str(code), answer)
    success = str(route.status_code or 200)
    if success in ("202", "204"):
        responses[success] = {"description": "Accepted." if success == "202" else "Done."}
    else:
        schema = _SUCCESS.get(route.name, {"type": "object"})
        done = responses[success]
        assert isinstance(done, dict)
        done["content"] = {"application/json": {"schema": schema}}
    if "get_principal" in _calls(route.dependant):
        operation["security"] = [{"http_basic": []}, {}]


def _operations(doc: JSONObject) -> Iterator[tuple[str, str, JSONObject]]:
    """(path, method, operation) of every operation in ``doc``."""
    paths = doc["paths"]
    assert isinstance(paths, dict)
    for path, item in paths.items():
        assert isinstance(item, dict)
        for method, operation in item.items():
            assert isinstance(operation, dict)
            yield path, method, operation


def _add_links(doc: JSONObject, routes: dict[tuple[str, str], APIRoute]) -> None:
    operations = {
        routes[(method, path)].name: operation for path, method, operation in _operations(doc)
    }
    for creator, (parameter, targets) in _FOLLOWS.items():
        links: JSONObject = {
            target: {
                "operationId": operations[target]["operationId"],
                "parameters": {parameter: "$response.body#/uuid"},
            }
            for target in targets
        }
        created = operations[creator]["responses"]
        assert isinstance(created, dict) and isinstance(created["201"], dict)
        created["201"]["links"] = links


def _ours(path: str) -> bool:
    return path == "/" or path == "/v1" or path.startswith("/v1/")


def _api_routes(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    """(method, path) -> route; FastAPI >= 0.16x keeps included routers lazily."""
    contexts = getattr(routing, "iter_route_contexts", None)
    found = {}
    for entry in contexts(app.routes) if contexts else app.routes:
        route = getattr(entry, "original_route", entry)
        path = getattr(entry, "path_format", None)
        if isinstance(route, APIRoute) and path and _ours(path):
            found.update({(m.lower(), path): route for m in route.methods or ()})
    return found


def document(app: FastAPI) -> JSONObject:
    """The document for / and /v1 (the network API has its own)."""
    doc = get_openapi(
        title="metalnic bare-metal API",
        version="1.53",
        openapi_version="3.1.0",
        description="Ironic-compatible bare-metal API of metalnic (microversions 1.1-1.53).",
        routes=app.routes,
    )
    routes = _api_routes(app)
    doc["paths"] = {p: item for p, item in doc.get("paths", {}).items() if _ours(p)}
    for path, method, operation in _operations(doc):
        _complete(routes[(method, path)], operation)
    _add_links(doc, routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_COMPONENTS)
    schemas.update(_views())
    components["securitySchemes"] = {"http_basic": {"type": "http", "scheme": "basic"}}
    return doc
