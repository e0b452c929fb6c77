"""Routes that act on a node through the conductor: provision and power verbs,
boot device, validation, the node's event log, and the ramdisk agent's
lookup and heartbeat (public, authenticated by the one-time agent token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from metalnic import redact
from metalnic.baremetal import nodes, states
from metalnic.baremetal.api.deps import (
    ApiVersion,
    Caller,
    Context,
    JsonBody,
    base_url,
)
from metalnic.baremetal.coerce import as_bool
from metalnic.baremetal.conductor import history
from metalnic.baremetal.conductor.task import Task
from metalnic.baremetal.drivers.base import DriverError
from metalnic.errors import InvalidInput
from metalnic.httpjson import JSONResponse, SecretKeysJSONResponse

router = APIRouter(prefix="/v1")


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput(f"The request body must be a JSON object ({what}).")
    return body


@router.put("/nodes/{ident}/states/provision", status_code=202)
def set_provision_state(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    body = _object(body, '{"target": "manage|provide|active|deleted|…"}')
    ctx.conductor.provision(who, ident, body.get("target"), body)
    return Response(status_code=202)


@router.put("/nodes/{ident}/states/power", status_code=202)
def set_power_state(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    body = _object(body, '{"target": "power on|power off|rebooting|…"}')
    unknown = set(body) - {"target", "timeout"}
    if unknown:
        raise InvalidInput(f"Unknown power option(s): {', '.join(sorted(unknown))}.")
    ctx.conductor.power(who, ident, body.get("target"))
    return Response(status_code=202)


@router.put("/nodes/{ident}/management/boot_device", status_code=204)
def set_boot_device(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    body = _object(body, '{"boot_device": "pxe|disk|bios|cdrom|safe", "persistent": false}')
    device = body.get("boot_device")
    if device not in states.BOOT_DEVICES:
        raise InvalidInput(
            f"Invalid boot_device {device!r}; use one of {', '.join(states.BOOT_DEVICES)}."
        )
    persistent = as_bool("persistent", body.get("persistent", False))
    ctx.conductor.with_lock(who, ident, lambda t: t.set_boot_device(device, persistent))
    return Response(status_code=204)


@router.get("/nodes/{ident}/management/boot_device")
def get_boot_device(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    device, persistent = ctx.conductor.with_lock(
        who, ident, lambda t: t.drivers.management.get_boot_device(t.ctx), write=False
    )
    return JSONResponse({"boot_device": device, "persistent": persistent})


@router.get("/nodes/{ident}/management/boot_device/supported")
def supported_boot_devices(
    ident: str, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    devices = ctx.conductor.with_lock(
        who, ident, lambda t: t.drivers.management.supported_boot_devices(t.ctx), write=False
    )
    return JSONResponse({"supported_boot_devices": devices})


@router.get("/nodes/{ident}/validate")
def validate(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    def check(task: Task) -> dict[str, Any]:
        results: dict[str, Any] = {}
        d = task.drivers
        for name, iface in (
            ("power", d.power),
            ("management", d.management),
            ("network", d.network),
            ("deploy", d.deploy),
        ):
            try:
                iface.validate(task.ctx)
                results[name] = {"result": True, "reason": None}
            except DriverError as exc:
                results[name] = {"result": False, "reason": exc.message}
        return results

    return JSONResponse(ctx.conductor.with_lock(who, ident, check, write=False))


@router.get("/nodes/{ident}/history")
def node_history(
    ident: str, request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    q = request.query_params
    limit = q.get("limit", "1000")
    marker = q.get("marker")
    if not limit.isdigit() or (marker is not None and not marker.isdigit()):
        raise InvalidInput("limit and marker must be whole numbers.")
    with ctx.transaction() as s:
        node = nodes.get(s, who, ident)
        rows = history.for_node(
            s, node.id, min(int(limit), 10_000), int(marker) if marker else None
        )
        base = base_url(request)
        events = [
            {
                "uuid": r.uuid,
                "created_at": r.created_at,
                "event_type": r.event_type,
                "severity": r.severity,
                "event": r.event,
                "conductor": r.conductor,
                "user": r.user,
                "seq": r.id,
                "links": [{"href": f"{base}/v1/nodes/{node.uuid}/history/{r.uuid}", "rel": "self"}],
            }
            for r in rows
        ]
    return JSONResponse({"history": events})


# --- the ramdisk agent (no user credentials: it has none) -------------------------------


@router.get("/lookup")
def lookup(request: Request, ctx: Context) -> JSONResponse:
    q = request.query_params
    addresses = (q.get("addresses") or "").split(",")
    found = ctx.conductor.lookup(addresses, q.get("node_uuid"))
    # The one answer that carries a secret (config.agent_token) to its owner, the
    # ramdisk; the node part is redacted like any other answer.
    found["node"] = redact.redact(found["node"])
    return SecretKeysJSONResponse(found)


@router.post("/heartbeat/{ident}", status_code=202)
def heartbeat(ident: str, ctx: Context, body: JsonBody) -> Response:
    body = _object(body, '{"callback_url": "...", "agent_token": "..."}')
    ctx.conductor.heartbeat(ident, body.get("callback_url"), body.get("agent_token"))
    return Response(status_code=202)
