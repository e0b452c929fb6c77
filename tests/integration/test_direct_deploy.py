"""The direct deploy interface end to end: a real ramdisk agent process writes the
image it downloads over HTTP, and the conductor checks what was written."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.integration.conductor_helpers import (
    audit_smartnic_order,
    history,
    provision,
    wait_for,
)
from tests.integration.helpers import SMART_LLC, make_node, make_port
from tests.integration.test_conductor import FAST
from tests.support import VENV_BIN, Server, start_server

AGENT_STATES = ("clean wait", "wait call-back")
CONFIGDRIVE = {
    "meta_data": {"uuid": "instance-1", "hostname": "web-1"},
    "network_data": {
        "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": "52:54:00:aa:bb:cc"}],
        "networks": [
            {
                "id": "net0",
                "link": "port0",
                "type": "ipv4",
                "ip_address": "10.50.0.7",
                "netmask": "255.255.255.0",
            }
        ],
    },
    "user_data": "#cloud-config\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("direct"), env=FAST)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    root = tmp_path_factory.mktemp("images")
    image = b"METALNIC-IMAGE" + bytes(range(256)) * 4096
    (root / "disk.img").write_bytes(image)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/disk.img", image
    httpd.shutdown()
    httpd.server_close()


class HostSimulator:
    """Boots the ramdisk agent while the node waits for it, like a host PXE-booting."""

    def __init__(
        self, server: Server, node: str, mac: str, disk: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.server, self.node, self.mac, self.disk, self.args = server, node, mac, disk, args
        self.boots = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._agent: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HostSimulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._kill()

    def _kill(self) -> None:
        if self._agent is not None:
            self._agent.terminate()
            self._agent.wait(timeout=10)
            self._agent = None

    def _loop(self) -> None:
        # Each ramdisk boot is in the node's event log: a new one means the host
        # was PXE-booted again, so the agent is (re)started.
        booted = 0
        with httpx.Client(base_url=self.server.url, timeout=5) as c:
            while not self._stop.wait(0.1):
                state = c.get(f"/v1/nodes/{self.node}").json()["provision_state"]
                boots = sum(
                    e["event"].startswith("waiting for the ramdisk agent")
                    for e in c.get(f"/v1/nodes/{self.node}/history").json()["history"]
                )
                if state in AGENT_STATES and boots != booted:
                    self._kill()
                    booted = boots
                    self.boots += 1
                    self._agent = subprocess.Popen(
                        [
                            str(VENV_BIN / "metalnic-ramdisk"),
                            "--api-url",
                            self.server.url,
                            "--mac",
                            self.mac,
                            "--disk",
                            str(self.disk),
                            "--interval",
                            "0.2",
                            *self.args,
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                elif state not in (*AGENT_STATES, "deploying", "cleaning"):
                    self._kill()  # the conductor is done with the ramdisk


def direct_node(c: httpx.Client, image_url: str, checksum: str) -> tuple[str, str]:
    node = make_node(
        c,
        network_interface="fake",
        deploy_interface="direct",
        instance_info={"image_source": image_url, "image_os_hash_value": checksum},
    )
    port = make_port(c, node["uuid"], is_smartnic=True, local_link_connection=SMART_LLC)
    return str(node["uuid"]), str(port["address"])


def test_direct_deploy_writes_and_verifies_the_image(
    server: Server, images: tuple[str, bytes], tmp_path: Path
) -> None:
    url, image = images
    disk = tmp_path / "disk"
    disk.write_bytes(b"OLD-CONTENT" * 200_000)
    drive = tmp_path / "disk.config-2"
    with server.client() as c:
        node, mac = direct_node(c, url, hashlib.sha256(image).hexdigest())
        with HostSimulator(server, node, mac, disk) as host:
            provision(c, node, "manage")
            wait_for(c, node, "manageable")
            provision(c, node, "provide")  # cleaning runs through the agent too
            wait_for(c, node, "available", timeout=60)
            assert disk.read_bytes()[: 1 << 20] == b"\0" * (1 << 20)
            provision(c, node, "active", configdrive=CONFIGDRIVE)
            active = wait_for(c, node, "active", timeout=60)
            assert host.boots == 2
            assert active["last_error"] is None
            assert active["instance_info"]["configdrive"] == "******"  # never shown
            assert disk.read_bytes()[: len(image)] == image
            assert json.loads(drive.read_text()) == CONFIGDRIVE
            provision(c, node, "deleted")  # undeploy, then automated cleaning by the agent
            cleaned = wait_for(c, node, "available", timeout=60)
            assert host.boots == 3
            assert "configdrive" not in cleaned["instance_info"]
        events = history(c, node)
    assert cleaned["power_state"] == "power off"
    assert disk.read_bytes()[: 1 << 20] == b"\0" * (1 << 20)
    assert drive.read_bytes() == b""  # cleaning empties the config drive too
    texts = [e["event"] for e in events]
    assert "image written and its checksum verified" in texts
    assert texts.count("disk metadata erased by the ramdisk agent") == 2
    counts = audit_smartnic_order(events)
    # provide: 2, deploy: 2 + 2, undeploy: 2, cleaning: 2; boots: 3 ramdisks + the disk
    assert counts["network"] == 10 and counts["boots"] == 4


def test_checksum_mismatch_fails_the_deploy(
    server: Server, images: tuple[str, bytes], tmp_path: Path
) -> None:
    url, _ = images
    with server.client() as c:
        node, mac = direct_node(c, url, "0" * 64)
        conductor_skip_clean(server, node)
        with HostSimulator(server, node, mac, tmp_path / "disk"):
            provision(c, node, "active")
            failed = wait_for(c, node, "deploy failed", timeout=60)
    assert "checksum mismatch" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert failed["reservation"] is None


def test_agent_never_calling_back_times_out(server: Server, images: tuple[str, bytes]) -> None:
    url, image = images
    with server.client() as c:
        node, _mac = direct_node(c, url, hashlib.sha256(image).hexdigest())
        conductor_skip_clean(server, node)
        provision(c, node, "active")
        wait_for(c, node, "wait call-back")
        failed = wait_for(c, node, "deploy failed", timeout=30)
        events = history(c, node)
    assert "never called back" in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert events[-1]["event"] == "power off (BMC confirmed)"


def test_heartbeat_needs_the_agent_token(server: Server, images: tuple[str, bytes]) -> None:
    url, image = images
    with server.client() as c:
        node, mac = direct_node(c, url, hashlib.sha256(image).hexdigest())
        conductor_skip_clean(server, node)
        provision(c, node, "active")
        wait_for(c, node, "wait call-back")
        forged = c.post(
            f"/v1/heartbeat/{node}",
            json={"callback_url": "http://127.0.0.1:9", "agent_token": "guess"},
        )
        assert forged.status_code == 401
        for bad in ("http://127.0.0.1,file.driver=file:9/", "http://{{ x }}:9/", "http://h:0/"):
            r = c.post(f"/v1/heartbeat/{node}", json={"callback_url": bad, "agent_token": "g"})
            assert r.status_code == 400 and "callback_url" in r.text, (bad, r.text)
        looked = c.get("/v1/lookup", params={"addresses": mac}).json()
        token = looked["config"]["agent_token"]
        shown = c.get(f"/v1/nodes/{node}").json()
        assert shown["driver_internal_info"]["agent_token"] == "******"  # never shown
        again = c.get("/v1/lookup", params={"addresses": mac}).json()
        assert "agent_token" not in again["config"]  # handed out once
        assert c.get("/v1/nodes/" + node).json()["provision_state"] == "wait call-back"
        assert token
        r = c.put(f"/v1/nodes/{node}/states/provision", json={"target": "abort"})
        assert r.status_code == 202
        aborted = wait_for(c, node, "deploy failed")
    assert "Aborted" in aborted["last_error"]


def conductor_skip_clean(server: Server, node: str) -> None:
    """Put a fresh node straight into available (these tests are about deploying)."""
    server.sqlite_exec("UPDATE nodes SET provision_state='available' WHERE uuid=?", node)


@pytest.mark.parametrize(
    ("target", "drive", "message"),
    [
        ("active", {"network_data": {}, "secrets": 1}, "Unknown configdrive key(s): secrets"),
        ("active", {"meta_data": "x"}, "configdrive meta_data must be an object"),
        ("active", 42, "configdrive should be a valid dictionary or a valid string"),
        ("manage", {"meta_data": {}}, "configdrive is accepted only with the active"),
    ],
)
def test_bad_configdrive_is_refused_and_nothing_moves(
    server: Server, images: tuple[str, bytes], target: str, drive: object, message: str
) -> None:
    url, image = images
    with server.client() as c:
        node, _mac = direct_node(c, url, hashlib.sha256(image).hexdigest())
        if target == "active":
            conductor_skip_clean(server, node)
        before = c.get(f"/v1/nodes/{node}").json()
        r = c.put(
            f"/v1/nodes/{node}/states/provision", json={"target": target, "configdrive": drive}
        )
        assert r.status_code == 400, r.text
        assert message in json.loads(r.json()["error_message"])["faultstring"]
        after = c.get(f"/v1/nodes/{node}").json()
    assert after["provision_state"] == before["provision_state"]
    assert after["instance_info"] == before["instance_info"]
    assert after["reservation"] is None
