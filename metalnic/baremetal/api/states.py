"""Routes that act on a node through the conductor: provision and power verbs,
boot device, validation, the node's event log, and the ramdisk agent's
lookup and heartbeat (public, authenticated by the one-time agent token)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypedDict

from fastapi import APIRouter, Depends, Request, Response

from metalnic import redact
from metalnic.baremetal.api import bodies, params, views
from metalnic.baremetal.api.deps import (
    ApiVersion,
    Caller,
    Context,
    JsonBody,
    base_url,
    check_url,
)
from metalnic.baremetal.api.openapi import body_doc, errors
from metalnic.baremetal.coerce import as_bool
from metalnic.baremetal.conductor.task import Task
from metalnic.baremetal.drivers.base import DriverError, NodeContext
from metalnic.baremetal.states import BootDevice
from metalnic.httpjson import JSONResponse, SecretKeysJSONResponse

router = APIRouter(prefix="/v1", dependencies=[Depends(check_url)])
# A verb on a node: it may not exist, may be locked or in the wrong state, or a driver fails.
_VERB_ERRORS = errors(404, 409, 500)


@router.put(
    "/nodes/{ident}/states/provision",
    status_code=202,
    responses=_VERB_ERRORS,
    openapi_extra=body_doc(bodies.ProvisionState),
)
def set_provision_state(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    body = bodies.check(bodies.ProvisionState, body, "provision request")
    ctx.conductor.provision(who, ident, body["target"], body)
    return Response(status_code=202)


@router.put(
    "/nodes/{ident}/states/power",
    status_code=202,
    responses=_VERB_ERRORS,
    openapi_extra=body_doc(bodies.PowerState),
)
def set_power_state(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    body = bodies.check(bodies.PowerState, body, "power request")
    ctx.conductor.power(who, ident, body["target"])
    return Response(status_code=202)


@router.put(
    "/nodes/{ident}/management/boot_device",
    status_code=204,
    responses=_VERB_ERRORS,
    openapi_extra=body_doc(bodies.BootDevice),
)
def set_boot_device(
    ident: str, ctx: Context, who: Caller, version: ApiVersion, body: JsonBody
) -> Response:
    body = bodies.check(bodies.BootDevice, body, "boot device request")
    device = BootDevice(body["boot_device"])
    persistent = as_bool("persistent", body.get("persistent", False))
    ctx.conductor.with_lock(who, ident, lambda t: t.set_boot_device(device, persistent))
    return Response(status_code=204)


@router.get("/nodes/{ident}/management/boot_device", responses=_VERB_ERRORS)
def get_boot_device(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    device, persistent = ctx.conductor.with_lock(
        who, ident, lambda t: t.drivers.management.get_boot_device(t.ctx), write=False
    )
    return JSONResponse({"boot_device": device, "persistent": persistent})


@router.get("/nodes/{ident}/management/boot_device/supported", responses=_VERB_ERRORS)
def supported_boot_devices(
    ident: str, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    devices = ctx.conductor.with_lock(
        who, ident, lambda t: t.drivers.management.supported_boot_devices(t.ctx), write=False
    )
    return JSONResponse({"supported_boot_devices": devices})


class Validatable(Protocol):
    def validate(self, ctx: NodeContext) -> None: ...


class Validation(TypedDict, total=False):
    """One interface's answer in ``GET /v1/nodes/{ident}/validate``: as Ironic's,
    ``reason`` only when ``result`` is false."""

    result: bool
    reason: str


# Every interface Ironic's validate reports (its non-vendor interfaces), in its order.
VALIDATED = (
    "bios", "boot", "console", "deploy", "inspect", "management",
    "network", "power", "raid", "rescue", "storage",
)  # fmt: skip


def _optional_interface(kind: str, name: str, driver: str) -> Validation:
    """An interface metalnic has no driver code for (bios, console, inspect, raid,
    storage): its ``fake`` and ``noop`` do nothing and are valid; its ``no-*`` says
    the driver does not support it, as Ironic's do."""
    if name.startswith("no-"):
        reason = f"Driver {driver} does not support {kind} (disabled or not implemented)."
        return {"result": False, "reason": reason}
    return {"result": True}


@router.get("/nodes/{ident}/validate", responses=errors(404, 409))
def validate(ident: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    def check(task: Task) -> dict[str, Validation]:
        with task.node() as node:
            names = {kind: getattr(node, f"{kind}_interface") or "" for kind in VALIDATED}
        results: dict[str, Validation] = {}
        d = task.drivers
        coded: dict[str, Validatable] = {
            "power": d.power, "management": d.management, "network": d.network,
            "deploy": d.deploy, "boot": d.boot, "rescue": d.rescue,
        }  # fmt: skip
        for kind in VALIDATED:
            iface = coded.get(kind)
            if iface is None:
                results[kind] = _optional_interface(kind, names[kind], task.ctx.driver)
                continue
            try:
                iface.validate(task.ctx)
                results[kind] = {"result": True}
            except DriverError as exc:
                results[kind] = {"result": False, "reason": exc.message}
        return results

    return JSONResponse(ctx.conductor.with_lock(who, ident, check, write=False))


class HistoryEvent(TypedDict):
    """One event in ``GET /v1/nodes/{ident}/history``."""

    uuid: str
    created_at: datetime
    event_type: str
    severity: str
    event: str
    conductor: str | None
    user: str | None
    seq: int
    links: list[dict[str, str]]


def _events(base: str, node: views.Record, rows: Sequence[Any]) -> list[HistoryEvent]:
    return [
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


@router.get("/nodes/{ident}/history", responses=errors(404))
def node_history(
    ident: str,
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    limit: params.HistoryLimit = 1000,
    marker: params.HistoryMarker = None,
) -> JSONResponse:
    base = base_url(request)
    events = ctx.inventory.node_history(
        who, ident, min(limit, 10_000), marker or None, lambda n, rows: _events(base, n, rows)
    )
    return JSONResponse({"history": events})


# --- the ramdisk agent (no user credentials: it has none) -------------------------------


@router.get("/lookup", responses=errors(404))
def lookup(
    ctx: Context, addresses: params.Addresses = None, node_uuid: params.Text = None
) -> JSONResponse:
    found = ctx.conductor.lookup((addresses or "").split(","), node_uuid)
    # The one answer that carries a secret (config.agent_token) to its owner, the
    # ramdisk; the node part is redacted like any other answer.
    found["node"] = redact.redact(found["node"])
    return SecretKeysJSONResponse(found)


@router.post(
    "/heartbeat/{ident}",
    status_code=202,
    responses=errors(401, 404, 409, 500),
    openapi_extra=body_doc(bodies.Heartbeat),
)
def heartbeat(ident: str, ctx: Context, body: JsonBody) -> Response:
    body = bodies.check(bodies.Heartbeat, body, "heartbeat")
    ctx.conductor.heartbeat(ident, body["callback_url"], body.get("agent_token"))
    return Response(status_code=202)
