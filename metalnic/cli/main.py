"""Entry point of the ``metalnic`` command: server, database, users and API commands."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from metalnic import __version__, redact
from metalnic.auth import ROLES
from metalnic.cli import demo, lab, resources
from metalnic.errors import MetalnicError
from metalnic.settings import Settings

if TYPE_CHECKING:  # the agent modules load only for the agent commands
    from metalnic.agent.process import AgentProcess, ProcessConfig

C = TypeVar("C", bound="ProcessConfig")


def _settings(a: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    keys = (
        "host",
        "port",
        "database_url",
        "auth",
        "users_file",
        "state_dir",
        "log_level",
        "tls_cert_file",
        "tls_key_file",
        "tls_min_version",
    )
    for key in keys:
        value = getattr(a, key, None)
        if value is not None:
            overrides[key] = value
    if getattr(a, "access_log", False):
        overrides["access_log"] = True
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"error: invalid settings: {exc}") from None


def cmd_agent(a: argparse.Namespace) -> None:
    from metalnic.agent.config import load
    from metalnic.agent.service import Agent

    _run_agent(a.log_level, lambda: load(a.config), Agent)


def cmd_dhcp_agent(a: argparse.Namespace) -> None:
    from metalnic.dhcp.config import load
    from metalnic.dhcp.service import DhcpAgent

    _run_agent(a.log_level, lambda: load(a.config), DhcpAgent)


def _run_agent(log_level: str, load: Callable[[], C], make: Callable[[C], AgentProcess[C]]) -> None:
    """An agent process (``metalnic agent``, ``metalnic dhcp-agent``) until SIGTERM or ^C."""
    import signal

    from metalnic.agent.configfile import ConfigError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore"):  # every long-poll would be a line
        logging.getLogger(noisy).setLevel(logging.WARNING)
    redact.install_logging()
    try:
        config = load()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    redact.remember(config.password)
    agent = make(config)
    signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
    agent.start()
    try:
        agent.wait()
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in --state-dir)")
    p.add_argument("--state-dir", type=Path, help="where the default SQLite file lives")


def cmd_serve(a: argparse.Namespace) -> None:
    from metalnic.server import serve

    settings = _settings(a)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic announces every plugin it loads at INFO; only its migrations matter.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    serve(settings)


def cmd_db_upgrade(a: argparse.Namespace) -> None:
    from metalnic.db import migrate
    from metalnic.db.session import Database

    db = Database(_settings(a).resolved_database_url())
    migrate.upgrade(db.engine, a.revision)
    print(f"Database at revision {migrate.current_revision(db.engine)}")
    db.dispose()


def cmd_users_add(a: argparse.Namespace) -> None:
    from metalnic.auth import add_user

    if a.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        if not sys.stdin.isatty():
            # getpass would fall back to echoing, or fail with a traceback.
            raise SystemExit(
                "error: no terminal to ask for the password; "
                'pipe it in with --password-stdin (e.g. printf %s "$PW" | metalnic users '
                "add NAME --role ROLE --password-stdin)"
            )
        password = getpass.getpass(f"Password for {a.name}: ")
        if getpass.getpass("Repeat it: ") != password:
            raise SystemExit("error: the passwords differ")
    add_user(a.users_file, a.name, password, a.role, a.project, a.nic_host or ())
    print(f"User {a.name} ({', '.join(a.role)}) written to {a.users_file}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metalnic", description=__doc__)
    parser.add_argument("--version", action="version", version=f"metalnic {__version__}")
    parser.add_argument(
        "--url",
        default=os.environ.get("METALNIC_URL", "http://127.0.0.1:6385"),
        help="API endpoint for node/port commands (env METALNIC_URL)",
    )
    parser.add_argument("--username", default=os.environ.get("METALNIC_USERNAME"))
    parser.add_argument(
        "--cacert",
        default=os.environ.get("METALNIC_CACERT"),
        help="CA bundle that signed the server's certificate (env METALNIC_CACERT)",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("METALNIC_PASSWORD"),
        help="prefer the METALNIC_PASSWORD variable: arguments are visible to other users",
    )
    parser.add_argument("-f", "--format", choices=["table", "json"], default="table")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the API server")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--auth", choices=["noauth", "http_basic"])
    p.add_argument("--users-file", type=Path)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--tls-cert-file", type=Path, help="serve HTTPS with this PEM certificate")
    p.add_argument("--tls-key-file", type=Path, help="the PEM private key of --tls-cert-file")
    p.add_argument(
        "--tls-min-version",
        choices=["1.2", "1.3"],
        help="the oldest TLS version to speak (default 1.2)",
    )
    _server_options(p)
    p.set_defaults(func=cmd_serve, client=False)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="action", required=True
    )
    p = db.add_parser("upgrade", help="apply the Alembic migrations")
    p.add_argument("revision", nargs="?", default="head")
    _server_options(p)
    p.set_defaults(func=cmd_db_upgrade, client=False)

    users = sub.add_parser("users", help="the users file of http_basic auth")
    uacts = users.add_subparsers(dest="action", required=True)
    p = uacts.add_parser("add", help="add or replace a user")
    p.add_argument("name")
    p.add_argument("--role", action="append", required=True, choices=list(ROLES))
    p.add_argument("--project")
    p.add_argument(
        "--nic-host",
        action="append",
        help="agent users: a NIC host it may serve (repeat for several)",
    )
    p.add_argument(
        "--users-file",
        type=Path,
        default=Path(os.environ.get("METALNIC_USERS_FILE", "metalnic-users.toml")),
    )
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_users_add, client=False)

    for name, what, about, func in (
        ("agent", "agent", "run the smart NIC OVS agent", cmd_agent),
        ("dhcp-agent", "DHCP agent", "run the DHCP agent (dnsmasq per network)", cmd_dhcp_agent),
    ):
        p = sub.add_parser(name, help=about)
        p.add_argument("--config", type=Path, required=True, help=f"the {what}'s TOML file")
        p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        p.set_defaults(func=func, client=False)

    demo.add_parser(sub)
    lab.add_parser(sub)
    resources.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "client", True):
        # Server-side commands: no HTTP client needed (keeps `serve` start-up lean).
        try:
            args.func(args)
        except MetalnicError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        return 0
    from metalnic.cli.client import ApiError, BaremetalClient

    client = BaremetalClient(args.url, args.username, args.password, cacert=args.cacert)
    try:
        args.func(client, args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
