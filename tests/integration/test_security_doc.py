"""docs/security.md's checklist runs: its ```console blocks against a real HTTPS server.

The convention is ``tests/consoledoc.py``'s.  The platform checks (on the host
under test, on the NIC) are ``# not run`` blocks; metalnic's side runs here
against what a site that finished docs/multitenancy.md's set-up has: a
``metalnic serve`` over HTTPS (``http_basic``, a key of mode 0600), the users
``admin``, a tenant and the agent user ``rack1`` granted ``nic-1``, a node whose
BMC password is stored, its smart NIC port on ``nic-1`` and that NIC's agent
alive (a stand-in speaking the real agent contract).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.consoledoc import Shell, clean_env, run_document
from tests.support import (
    ROOT,
    VENV_BIN,
    Server,
    add_user,
    make_ca,
    make_server_cert,
    pem,
    require,
    start_server,
)

DOC = ROOT / "docs" / "security.md"
PASSWORDS = {"admin": "dcs-sec-admin-41", "rack1": "dcs-sec-agent-42", "tenant-a": "dcs-t-43"}
BMC_PASSWORD = "dcs-sec-bmc-44"


class Site:
    def __init__(self, tmp: Path) -> None:
        self.work = tmp / "work"
        self.work.mkdir()
        ca = make_ca("dcs-server-ca")
        self.ca_file = tmp / "ca.pem"
        self.ca_file.write_text(pem(ca[0]))
        cert, key = make_server_cert(ca)
        self.cert_file, self.key_file = tmp / "server.pem", tmp / "server-key.pem"
        self.cert_file.write_text(cert)
        self.key_file.write_text(key)
        self.key_file.chmod(0o600)
        self.users = tmp / "users.toml"
        add_user(self.users, "admin", PASSWORDS["admin"], "admin", None)
        add_user(self.users, "tenant-a", PASSWORDS["tenant-a"], "member", "project-a")
        add_user(self.users, "rack1", PASSWORDS["rack1"], "agent", None, ["nic-1"])
        for user in ("admin", "rack1"):
            (self.work / f"{user}.password").write_text(PASSWORDS[user] + "\n")
        self.server: Server = start_server(
            tmp / "state",
            "--auth", "http_basic", "--users-file", str(self.users),
            "--tls-cert-file", str(self.cert_file), "--tls-key-file", str(self.key_file),
            ca_file=self.ca_file,
        )  # fmt: skip
        self.server.auth = ("admin", PASSWORDS["admin"])
        env = {**os.environ, "SSL_CERT_FILE": str(self.ca_file)}
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_agent", "--url", self.server.url,
             "--host", "nic-1", "--auth", f"rack1:{PASSWORDS['rack1']}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with self.client() as c:
            r = c.post(
                "/v1/nodes",
                json={
                    "name": "node-1",
                    "driver": "fake-hardware",
                    "owner": "project-a",
                    "network_interface": "smartnic",
                    "driver_info": {"ipmi_password": BMC_PASSWORD},
                },
            )
            assert r.status_code == 201, r.text
            r = c.post(
                "/v1/ports",
                json={
                    "node_uuid": r.json()["uuid"],
                    "address": "52:54:00:83:01:01",
                    "is_smartnic": True,
                    "local_link_connection": {"hostname": "nic-1", "port_id": "pf0hpf"},
                },
            )
            assert r.status_code == 201, r.text
            deadline = time.monotonic() + 30
            while not any(a["alive"] for a in c.get("/network/v2.0/agents").json()["agents"]):
                assert time.monotonic() < deadline, "the stand-in agent never lived"
                time.sleep(0.2)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            auth=self.server.auth,
            verify=ssl.create_default_context(cafile=self.ca_file),
            headers={"X-OpenStack-Ironic-API-Version": "1.53"},
            timeout=30,
        )

    def env(self) -> dict[str, str]:
        return clean_env(
            VENV_BIN,
            HOME=str(self.work),
            METALNIC_URL=self.server.url,
            METALNIC_CACERT=str(self.ca_file),
            METALNIC_USERS_FILE=str(self.users),
            METALNIC_TLS_KEY_FILE=str(self.key_file),
        )

    def close(self) -> None:
        self.agent.terminate()
        self.agent.wait(timeout=10)
        self.server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    missing = [tool for tool in ("bash", "jq", "curl") if shutil.which(tool) is None]
    require(not missing, f"the checklist's tools {missing}")
    made = Site(tmp_path)
    yield made
    made.close()


def test_the_checklist_of_security_md_passes(site: Site) -> None:
    shell = Shell(site.work, site.env())
    try:
        found = run_document(DOC, shell)
    finally:
        shell.close()
    assert [b.not_run is not None for b in found] == [True, True, False, False]
    assert sum(len(b.commands) for b in found if b.not_run is None) >= 10
    assert BMC_PASSWORD not in site.server.log()
