"""Test support: real metalnic servers, PEM material and a private PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from metalnic.lab import pki

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
H153 = {"X-OpenStack-Ironic-API-Version": "1.53"}


def require(condition: bool, why: str) -> None:
    """Skip a test whose prerequisite is missing — but never in CI, where it must run."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"missing in CI: {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path
    database_url: str
    auth: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def client(
        self, version: str | None = "1.53", auth: tuple[str, str] | None = None
    ) -> httpx.Client:
        headers = {"X-OpenStack-Ironic-API-Version": version} if version else {}
        return httpx.Client(base_url=self.url, headers=headers, auth=auth or self.auth, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sqlite_count(self, table: str, where: str = "1 = 1") -> int:
        path = self.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])

    def sqlite_exec(self, sql: str, *params: Any) -> None:
        path = self.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute(sql, params)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    tmp: Path,
    *args: str,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    ca_file: Path | None = None,
    port: int | None = None,
) -> Server:
    """Start `metalnic serve`; with ``ca_file`` it is HTTPS, checked against that CA."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    db_url = database_url or f"sqlite:///{tmp / 'metalnic.sqlite'}"
    log_path = tmp / "server.log"
    cmd = [
        str(VENV_BIN / "metalnic"),
        "serve",
        "--port",
        str(port),
        "--state-dir",
        str(tmp),
        "--database-url",
        db_url,
        "--log-level",
        "info",
        "--access-log",
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    scheme = "https" if ca_file else "http"
    server = Server(f"{scheme}://127.0.0.1:{port}", proc, tmp, log_path, db_url)
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    deadline = time.monotonic() + 60  # a loaded CI machine starts slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"metalnic serve exited early:\n{server.log()}")
        try:
            if httpx.get(server.url + "/", timeout=1, verify=verify).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"metalnic serve did not answer:\n{server.log()}")


def openstack_cli(
    endpoint: str, *args: str, auth: tuple[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `openstack` CLI against ``endpoint`` (no OS_* settings leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    if auth:
        opts = ["--os-auth-type", "http_basic", "--os-username", auth[0], "--os-password", auth[1]]
    else:
        opts = ["--os-auth-type", "none"]
    cmd = [str(VENV_BIN / "openstack"), *opts, "--os-endpoint", endpoint, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def add_user(
    users_file: Path,
    name: str,
    password: str,
    role: str,
    project: str | None,
    nic_hosts: Iterable[str] = (),
) -> None:
    """``metalnic users add``; ``nic_hosts``: what an agent user is granted."""
    cmd = [
        str(VENV_BIN / "metalnic"),
        "users",
        "add",
        name,
        "--role",
        role,
        "--users-file",
        str(users_file),
        "--password-stdin",
    ]
    if project:
        cmd += ["--project", project]
    for host in nic_hosts:
        cmd += ["--nic-host", host]
    subprocess.run(cmd, input=password.encode(), check=True, capture_output=True)


@dataclass(frozen=True)
class User:
    """A user of a test server's users file (``add_user``)."""

    name: str
    password: str
    role: str
    project: str | None = None
    nic_hosts: Iterable[str] = ()


def start_with_users(
    tmp: Path,
    users: Iterable[User],
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """`metalnic serve` with http_basic over a users file of ``users`` (in ``tmp``, the
    server's state in ``tmp/state``); the first user is the server's ``auth``."""
    users = list(users)
    users_file = tmp / "users.toml"
    for user in users:
        add_user(users_file, user.name, user.password, user.role, user.project, user.nic_hosts)
    server = start_server(
        tmp / "state",
        "--auth",
        "http_basic",
        "--users-file",
        str(users_file),
        database_url=database_url,
        env=env,
    )
    server.auth = (users[0].name, users[0].password)
    return server


def module_server(start: Callable[[Path], Server], name: str) -> Any:
    """A module-scoped fixture ``server``: ``start(tmp)`` in a temporary directory
    named after ``name``, stopped after the module's last test."""

    @pytest.fixture(scope="module", name="server")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
        srv = start(tmp_path_factory.mktemp(name))
        yield srv
        srv.stop()

    return server


def network_client(
    server: Server, auth: tuple[str, str], headers: dict[str, str] | None = None
) -> httpx.Client:
    """A client of ``server``'s network API (``/network/v2.0``) as ``auth``."""
    return httpx.Client(
        base_url=server.url + "/network/v2.0", auth=auth, timeout=60, headers=headers
    )


# --- PEM material ------------------------------------------------------------


def make_ca(cn: str = "nic-ca") -> pki.CA:
    return pki.make_ca(cn)


def make_cert(ca: pki.CA, cn: str) -> x509.Certificate:
    return pki.issue(ca, cn)[0]


def make_server_cert(ca: pki.CA, ip: str = "127.0.0.1") -> tuple[str, str]:
    """PEM certificate and key for a TLS server at ``ip``, signed by ``ca``."""
    cert, key = pki.issue(ca, ip, ip=ip)
    return pem(cert), key


pem = pki.pem


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " nic@test"


def remote_llc(hostname: str = "nic-remote-1", port_id: str = "pf0hpf") -> dict[str, str]:
    ca = make_ca()
    return {
        "hostname": hostname,
        "port_id": port_id,
        "ssh_public_key": ssh_public_key(),
        "ovsdb_ca_cert": pem(ca[0]),
        "ovsdb_cert": pem(make_cert(ca, hostname)),
    }


# --- a private PostgreSQL ------------------------------------------------------


def postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


@dataclass
class Postgres:
    url_base: str
    data: Path
    bin: Path
    socket_dir: Path
    port: int

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "createdb"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                name,
            ],
            check=True,
            capture_output=True,
        )
        return f"{self.url_base}/{name}?host={self.socket_dir}&port={self.port}"

    def stop(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def start_postgres() -> Postgres:
    """A throw-away cluster on a Unix socket only; pytest's own tmp dirs are root-only."""
    bindir = postgres_bin()
    require(bindir is not None, "PostgreSQL server binaries (Debian package postgresql)")
    assert bindir is not None
    require(shutil.which("runuser") is not None and os.geteuid() == 0, "root to run postgres")
    tmp = Path(tempfile.mkdtemp(prefix="metalnic-pg-"))
    shutil.chown(tmp, "postgres")
    tmp.chmod(0o700)
    data, sock = tmp / "data", tmp
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_pg,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(tmp / "pg.log"),
            "-w",
            "start",
            "-o",
            f"-k {sock} -p {port} -c listen_addresses=''",
        ],
        check=True,
        capture_output=True,
    )
    return Postgres("postgresql+psycopg://postgres@", data, bindir, sock, port)
