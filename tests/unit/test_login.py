"""Failed logins: back-off per user and per address, the bounded hashing pool, and
agent grants in the users file.  Time is a fake clock; bcrypt is real (cost 4)."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path

import bcrypt
import pytest

from metalnic import auth
from metalnic.auth import HttpBasic, UserRecord
from metalnic.errors import InvalidInput, NotAuthenticated, Unavailable
from metalnic.login import Backoff, HashingPool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


class Checker(HttpBasic):
    """HttpBasic with a fake clock, counting its bcrypt checks."""

    def __init__(self, users_file: Path, clock: Clock) -> None:
        super().__init__(
            users_file, Backoff(free=3, clock=clock), Backoff(free=6, ceiling=30, clock=clock)
        )
        self.checks = 0

    def _bcrypt(self, password: bytes, hashed: bytes) -> bool:
        self.checks += 1
        return super()._bcrypt(password, hashed)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.toml"
    cheap = bcrypt.hashpw(b"alice-pw", bcrypt.gensalt(4)).decode()
    auth.save_users(path, {"alice": UserRecord(cheap, ("member",), "a")})
    return path


def checker(users_file: Path, clock: Clock) -> Checker:
    return Checker(users_file, clock)


def test_backoff_doubles_up_to_the_ceiling_and_is_forgotten() -> None:
    clock = Clock()
    b = Backoff(free=2, first=1.0, ceiling=8.0, forget_after=100.0, clock=clock)
    waits = []
    for _ in range(7):
        b.failed("k")
        waits.append(b.wait("k"))
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    clock.now += 8
    assert b.wait("k") == 0
    clock.now += 101  # quiet for long enough: the count starts again
    b.failed("k")
    assert b.wait("k") == 0
    assert b.wait("other") == 0


def test_backoff_memory_is_bounded() -> None:
    b = Backoff(free=0, max_keys=3, clock=Clock())
    for i in range(10):
        b.failed(f"k{i}")
    assert [b.wait(f"k{i}") > 0 for i in range(10)] == [False] * 7 + [True] * 3


def test_a_user_in_backoff_is_refused_without_bcrypt(users_file: Path) -> None:
    clock = Clock()
    c = checker(users_file, clock)
    for _ in range(3):
        with pytest.raises(NotAuthenticated, match="requires authentication"):
            c.authenticate(basic("alice", "nope"), "10.0.0.1")
    with pytest.raises(NotAuthenticated):
        c.authenticate(basic("alice", "nope"), "10.0.0.1")  # the 4th: back-off begins
    assert c.checks == 4
    # Refused at once, with no bcrypt: on the loop (cached) and in the pool alike,
    # even with the right password and from another address.
    with pytest.raises(NotAuthenticated, match="too many failed logins"):
        c.cached(basic("alice", "alice-pw"), "10.0.0.2")
    with pytest.raises(NotAuthenticated, match="retry in 1 s"):
        c.authenticate(basic("alice", "alice-pw"), "10.0.0.2")
    assert c.checks == 4
    clock.now += 1.5
    assert c.authenticate(basic("alice", "alice-pw"), "10.0.0.2").name == "alice"
    # Success cleared the user's count: three more failures are free again.
    for _ in range(3):
        with pytest.raises(NotAuthenticated, match="requires authentication"):
            c.authenticate(basic("alice", "nope"), "10.0.0.3")


def test_a_cached_good_login_is_never_locked_out(users_file: Path) -> None:
    clock = Clock()
    c = checker(users_file, clock)
    assert c.authenticate(basic("alice", "alice-pw"), "10.0.0.1").name == "alice"
    for _ in range(10):  # a flood against alice, from alice's own address
        with pytest.raises(NotAuthenticated):
            c.authenticate(basic("alice", "wrong"), "10.0.0.1")
    who = c.cached(basic("alice", "alice-pw"), "10.0.0.1")
    assert who is not None and who.name == "alice"


def test_an_address_backs_off_across_user_names(users_file: Path) -> None:
    clock = Clock()
    c = checker(users_file, clock)
    for i in range(7):  # unknown users: each a dummy bcrypt, all from one address
        with pytest.raises(NotAuthenticated):
            c.authenticate(basic(f"guess{i}", "x"), "10.9.9.9")
    checks = c.checks
    with pytest.raises(NotAuthenticated, match="too many failed logins"):
        c.authenticate(basic("guess-new", "x"), "10.9.9.9")
    assert c.checks == checks
    assert c.authenticate(basic("alice", "alice-pw"), "10.0.0.1").name == "alice"


def test_the_hashing_pool_is_bounded_and_separate() -> None:
    gate = threading.Event()
    pool = HashingPool(workers=1, max_pending=2)

    def slow() -> str:
        gate.wait(10)
        return threading.current_thread().name

    async def scenario() -> tuple[list[str], type[BaseException] | None]:
        jobs = [asyncio.ensure_future(pool.run(slow)) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused: type[BaseException] | None = None
        try:
            await pool.run(slow)  # a third waiter: refused at once
        except Unavailable as exc:
            refused = type(exc)
        gate.set()
        return list(await asyncio.gather(*jobs)), refused

    names, refused = asyncio.run(scenario())
    assert refused is Unavailable
    assert all(n.startswith("metalnic-bcrypt") for n in names)


def test_users_file_grants_nic_hosts_to_agents_only(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    auth.add_user(path, "rack1", "pw", ["agent"], None, ["nic1", "nic2", "nic1"])
    record = auth.load_users(path)["rack1"]
    assert record.nic_hosts == ("nic1", "nic2")
    assert record.principal("rack1").nic_hosts == frozenset({"nic1", "nic2"})
    with pytest.raises(InvalidInput, match="--nic-host is for agent users"):
        auth.add_user(path, "olga", "pw", ["observer"], None, ["nic1"])
    path.write_text(
        '[users.m]\npassword_hash = "x"\nroles = ["member"]\nproject = "p"\nnic_hosts = ["n"]\n'
    )
    with pytest.raises(InvalidInput, match="entry 'm' is invalid"):
        auth.load_users(path)
    path.write_text('[users.a]\npassword_hash = "x"\nroles = ["agent"]\nnic_hosts = "n"\n')
    with pytest.raises(InvalidInput):
        auth.load_users(path)
