"""HTTPS: the server presents its certificate, clients verify it."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    VENV_BIN,
    Server,
    add_user,
    free_port,
    make_ca,
    make_server_cert,
    openstack_cli,
    pem,
    start_server,
)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca = make_ca("metalnic-test-ca")
    cert, key = make_server_cert(ca)
    (tmp / "ca.pem").write_text(pem(ca[0]))
    (tmp / "server.pem").write_text(cert)
    (tmp / "server.key").write_text(key)
    (tmp / "server.key").chmod(0o600)
    srv = start_server(
        tmp / "state",
        "--tls-cert-file",
        str(tmp / "server.pem"),
        "--tls-key-file",
        str(tmp / "server.key"),
        ca_file=tmp / "ca.pem",
    )
    yield srv, tmp / "ca.pem"
    srv.stop()


def test_https_with_trusted_ca(tls_server: tuple[Server, Path]) -> None:
    server, ca = tls_server
    assert server.url.startswith("https://")
    ctx = ssl.create_default_context(cafile=ca)
    r = httpx.get(server.url + "/v1/drivers", verify=ctx)
    assert r.status_code == 200


def test_untrusted_certificate_is_refused(tls_server: tuple[Server, Path]) -> None:
    server, _ = tls_server
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(server.url + "/")


def test_metalnic_cli_verifies(tls_server: tuple[Server, Path]) -> None:
    server, ca = tls_server
    cmd = [str(VENV_BIN / "metalnic"), "--url", server.url]
    ok = subprocess.run(
        [*cmd, "--cacert", str(ca), "node", "list"], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run([*cmd, "node", "list"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr


def test_openstack_cli_with_cacert(tls_server: tuple[Server, Path]) -> None:
    server, ca = tls_server
    r = openstack_cli(
        server.url,
        "--os-cacert",
        str(ca),
        "baremetal",
        "driver",
        "list",
        "-f",
        "value",
        "-c",
        "name",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["fake-hardware", "ipmi", "redfish"]
    refused = openstack_cli(server.url, "baremetal", "driver", "list")
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "SSL" in refused.stderr


def _serve(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`metalnic serve` that is expected to stop on its own (refused, or cannot bind)."""
    return subprocess.run(
        [str(VENV_BIN / "metalnic"), "serve", "--state-dir", str(tmp / "state"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pem_pair(tmp: Path) -> tuple[Path, Path, Path]:
    ca = make_ca("metalnic-test-ca")
    cert, key = make_server_cert(ca)
    (tmp / "ca.pem").write_text(pem(ca[0]))
    (tmp / "server.pem").write_text(cert)
    (tmp / "server.key").write_text(key)
    (tmp / "server.key").chmod(0o600)
    return tmp / "server.pem", tmp / "server.key", tmp / "ca.pem"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    cert, key, _ca = _pem_pair(tmp_path)
    key.chmod(mode)
    r = _serve(tmp_path, "--port", "0", "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    assert r.returncode == 1, r.stderr
    assert "is accessible by group or others" in r.stderr and "chmod 600" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "state" / "metalnic.sqlite").exists()  # refused before anything


def test_http_basic_without_tls_off_loopback_warns(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    add_user(users, "admin", "admin-pw", "admin", "ops")
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the warning comes at start-up,
    # then the bind fails — nothing ever listens off loopback.
    args = ["--auth", "http_basic", "--users-file", str(users), "--port", str(free_port())]
    r = _serve(tmp_path, "--host", "192.0.2.1", *args)
    assert r.returncode != 0
    assert "Serving http_basic without TLS on 192.0.2.1" in r.stderr, r.stderr


def _handshake(url: str, ca: Path, maximum: ssl.TLSVersion) -> str:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.maximum_version = maximum
    with httpx.Client(verify=ctx) as c:
        return c.get(url + "/").extensions["network_stream"].get_extra_info("ssl_object").version()


def test_minimum_tls_version(tls_server: tuple[Server, Path], tmp_path: Path) -> None:
    server, ca = tls_server
    assert _handshake(server.url, ca, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # default: 1.2 ok
    cert, key, ca13 = _pem_pair(tmp_path)
    strict = start_server(
        tmp_path / "strict",
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-min-version",
        "1.3",
        ca_file=ca13,
    )
    try:
        assert _handshake(strict.url, ca13, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        with pytest.raises(httpx.ConnectError, match="(?i)version|protocol|alert"):
            _handshake(strict.url, ca13, ssl.TLSVersion.TLSv1_2)
    finally:
        strict.stop()
