"""Routes for /v1/drivers: the hardware types this server offers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from metalnic.baremetal import policy
from metalnic.baremetal.api import params, views
from metalnic.baremetal.api.deps import ApiVersion, Caller, Context, base_url, check_url
from metalnic.baremetal.api.openapi import errors
from metalnic.baremetal.drivers.registry import HardwareType
from metalnic.errors import DriverNotFound
from metalnic.httpjson import JSONResponse, SecretKeysJSONResponse

router = APIRouter(prefix="/v1/drivers", dependencies=[Depends(check_url)])


def _get(ctx: Context, name: str) -> HardwareType:
    hw = ctx.registry.get(name)
    if hw is None:
        raise DriverNotFound(name)
    return hw


@router.get("")
def list_drivers(
    request: Request,
    ctx: Context,
    who: Caller,
    version: ApiVersion,
    kind: params.DriverType = None,
    detail: params.Detail = None,
) -> JSONResponse:
    policy.require_reader(who)
    detail = bool(detail) and version >= (1, 30)
    types = [] if kind == "classic" else ctx.registry.all()
    base = base_url(request)
    return JSONResponse(
        {"drivers": [views.driver(hw, base, [ctx.hostname], detail) for hw in types]}
    )


@router.get("/{name}", responses=errors(404))
def show_driver(
    name: str, request: Request, ctx: Context, who: Caller, version: ApiVersion
) -> JSONResponse:
    policy.require_reader(who)
    hw = _get(ctx, name)
    return JSONResponse(views.driver(hw, base_url(request), [ctx.hostname], version >= (1, 30)))


@router.get("/{name}/properties", responses=errors(404))
def driver_properties(name: str, ctx: Context, who: Caller, version: ApiVersion) -> JSONResponse:
    policy.require_reader(who)
    # Keys such as ipmi_password name fields; their values are descriptions.
    return SecretKeysJSONResponse(dict(_get(ctx, name).properties))
