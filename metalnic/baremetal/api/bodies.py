"""Typed request bodies of /v1: checked once, at the edge, before any transaction opens.

The body arrives parsed and checked by metalnic.web (size, depth, text,
64-bit integers); here its shape is checked against a pydantic model, so a
wrong type anywhere (an object where a string belongs) is a 400 naming the
field, never a 500 further in.  The same models are the request bodies of the
OpenAPI document (see openapi.py).  The business code keeps its own rules
(names, MACs, UUIDs, state); the models only fix the JSON types.

Node, port and port group bodies are built from the field tables
(metalnic.baremetal.fields), so a new field is typed where it is declared.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from metalnic.baremetal import coerce, nodes, states
from metalnic.baremetal.conductor import states as machine
from metalnic.baremetal.fields import (
    CHASSIS_FIELDS,
    NODE_FIELDS,
    PORT_FIELDS,
    PORTGROUP_FIELDS,
    Version,
)
from metalnic.baremetal.fields import (
    Field as ApiField,
)
from metalnic.errors import InvalidInput
from metalnic.jsonpatch import PatchOp
from metalnic.jsontypes import JSONObject

_BOOL_SPELLINGS = ["true", "false", "True", "False", "yes", "no", "on", "off", "1", "0"]


def _lenient_bool(value: Any) -> bool:
    try:
        return coerce.as_bool("value", value)
    except InvalidInput:
        raise ValueError(
            "Input should be a boolean (or 'True', 'false', 'yes', 'off', …)"
        ) from None


LenientBool = Annotated[
    bool,
    PlainValidator(_lenient_bool),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": _BOOL_SPELLINGS}]}),
]
Str255 = Annotated[str, Field(max_length=255)]
Text = Annotated[str, Field(max_length=4096)]
Uuid = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", max_length=36)
]
JsonObject = dict[str, Any]

_STRICT = ConfigDict(extra="forbid")


# --- node, port, port group: from the field tables ------------------------------------

# Each coercer of the field tables and the JSON it accepts (null only where it does).
_TYPES: dict[Any, Any] = {
    coerce.as_str: Str255,
    coerce.as_optional_str: Str255 | None,
    coerce.as_text: Text | None,
    coerce.as_dict: JsonObject | None,
    coerce.as_bool: LenientBool,
    coerce.as_optional_bool: LenientBool | None,
    coerce.as_null_only: None,
}


def _annotation(f: ApiField) -> Any:
    if f.name == "uuid":
        return Uuid
    assert f.coerce is not None
    return _TYPES[f.coerce]


# An optional field may be left out; when present it must have its type.
_OMITTED: Any = Field(default=None, json_schema_extra=None)


def _resource_model(
    name: str, table: dict[str, ApiField], required: tuple[str, ...], creating: bool
) -> type[BaseModel]:
    """The JSON types of the fields a create (or a patched document) may hold."""
    fields: dict[str, Any] = {}
    for f in table.values():
        if not f.writable or (creating and not f.on_create):
            continue
        kind = _annotation(f)
        fields[f.name] = (kind, ...) if f.name in required else (kind, _OMITTED)
    return create_model(name, __config__=_STRICT, **fields)


NodeCreate = _resource_model("NodeCreate", NODE_FIELDS, ("driver",), True)
PortCreate = _resource_model("PortCreate", PORT_FIELDS, ("address", "node_uuid"), True)
PortGroupCreate = _resource_model("PortGroupCreate", PORTGROUP_FIELDS, ("node_uuid",), True)
ChassisCreate = _resource_model("ChassisCreate", CHASSIS_FIELDS, (), True)


def resource(
    model: type[BaseModel], table: dict[str, ApiField], body: Any, version: Version, what: str
) -> JSONObject:
    """A create body: an object whose fields exist, may be set, and have the right types."""
    if not isinstance(body, dict):
        raise InvalidInput(f"The request body must be a JSON object describing a {what}.")
    # Ironic's answers first: unknown or read-only field 400, too new for the version 406.
    nodes.check_payload_fields(table, set(body), version, what, creating=True)
    check(model, body, what)
    return body


# --- JSON patch -----------------------------------------------------------------------


class PatchOperation(BaseModel):
    """One RFC 6902 operation as Ironic takes it (no move or copy)."""

    model_config = _STRICT
    op: Literal["add", "replace", "remove", "test"]
    path: Annotated[str, Field(pattern=r"^/.+", max_length=1024)]
    value: Any = None


Patch = Annotated[list[PatchOperation], Field(min_length=1, max_length=1024)]
_PATCH = TypeAdapter(Patch)


def patch(body: Any) -> list[PatchOp]:
    """A PATCH body: a non-empty list of operations (as plain dicts for metalnic.jsonpatch)."""
    try:
        _PATCH.validate_python(body)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid patch: {describe(exc)}.") from None
    ops: list[PatchOp] = body
    return ops


# --- verbs ----------------------------------------------------------------------------


class CleanStep(BaseModel):
    interface: Str255
    step: Str255
    args: JsonObject | None = None
    priority: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class ProvisionState(BaseModel):
    model_config = _STRICT
    target: Literal[tuple(sorted(v.value for v in machine.VERBS))]  # type: ignore[valid-type]
    clean_steps: list[CleanStep] | None = None
    deploy_steps: list[JsonObject] | None = None
    configdrive: Annotated[JsonObject | str, Field()] | None = None
    rescue_password: Str255 | None = None
    disable_ramdisk: LenientBool | None = None


class PowerState(BaseModel):
    model_config = _STRICT
    target: Literal[tuple(t.value for t in states.POWER_TARGETS)]  # type: ignore[valid-type]
    timeout: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class BootDevice(BaseModel):
    model_config = _STRICT
    boot_device: Literal[tuple(d.value for d in states.BOOT_DEVICES)]  # type: ignore[valid-type]
    persistent: LenientBool = False


class Maintenance(BaseModel):
    model_config = _STRICT
    reason: Text | None = None


class Vif(BaseModel):
    model_config = _STRICT
    id: Str255


class Traits(BaseModel):
    """``PUT /v1/nodes/{id}/traits`` (documentation: ``traits.parse_list`` checks it)."""

    model_config = _STRICT
    traits: list[Str255]


class Heartbeat(BaseModel):
    """What the ramdisk agent sends; Ironic's agent adds fields metalnic ignores."""

    model_config = ConfigDict(extra="allow")
    callback_url: Annotated[str, Field(pattern=r"^https?://", max_length=2048)]
    agent_token: Str255 | None = None


def check(model: type[BaseModel], body: Any, what: str) -> JSONObject:
    """``body`` if it fits ``model`` (kept as parsed: the business code reads the JSON)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {what}: {describe(exc)}.") from None
    result: JSONObject = body
    return result


def describe(exc: ValidationError, most: int = 5) -> str:
    """What pydantic found, by field, without echoing the input (it may hold a secret).

    A value that fits no member of a union gets one line ("configdrive should be a
    valid dictionary or a valid string"), not one per member named by its type tag.
    """
    by_field: dict[str, list[str]] = {}
    for e in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in e["loc"] if not _TYPE_TAG.match(str(p))) or "body"
        by_field.setdefault(where, []).append(str(e["msg"]))
    problems = [_sentence(where, msgs) for where, msgs in by_field.items()]
    more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
    return re.sub(r"\s+", " ", "; ".join(problems[:most])) + more


# How pydantic names the members of a union in an error's location.
_TYPE_TAG = re.compile(r"^(str|int|float|bool|list|dict|none|json-or-python)(\[.*\])?$|.*\[.*\]$")


def _sentence(where: str, messages: list[str]) -> str:
    wanted = [m.removeprefix("Input should be ") for m in messages if m.startswith("Input should")]
    if wanted and len(wanted) == len(messages):
        return f"{where} should be {' or '.join(dict.fromkeys(wanted))}"
    return f"{where}: {'; '.join(dict.fromkeys(messages))}"


# The models the OpenAPI document lists as request bodies.
MODELS: tuple[type[BaseModel], ...] = (
    NodeCreate,
    PortCreate,
    PortGroupCreate,
    ChassisCreate,
    PatchOperation,
    ProvisionState,
    PowerState,
    BootDevice,
    Maintenance,
    Vif,
    Heartbeat,
)
