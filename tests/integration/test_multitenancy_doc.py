"""docs/multitenancy.md runs: every ```console block, in order, against a real server.

The convention is in ``tests/consoledoc.py`` (and docs/development.md): ``$ ``
lines are commands, the lines under them output that must appear, ``# not
run`` blocks run elsewhere.  The commands run in one bash in a scratch
directory with the site settings the doc's "Before you start" table names,
pointed at what this test starts:

* ``metalnic serve`` with ``http_basic`` and a users file holding ``admin``
  (password in ``admin.password``); the doc adds its own users to that file;
* node-1's BMC: ``metalnic.lab.ipmi_bmc`` (real IPMI lanplus on loopback);
* node-2's BMC: sushy-tools' Redfish emulator (``metalnic.lab.redfish``);
* nic-2's identity files (a CA, the NIC's OVSDB certificate, an SSH key);
* for the two ``# not run`` agent blocks, stand-in agents (``tests/fake_agent.py``,
  the real agent contract over HTTP, no OVS) logged in as the doc's agent users.

Afterwards node-1's whole event log is checked against the power rule the doc
describes (``audit_smartnic_order``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bmc.redfish_emulator import RedfishEmulator, start_redfish_emulator
from tests.consoledoc import Shell, clean_env, run_document
from tests.integration.conductor_helpers import audit_smartnic_order
from tests.integration.test_ipmi_driver import free_udp_port, ipmi_ping
from tests.support import ROOT, VENV_BIN, Server, add_user, remote_llc, require, start_server

DOC = ROOT / "docs" / "multitenancy.md"
ENV = {"METALNIC_PERIODIC_INTERVAL": "0.5", "METALNIC_PORT_ACTIVE_TIMEOUT": "20"}
ADMIN_PASSWORD = "dcs-admin-6b1f0c"
IPMI_USER, IPMI_PASSWORD = "bmc-admin", "dcs-ipmi-3e9a"  # IPMI: at most 20 bytes


class Site:
    """What the doc's reader brings: a server, two BMCs, NIC identity files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.work = tmp, tmp / "work"
        self.work.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.users = tmp / "users.toml"
        add_user(self.users, "admin", ADMIN_PASSWORD, "admin", None)
        (self.work / "admin.password").write_text(ADMIN_PASSWORD + "\n")
        self.server: Server = start_server(
            tmp / "state", "--auth", "http_basic", "--users-file", str(self.users), env=ENV
        )
        self.server.auth = ("admin", ADMIN_PASSWORD)
        self.ipmi_port = free_udp_port()
        self._spawn(
            [sys.executable, "-m", "metalnic.lab.ipmi_bmc", "--port", str(self.ipmi_port),
             "--user", IPMI_USER, "--power-delay", "0.2"],
            "ipmi-bmc.log",
            METALNIC_BMC_PASSWORD=IPMI_PASSWORD,
        )  # fmt: skip
        (self.work / "ipmi.password").write_text(IPMI_PASSWORD + "\n")
        self.redfish: RedfishEmulator = start_redfish_emulator(tmp / "redfish")
        assert self.redfish.auth is not None
        (self.work / "redfish.password").write_text(self.redfish.auth[1] + "\n")
        llc = remote_llc("nic-2")
        (self.work / "nic-2-ssh.pub").write_text(llc["ssh_public_key"] + "\n")
        (self.work / "nic-2-ovsdb.pem").write_text(llc["ovsdb_cert"])
        (self.work / "nic-ca.pem").write_text(llc["ovsdb_ca_cert"])
        deadline = time.monotonic() + 30
        while not ipmi_ping(self.ipmi_port):
            assert time.monotonic() < deadline, "the IPMI BMC never answered"
            time.sleep(0.1)

    def env(self) -> dict[str, str]:
        assert self.redfish.auth is not None
        return clean_env(
            VENV_BIN,
            HOME=str(self.work),
            METALNIC_URL=self.server.url,
            METALNIC_USERS_FILE=str(self.users),
            IPMI_ADDRESS="127.0.0.1",
            IPMI_PORT=str(self.ipmi_port),
            IPMI_USER=IPMI_USER,
            REDFISH_URL=self.redfish.url,
            REDFISH_SYSTEM=self.redfish.system_path(0),
            REDFISH_USER=self.redfish.auth[0],
        )

    def _spawn(self, cmd: list[str], log: str, **env: str) -> None:
        with (self.tmp / log).open("ab") as out:
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **env},
                )  # fmt: skip
            )

    def agent(self, host: str, mode: str, user: str) -> None:
        """A stand-in for the doc's agent of ``host``, as the doc's agent ``user``."""
        password = (self.work / f"{user}.password").read_text().strip()
        self._spawn(
            [sys.executable, "-m", "tests.fake_agent", "--url", self.server.url,
             "--host", host, "--mode", mode, "--auth", f"{user}:{password}"],
            f"agent-{host}.log",
        )  # fmt: skip
        with httpx.Client(base_url=self.server.url, auth=self.server.auth, timeout=30) as c:
            deadline = time.monotonic() + 30
            while True:
                agents = c.get("/network/v2.0/agents").json()["agents"]
                if any(a["host"] == host and a["alive"] for a in agents):
                    return
                assert time.monotonic() < deadline, f"the stand-in agent for {host} never lived"
                time.sleep(0.2)

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)
        self.redfish.stop()
        self.server.stop()


# What the doc's commands use besides metalnic and openstack (Debian: jq, curl, openssl).
TOOLS = ("bash", "jq", "curl", "openssl")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    require(not missing, f"the doc's tools {missing}")
    made = Site(tmp_path)
    yield made
    made.close()


def test_every_command_of_multitenancy_md_works(site: Site) -> None:
    shell = Shell(site.work, site.env())
    try:
        found = run_document(
            DOC,
            shell,
            stand_ins={
                "stand-in agent for nic-1": lambda: site.agent("nic-1", "local", "nic-1-agent"),
                "stand-in remote agent for nic-2": lambda: site.agent("nic-2", "remote", "rack1"),
            },
        )
    finally:
        shell.close()
    not_run = [b for b in found if b.not_run is not None]
    assert len(not_run) <= 2, "keep the blocks that run elsewhere few"
    assert sum(len(b.commands) for b in found if b.not_run is None) >= 40
    with site.server.client() as c:
        events = c.get("/v1/nodes/node-1/history").json()["history"]
    counts = audit_smartnic_order(events)
    assert counts["bios_sessions"] >= 5 and counts["network"] >= 5, counts
    assert ADMIN_PASSWORD not in site.server.log() and IPMI_PASSWORD not in str(events)
