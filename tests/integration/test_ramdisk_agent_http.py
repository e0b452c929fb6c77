"""The ramdisk agent's image download over the standard library's HTTP client (it left
httpx for the ramdisk built from Debian's Python): success, HTTP errors and an
unreachable server each end the way the conductor expects."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from metalnic.baremetal.drivers.base import DriverError
from metalnic.baremetal.drivers.deploy import agent_client
from metalnic.lab.netns import free_port
from metalnic.ramdisk import agent

pytestmark = pytest.mark.integration
IMAGE = bytes(range(256)) * 5000  # 1.25 MB: more than one CHUNK


class _Images(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/disk.img":
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _params(url: str, checksum: str | None = None) -> dict[str, Any]:
    value = checksum or hashlib.sha256(IMAGE).hexdigest()
    return {"image_info": {"urls": [url], "os_hash_value": value}}


def test_image_is_written_verified_and_the_config_drive_follows(base: str, tmp_path: Path) -> None:
    storage = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    params = _params(f"{base}/disk.img") | {"configdrive": {"meta_data": {"hostname": "h"}}}
    result = agent.prepare_image(storage, params)
    assert result == {"os_hash_algo": "sha256", "os_hash_value": hashlib.sha256(IMAGE).hexdigest()}
    assert storage.disk.read_bytes() == IMAGE
    assert json.loads(storage.config_drive.read_text()) == {"meta_data": {"hostname": "h"}}


@pytest.mark.parametrize(
    ("path", "checksum", "error"),
    [
        ("/missing.img", None, "image download failed: HTTP 404"),
        ("/disk.img", "0" * 64, "image checksum mismatch"),
    ],
)
def test_http_errors_and_bad_checksums_fail_the_command(
    base: str, tmp_path: Path, path: str, checksum: str | None, error: str
) -> None:
    storage = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    with pytest.raises(agent.CommandFailed, match=error):
        agent.prepare_image(storage, _params(base + path, checksum))


def test_an_unreachable_image_server_fails_the_command(tmp_path: Path) -> None:
    storage = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    url = f"http://127.0.0.1:{free_port()}/disk.img"
    with pytest.raises(agent.CommandFailed, match="image download failed: .*refused"):
        agent.prepare_image(storage, _params(url))


def test_api_calls_return_the_status_of_refusals_too(base: str) -> None:
    status, body = agent._call("GET", f"{base}/v1/lookup?addresses=x")
    assert status == 404 and body


class _Api(BaseHTTPRequestHandler):
    """A bare-metal API that looks the ramdisk up, accepts two heartbeats and then
    refuses its token (as the conductor does once the ramdisk's step is done)."""

    beats = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(200, {"node": {"uuid": "n-1"}, "config": {"agent_token": "t-1"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).beats += 1
        if type(self).beats <= 2:
            self._answer(202, {})
        else:
            self._answer(401, {"error_message": "Invalid or missing agent_token."})


def test_a_withdrawn_token_after_acceptance_is_the_end_of_the_step_not_a_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop itself against a real HTTP API: lookup, heartbeats accepted, then 401s —
    said once, as the end of the ramdisk's work (the conductor withdrew its token)."""
    api = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    listen, stop = f"127.0.0.1:{free_port()}", threading.Event()
    caplog.set_level("INFO", logger=agent.log.name)
    storage = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    loop = threading.Thread(
        target=agent.run,
        args=(f"http://127.0.0.1:{api.server_address[1]}", ["52:54:00:00:00:01"], storage),
        kwargs={"listen": listen, "advertise": None, "interval": 0.02, "stop": stop},
    )
    loop.start()
    deadline = time.monotonic() + 10
    while _Api.beats < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    loop.join(5)
    api.shutdown()
    said = [r.getMessage() for r in caplog.records if r.name == agent.log.name]
    assert said[:2] == [
        "looked up node n-1",
        f"heartbeat accepted for node n-1 (callback http://{listen})",
    ], said
    assert said.count("done: the conductor withdrew this ramdisk's token") == 1, said
    assert not [m for m in said if m.startswith("heartbeat refused")], said
    assert not loop.is_alive()


def test_the_agent_runs_only_commands_that_carry_its_own_token(tmp_path: Path) -> None:
    """Another ramdisk may heartbeat this one's address as its callback URL: the
    conductor then sends that node's commands here, with that node's token. Only this
    ramdisk's token (from its lookup) is obeyed; before the lookup, nothing is."""
    api = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    _Api.beats = 0
    port = free_port()
    stop = threading.Event()
    storage = agent.Storage(tmp_path / "disk", tmp_path / "drive")
    (tmp_path / "disk").write_bytes(b"\x01" * (2 << 20))
    loop = threading.Thread(
        target=agent.run,
        args=(f"http://127.0.0.1:{api.server_address[1]}", ["52:54:00:00:00:02"], storage),
        kwargs={"listen": f"127.0.0.1:{port}", "advertise": None, "interval": 0.05, "stop": stop},
    )
    loop.start()
    erase = "clean.execute_clean_step"
    step = {"step": {"interface": "deploy", "step": "erase_devices_metadata"}}
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while _Api.beats < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        for wrong in ("t-other-node", ""):
            with pytest.raises(DriverError, match="HTTP 401"):
                agent_client.run_command(url, erase, step, wrong)
        assert (tmp_path / "disk").read_bytes()[:4] == b"\x01" * 4  # nothing ran
        agent_client.run_command(url, erase, step, "t-1")  # its own token: obeyed
        assert (tmp_path / "disk").read_bytes()[: 1 << 20] == b"\0" * (1 << 20)
    finally:
        stop.set()
        loop.join(5)
        api.shutdown()
