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
