"""Failed logins do not starve good ones, through a real server.

A flood of wrong passwords (each a real bcrypt check) runs while a logged-in
client asks for its nodes: the logged-in request is answered while the flood's
checks are still queued — password checks have their own bounded pool, the
routes keep theirs.  Back-off: after a few failures a user's logins that need
bcrypt are refused at once, but its working (cached) login is not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import H153, Server, add_user, start_server

ADMIN = ("admin", "admin-flood-1")
ALICE = ("alice", "alice-flood-2")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("flood")
    users = tmp / "users.toml"
    add_user(users, *ADMIN, "admin", "ops")
    add_user(users, *ALICE, "member", "project-a")
    # Three failures per user name, but no back-off per address: the flood below uses
    # a new user name per request, so every one of its requests costs a bcrypt check.
    srv = start_server(
        tmp / "state",
        "--auth",
        "http_basic",
        "--users-file",
        str(users),
        env={"METALNIC_LOGIN_USER_FAILURES": "3", "METALNIC_LOGIN_SOURCE_FAILURES": "100000"},
    )
    srv.auth = ADMIN
    yield srv
    srv.stop()


def test_a_logged_in_request_is_served_during_a_flood(server: Server) -> None:
    with httpx.Client(base_url=server.url, auth=ADMIN, headers=H153, timeout=120) as good:
        assert good.get("/v1/nodes").status_code == 200  # bcrypt once: now cached
        done: list[int] = []  # flood answers that needed bcrypt (401), in completion order
        lock = threading.Lock()

        def flood(i: int) -> int:
            r = httpx.get(
                server.url + "/v1/nodes", auth=(f"guess-{i}", "wrong"), headers=H153, timeout=120
            )
            if r.status_code == 401:
                with lock:
                    done.append(i)
            return r.status_code

        with ThreadPoolExecutor(40) as pool:
            answers = [pool.submit(flood, i) for i in range(40)]
            time.sleep(0.5)  # the flood's checks are queued by now
            r = good.get("/v1/nodes")
            with lock:
                finished_before = len(done)
            codes = [a.result() for a in answers]
    assert r.status_code == 200, r.text
    # Excess checks are refused at once (503), never a 500; the rest were checked (401).
    assert set(codes) <= {401, 503}, codes
    checked = codes.count(401)
    assert checked >= 2
    # Served while bcrypt still had flood checks to do — not after the flood.
    assert finished_before < checked, (finished_before, checked)


def test_backoff_refuses_fast_but_keeps_the_good_login(server: Server) -> None:
    with httpx.Client(base_url=server.url, auth=ALICE, headers=H153, timeout=60) as alice:
        assert alice.get("/v1/nodes").status_code == 200  # alice's working login
        messages = []
        for _ in range(6):
            r = httpx.get(server.url + "/v1/nodes", auth=("alice", "guess"), headers=H153)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
            messages.append(r.text)
        assert not any("too many failed logins" in m for m in messages[:3]), messages
        assert all("too many failed logins" in m for m in messages[4:]), messages
        # Alice's cached login still works; a new right password waits out the back-off.
        assert alice.get("/v1/nodes").status_code == 200
        r = httpx.get(server.url + "/v1/nodes", auth=("alice", "guess"), headers=H153)
        assert r.status_code == 401


def test_plain_http_basic_on_loopback_does_not_warn(server: Server) -> None:
    assert "in the clear" not in server.log()
