"""Routes for /v1/drivers: the hardware types this server offers."""

from __future__ import annotations

from fastapi import APIRouter, Request

from metalnic.baremetal import policy
from metalnic.baremetal.api import views
from metalnic.baremetal.api.deps import ApiVersion, Caller, Context, base_url, parse_bool_param
from metalnic.baremetal.drivers.registry import HardwareType
from metalnic.errors import DriverNotFound, InvalidInput
from metalnic.httpjson import JSONResponse, SecretKeysJSONResponse

router = APIRouter(prefix="/v1/drivers")


def _get(ctx: Context, name: str) -> HardwareType:
    hw = ctx.registry.get(name)
    if hw is None:
        raise DriverNotFound(name)
    return hw


@router.get("")
def list_drivers(request: Request, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    policy.require_reader(who)
    q = request.query_params
    kind = q.get("type")
    if kind not in (None, "classic", "dynamic"):
        raise InvalidInput(f"Invalid driver type {kind!r}; use classic or dynamic.")
    detail = bool(parse_bool_param("detail", q.get("detail"))) and version >= (1, 30)
    types = [] if kind == "classic" else ctx.registry.all()
    base = base_url(request)
    return JSONResponse(
        {"drivers": [views.driver(hw, base, [ctx.hostname], detail) for hw in types]}
    )


@router.get("/{name}")
def show_driver(
    name: str, request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    policy.require_reader(who)
    hw = _get(ctx, name)
    return JSONResponse(views.driver(hw, base_url(request), [ctx.hostname], version >= (1, 30)))


@router.get("/{name}/properties")
def driver_properties(name: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    policy.require_reader(who)
    # Keys such as ipmi_password name fields; their values are descriptions.
    return SecretKeysJSONResponse(dict(_get(ctx, name).properties))
