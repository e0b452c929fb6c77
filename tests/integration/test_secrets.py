"""No planted secret leaves a real `metalnic serve`: not in an answer, an error or a log line.

Distinct secrets are planted through the real HTTP API (a password inside a
``redfish_address`` URL, with and without a scheme, ``ipmi_password``,
``redfish_password``, a private key attempted as ``ovsdb_cert``, password keys
in a port's ``extra`` and a network port's ``binding:profile``, a config drive,
URLs with credentials in bad input and in a query string), then read back
every way a client can: show, list, detail, ``fields``, PATCH replies, error
replies, ``validate``, a failing BMC operation (``manage`` against a closed
port writes ``last_error``; the power sync retries it every pass) and the
node history — as admin without authentication and, with ``http_basic``, as
admin, owner member, other member and observer.  Every response body and
header, and the server's whole log, is then searched for each secret and its
base64 and URL-encoded forms.  A JSON patch ``test`` must answer a right guess
exactly as a wrong one.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import PASSWORDS
from tests.integration.conductor_helpers import provision, wait_for
from tests.integration.helpers import SMART_LLC, fault, make_node, make_port, random_mac
from tests.integration.test_conductor import FAST
from tests.support import (
    VENV_BIN,
    Server,
    free_port,
    make_ca,
    make_cert,
    pem,
    ssh_public_key,
    start_server,
)


def _secret(name: str) -> str:
    return f"{name}-{secrets.token_hex(8)}"


class Recorder:
    """Clients whose every response (status line, headers, body) is kept for the search."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.seen: list[str] = []

    def _keep(self, r: httpx.Response) -> None:
        r.read()
        headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        # What the server sent back; the request (the client's own secrets) is not searched.
        self.seen.append(f"{r.status_code}\n{headers}\n{r.text}")

    def client(self, auth: tuple[str, str] | None = None, base: str = "") -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url + base,
            headers={"X-OpenStack-Ironic-API-Version": "1.53"},
            auth=auth or self.server.auth,
            timeout=60,
            event_hooks={"response": [self._keep]},
        )


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def assert_hidden(planted: dict[str, str], recorder: Recorder) -> None:
    texts = {"server log": recorder.server.log()} | {
        f"response {i}": text for i, text in enumerate(recorder.seen)
    }
    assert len(texts) > 10, "the scenario read nothing back"
    for name, secret in planted.items():
        for form in _forms(secret):
            for where, text in texts.items():
                assert form not in text, f"{name} ({form!r}) leaked in {where}:\n{text[:3000]}"


def _read_node_every_way(c: httpx.Client, node: str) -> None:
    for path in (
        f"/v1/nodes/{node}",
        f"/v1/nodes/{node}?fields=driver_info,instance_info,last_error,driver_internal_info",
        "/v1/nodes",
        "/v1/nodes/detail",
        "/v1/nodes?fields=uuid,driver_info",
        f"/v1/nodes/{node}/states",
        f"/v1/nodes/{node}/validate",
        f"/v1/nodes/{node}/history",
        f"/v1/nodes/{node}/ports",
    ):
        c.get(path)


@pytest.fixture(scope="module")
def noauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("secrets-noauth"), env=FAST)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("secrets-basic"),
        "--auth",
        "http_basic",
        "--users-file",
        str(users_file),
        env=FAST,
    )
    srv.auth = ("admin", PASSWORDS["admin"])
    yield srv
    srv.stop()


def _key_bundle() -> tuple[str, str, str]:
    """A certificate, the same certificate followed by a private key, and a line of the key."""
    ca = make_ca("secret-ca")
    cert = pem(make_cert(ca, "nic-secret"))
    key = (
        ca[1]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return cert, cert + key, key.splitlines()[1]


def _failing_redfish_nodes(c: httpx.Client, planted: dict[str, str]) -> list[str]:
    closed = free_port()  # nothing listens: every BMC call fails and says why
    addresses = [
        f"https://root:{planted['url password']}@127.0.0.1:{closed}",
        f"root:{planted['bare url password']}@127.0.0.1:{closed}",
    ]
    made = []
    for address in addresses:
        node = make_node(
            c,
            driver="redfish",
            driver_info={
                "redfish_address": address,
                "redfish_username": "root",
                "redfish_password": planted["redfish_password"],
                "redfish_verify_ca": False,
            },
        )
        made.append(node["uuid"])
        r = c.patch(
            f"/v1/nodes/{node['uuid']}",
            json=[{"op": "add", "path": "/extra/rack", "value": "r1"}],
        )
        assert r.status_code == 200, r.text
        assert r.json()["driver_info"]["redfish_password"] == "******"
        provision(c, node["uuid"], "manage")
    for node in made:
        back = wait_for(c, node, "enroll", timeout=60)
        assert "unreachable" in back["last_error"], back["last_error"]
        assert "127.0.0.1" in back["last_error"]  # the address is still named
        assert back["driver_info"]["redfish_address"].startswith(("https://******@", "******@"))
    return made


def _bad_input(c: httpx.Client, planted: dict[str, str]) -> None:
    url = f"https://user:{planted['bad input password']}@bmc.example"
    r = c.post("/v1/nodes", json={"driver": "fake-hardware", "name": url})
    assert r.status_code == 400 and "Expected a logical name" in fault(r)
    r = c.post("/v1/nodes", json={"driver": "fake-hardware", "driver_info": url})
    assert r.status_code == 400, r.text
    c.get("/v1/nodes", params={"password": planted["query password"], "limit": url})
    c.get(f"/v1/nodes/{urllib.parse.quote(url, safe='')}")


def _ports(c: httpx.Client, planted: dict[str, str]) -> str:
    node = make_node(c)["uuid"]
    port = make_port(
        c,
        node,
        extra={"password": planted["port extra password"], "deep": [{"Secret": "x" * 8}]},
    )
    assert port["extra"]["password"] == "******"
    for path in (f"/v1/ports/{port['uuid']}", "/v1/ports", "/v1/ports/detail"):
        assert c.get(path).status_code == 200
    r = c.patch(
        f"/v1/ports/{port['uuid']}",
        json=[{"op": "add", "path": "/extra/api_token", "value": planted["port extra password"]}],
    )
    assert r.status_code == 200 and r.json()["extra"]["api_token"] == "******"
    return node


def _private_key_as_ovsdb_cert(c: httpx.Client, node: str, planted: dict[str, str]) -> None:
    cert, bundle, _line = _key_bundle()
    llc = {**SMART_LLC, "ssh_public_key": ssh_public_key(), "ovsdb_cert": bundle}
    before = c.get("/v1/ports/detail").json()["ports"]
    mac = random_mac()
    body = {"node_uuid": node, "address": mac, "is_smartnic": True, "local_link_connection": llc}
    r = c.post("/v1/ports", json=body)
    assert r.status_code == 400, r.text
    assert "ovsdb_cert contains a private key" in fault(r)
    assert c.get("/v1/ports/detail").json()["ports"] == before  # nothing written
    port = make_port(c, node, is_smartnic=True, local_link_connection={**llc, "ovsdb_cert": cert})
    r = c.patch(
        f"/v1/ports/{port['uuid']}",
        json=[{"op": "replace", "path": "/local_link_connection/ovsdb_cert", "value": bundle}],
    )
    assert r.status_code == 400 and "contains a private key" in fault(r)
    assert c.get(f"/v1/ports/{port['uuid']}").json()["local_link_connection"]["ovsdb_cert"] == cert


def _network_ports(c: httpx.Client, planted: dict[str, str]) -> None:
    r = c.post("/networks", json={"network": {"name": "secret-net"}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]["id"]
    profile = {"password": planted["profile password"], "nested": {"token": "t" * 8}}
    body = {"network_id": net, "binding:profile": profile}
    r = c.post("/ports", json={"port": body})
    assert r.status_code == 201, r.text
    port = r.json()["port"]
    assert port["binding:profile"]["password"] == "******"
    for path in (f"/ports/{port['id']}", "/ports", f"/ports?network_id={net}"):
        assert c.get(path).status_code == 200
    r = c.put(f"/ports/{port['id']}", json={"port": {"name": "renamed"}})
    assert r.status_code == 200 and r.json()["port"]["binding:profile"]["nested"] == {
        "token": "******"
    }
    _cert, bundle, _line = _key_bundle()
    before = len(c.get("/ports").json()["ports"])
    key_profile = {"local_link_information": [{"hostname": "nic-x", "ovsdb_cert": bundle}]}
    r = c.post("/ports", json={"port": {"network_id": net, "binding:profile": key_profile}})
    assert r.status_code == 400, r.text
    assert "private key" in r.json()["NeutronError"]["message"]
    assert len(c.get("/ports").json()["ports"]) == before
    r = c.put(f"/ports/{port['id']}", json={"port": {"binding:profile": key_profile}})
    assert r.status_code == 400, r.text
    assert c.get(f"/ports/{port['id']}").json()["port"]["binding:profile"]["password"] == "******"


def _config_drive(server: Server, c: httpx.Client, planted: dict[str, str]) -> None:
    node = make_node(c, network_interface="fake", deploy_interface="fake")["uuid"]
    server.sqlite_exec("UPDATE nodes SET provision_state='available' WHERE uuid=?", node)
    provision(c, node, "active", configdrive=planted["configdrive"])
    shown = wait_for(c, node, "active")
    assert shown["instance_info"]["configdrive"] == "******"
    _read_node_every_way(c, node)


def test_no_secret_leaves_a_noauth_server(noauth: Server) -> None:
    names = ("url password", "bare url password", "redfish_password", "ipmi_password")
    planted = {n: _secret(n.replace(" ", "-")) for n in names}
    for name in ("port extra password", "profile password", "configdrive"):
        planted[name] = _secret(name.replace(" ", "-"))
    planted["bad input password"] = _secret("bad-input")
    planted["query password"] = _secret("query")
    planted["private key line"] = _key_bundle()[2]
    rec = Recorder(noauth)
    with rec.client() as c, rec.client(base="/network/v2.0") as net:
        redfish = _failing_redfish_nodes(c, planted)
        ipmi = make_node(
            c,
            driver="ipmi",
            driver_info={"ipmi_address": "127.0.0.1", "ipmi_password": planted["ipmi_password"]},
        )["uuid"]
        _bad_input(c, planted)
        node = _ports(c, planted)
        _private_key_as_ovsdb_cert(c, node, planted)
        _network_ports(net, planted)
        _config_drive(noauth, c, planted)
        time.sleep(1.5)  # a few power-sync passes retry the broken BMCs and log why
        for uuid in [*redfish, ipmi]:
            _read_node_every_way(c, uuid)
    assert "power sync of node" in noauth.log()  # the failing passes were logged
    assert_hidden(planted, rec)
    # The key line was not planted anywhere: the private key never got in.
    assert "PRIVATE KEY" not in noauth.log()


def _probe(c: httpx.Client, node: str, path: str, value: Any) -> tuple[int, str]:
    r = c.patch(f"/v1/nodes/{node}", json=[{"op": "test", "path": path, "value": value}])
    return r.status_code, r.text


def test_a_patch_test_answers_right_and_wrong_guesses_alike(basic: Server) -> None:
    planted = {"ipmi_password": _secret("ipmi"), "url password": _secret("url")}
    address = f"https://root:{planted['url password']}@bmc.example"
    rec = Recorder(basic)
    alice = ("alice", PASSWORDS["alice"])
    with rec.client(alice) as c:
        node = make_node(
            c, driver_info={"ipmi_password": planted["ipmi_password"], "redfish_address": address}
        )["uuid"]
        info = c.get(f"/v1/nodes/{node}").json()["driver_info"]
        guesses = [
            ("/driver_info/ipmi_password", planted["ipmi_password"], "wrong-guess"),
            ("/driver_info/redfish_address", address, "https://root:wrong@bmc.example"),
            (
                "/driver_info",
                {"ipmi_password": planted["ipmi_password"], "redfish_address": address},
                {"ipmi_password": "wrong", "redfish_address": address},
            ),
        ]
        for path, right, wrong in guesses:
            assert _probe(c, node, path, right) == _probe(c, node, path, wrong)
            assert _probe(c, node, path, right)[0] == 400
        # What a GET shows is what a test sees.
        assert _probe(c, node, "/driver_info", info)[0] == 200
        after = c.get(f"/v1/nodes/{node}").json()
    assert after["driver_info"] == info
    assert_hidden(planted, rec)


def test_no_secret_leaves_an_http_basic_server_for_any_role(basic: Server) -> None:
    names = ("url password", "bare url password", "redfish_password")
    planted = {n: _secret(n.replace(" ", "-")) for n in names}
    planted |= {"port extra password": _secret("extra"), "ipmi_password": _secret("ipmi")}
    rec = Recorder(basic)
    alice = ("alice", PASSWORDS["alice"])
    with rec.client(alice) as c:
        redfish = _failing_redfish_nodes(c, planted)  # owned by alice's project
        node = make_node(c, driver_info={"ipmi_password": planted["ipmi_password"]})["uuid"]
        port = make_port(c, node, extra={"password": planted["port extra password"]})["uuid"]
    for user in ("admin", "alice", "bob", "olga"):
        with rec.client((user, PASSWORDS[user])) as c:
            for uuid in [*redfish, node]:
                _read_node_every_way(c, uuid)
            for path in (f"/v1/ports/{port}", "/v1/ports/detail", f"/v1/nodes/{node}/ports"):
                c.get(path)
    with rec.client(("olga", PASSWORDS["olga"])) as c:
        shown = c.get(f"/v1/nodes/{node}").json()
        assert shown["driver_info"]["ipmi_password"] == "******"
        assert c.get(f"/v1/ports/{port}").json()["extra"]["password"] == "******"
    # The users' own passwords (and their Basic header) never reach the log either.
    login = {f"{u} login": p for u, p in PASSWORDS.items()}
    login |= {
        f"{u} basic": base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in PASSWORDS.items()
    }
    assert_hidden(planted | login, rec)


def test_the_nic_agent_logs_neither_its_password_nor_url_credentials(tmp_path: Path) -> None:
    """The agent's own log (debug level) while its server is unreachable: every retry
    is logged, never the password (from the environment) nor the one in the URL."""
    password, in_url = _secret("agent-password"), _secret("agent-url-password")
    closed = free_port()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'server = "http://nic-agent:{in_url}@127.0.0.1:{closed}"\n'
        'username = "nic-agent"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "heartbeat_interval = 0.2\n"
        '[nics.nic-secret]\novsdb = "unix:/nonexistent/db.sock"\n'
        'openflow = { br-int = "unix:/nonexistent/i.mgmt", br-phys = "unix:/nonexistent/p.mgmt" }\n'
    )
    log_path = tmp_path / "agent.log"
    cmd = [str(VENV_BIN / "metalnic"), "agent", "--config", str(config), "--log-level", "debug"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "METALNIC_AGENT_PASSWORD": password},
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and log_path.read_text().count("heartbeat failed") < 3:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log_path.read_text()
    assert text.count("heartbeat failed") >= 3, text  # it did log its failing calls
    for secret in (password, in_url):
        for form in _forms(secret):
            assert form not in text, f"{form!r} in the agent log:\n{text[:3000]}"
