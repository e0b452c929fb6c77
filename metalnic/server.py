"""Builds the metalnic HTTP application from settings, and runs it.

The bare-metal API lives at ``/`` (discovery) and ``/v1``.  Later services
mount under their own roots (the network API under ``/network``), each with
its own error format.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager, suppress
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from metalnic import redact, transport
from metalnic.auth import make_authenticator
from metalnic.baremetal.api import (
    bios,
    chassis,
    conductors,
    drivers,
    httpboot,
    microversion,
    nodes,
    portgroups,
    ports,
    root,
    states,
    traits,
    vifs,
)
from metalnic.baremetal.api.deps import AppContext
from metalnic.baremetal.api.errors import error_response
from metalnic.baremetal.conductor import periodic
from metalnic.baremetal.conductor.service import Conductor
from metalnic.baremetal.drivers.base import NetworkPhase
from metalnic.baremetal.drivers.boot.ipxe import IpxeConfig
from metalnic.baremetal.drivers.boot.scripts import BootFiles
from metalnic.baremetal.drivers.deploy.ansible import AnsibleConfig
from metalnic.baremetal.drivers.network.client import NetworkClient
from metalnic.baremetal.drivers.network.smartnic import SmartNicConfig
from metalnic.baremetal.drivers.registry import default_registry
from metalnic.baremetal.inventory import Inventory
from metalnic.db import migrate
from metalnic.db.session import Database
from metalnic.embedded_network import EmbeddedNetworkClient
from metalnic.errors import InvalidInput, MetalnicError
from metalnic.httpjson import JSONResponse
from metalnic.network import feed
from metalnic.network.api import agents as network_agents
from metalnic.network.api import errors as network_errors
from metalnic.network.api import grants as network_grants
from metalnic.network.api import routes as network_routes
from metalnic.network.api import tags as network_tags
from metalnic.network.api.deps import PREFIX as NETWORK_PREFIX
from metalnic.network.api.deps import NetworkContext
from metalnic.network.service import NetworkService
from metalnic.settings import Settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class IronicVersionHeaders:
    """Adds the microversion headers to every answer under /v1 (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for key, value in microversion.range_headers().items():
                    if key.lower().encode() not in names:
                        headers.append((key.encode(), value.encode()))
                chosen = scope.get("state", {}).get("api_version")
                if chosen is not None:
                    headers.append(
                        (microversion.HEADER.encode(), microversion.fmt(chosen).encode())
                    )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(request: Request, status: int, message: str, kind: str | None = None) -> JSONResponse:
    """Each API answers errors in its own format: Neutron's under /network, else Ironic's."""
    if request.url.path.startswith(NETWORK_PREFIX):
        return network_errors.error_response(status, message, kind)
    return error_response(status, message)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MetalnicError)
    async def metalnic_error(request: Request, exc: MetalnicError) -> JSONResponse:
        return _error(request, exc.status, exc.message, exc.neutron_type)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "The resource could not be found.", 405: "Method not allowed."}
        message = messages.get(exc.status_code, str(exc.detail))
        return _error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return _error(request, 400, f"Invalid request: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unexpected error while serving %s %s", request.method, request.url.path)
        return _error(request, 500, "Internal error; the server log has the details.")


def build_context(
    settings: Settings, db: Database, network_client: NetworkClient | None
) -> AppContext:
    """The bare-metal side; it reaches the network service only through ``network_client``."""
    registry = default_registry(
        network_client, smartnic_config(settings), ipxe_config(settings),
        settings.iscsi_portal_port,
        AnsibleConfig(
            settings.resolved_ansible_key_file(), settings.ansible_username,
            settings.ansible_timeout,
        ),
    )  # fmt: skip
    return AppContext(
        settings=settings,
        authenticator=make_authenticator(
            settings.auth,
            settings.users_file,
            settings.login_user_failures,
            settings.login_source_failures,
            settings.login_backoff_max,
        ),
        registry=registry,
        hostname=socket.gethostname(),
        conductor=Conductor(settings, db, registry),
        inventory=Inventory(db, registry),
    )


def smartnic_config(settings: Settings) -> SmartNicConfig:
    return SmartNicConfig(
        networks={
            NetworkPhase.PROVISIONING: settings.provisioning_network,
            NetworkPhase.CLEANING: settings.cleaning_network,
            NetworkPhase.RESCUING: settings.rescuing_network,
        },
        security_groups={
            NetworkPhase.PROVISIONING: settings.provisioning_network_security_groups,
            NetworkPhase.CLEANING: settings.cleaning_network_security_groups,
            NetworkPhase.RESCUING: settings.rescuing_network_security_groups,
        },
        active_timeout=settings.port_active_timeout,
        removed_timeout=settings.port_removed_timeout,
        dhcpv6_addresses=settings.dhcpv6_stateful_address_count,
    )


def ipxe_config(settings: Settings) -> IpxeConfig:
    """What the ipxe boot interface writes and tells hosts, and what /boot serves."""
    deploy = (settings.deploy_kernel, settings.deploy_ramdisk)
    rescue = (settings.rescue_kernel or deploy[0], settings.rescue_ramdisk or deploy[1])
    return IpxeConfig(
        files=BootFiles(
            http_url=settings.http_boot_url,
            api_url=settings.resolved_ramdisk_api_url(),
            tftp_server=settings.tftp_server,
            bios_bootfile=settings.ipxe_bootfile_name,
            uefi_bootfile=settings.uefi_ipxe_bootfile_name,
            kernel_append_params=settings.kernel_append_params,
        ),
        http_root=settings.resolved_http_root(),
        default_boot_mode=settings.default_boot_mode,
        images={"deploy": deploy, "rescue": rescue},
    )


def network_client(settings: Settings, service: NetworkService) -> NetworkClient:
    """The embedded network service, or a Neutron at ``neutron_endpoint``."""
    if settings.network_client == "embedded":
        return EmbeddedNetworkClient(service)
    from metalnic.baremetal.drivers.network.neutron import NeutronClient

    if not settings.neutron_endpoint:
        raise InvalidInput("network_client=neutron needs neutron_endpoint")
    return NeutronClient(
        settings.neutron_endpoint,
        settings.neutron_username,
        settings.neutron_password,
        settings.neutron_cacert,
    )


def create_app(settings: Settings, database: Database | None = None) -> FastAPI:
    """The ASGI app; migrations are applied before the first request is served."""
    db = database or Database(settings.resolved_database_url())
    network_service = NetworkService(settings, db)
    ctx = build_context(settings, db, network_client(settings, network_service))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate.upgrade(db.engine)
        ctx.conductor.register()
        # Before serving: a previous run of this server that died mid-flow has
        # its nodes failed (and powered off) right away.  Power sync waits for
        # the loop: with many BMCs it must not delay start-up.
        periodic.recover(ctx.conductor)
        loop = periodic.PeriodicLoop(ctx.conductor)
        loop.start()
        # Several servers on one PostgreSQL: wake this one's waiters on their changes.
        listener = None
        if db.engine.dialect.name == "postgresql":
            listener = feed.PostgresListener(db.engine, network_service.notifier)
            listener.start()
        yield
        if listener is not None:
            listener.stop()
        loop.stop()
        ctx.conductor.shutdown()
        db.dispose()

    app = FastAPI(
        title="metalnic",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    app.state.ctx = ctx
    app.state.network = NetworkContext(ctx.settings, network_service, ctx.authenticator)
    for module in (
        root,
        nodes,
        ports,
        portgroups,
        chassis,
        bios,
        drivers,
        conductors,
        states,
        traits,
        vifs,
        httpboot,
    ):
        app.include_router(module.router)
    app.include_router(network_routes.router)
    app.include_router(network_agents.router)
    app.include_router(network_grants.router)
    app.include_router(network_tags.router)
    _install_error_handlers(app)
    app.add_middleware(IronicVersionHeaders)
    return app


# How long a graceful stop waits for running flows to wind down while still serving.
STOP_DRAIN_SECONDS = 60.0


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT the conductor first winds its flows down (failed, hosts off,
    ports unplugged) while the API still serves — the NIC agents must be able to
    confirm — and only then does uvicorn stop serving.  A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, conductor: Conductor) -> None:
        super().__init__(config)
        self.conductor = conductor
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        log.warning("stopping: winding down running flows first")

        def drain() -> None:
            if not self.conductor.drain(STOP_DRAIN_SECONDS):
                log.warning("flows still running after %.0f s; stopping", STOP_DRAIN_SECONDS)
            super(DrainingServer, self).handle_exit(sig, frame)

        threading.Thread(target=drain, name="drain", daemon=True).start()


def serve(settings: Settings) -> None:
    # Before anything logs: no record of this process carries a secret.
    redact.install_logging()
    redact.remember(settings.neutron_password)
    transport.check(settings)  # before anything is opened or migrated
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        server_header=False,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
    config.load()  # builds the TLS context, which then gets the minimum version
    if config.ssl is not None:
        transport.harden(config.ssl, settings)
    server = DrainingServer(config, app.state.ctx.conductor)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: the port was taken, the lifespan failed…
