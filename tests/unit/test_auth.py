"""metalnic.auth: the users file, HTTP basic authentication and noauth.

bcrypt is slow on purpose; only the add_user tests pay for the default cost.
Everything else writes cost-4 hashes straight into the users file.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import bcrypt
import pytest

from metalnic import auth
from metalnic.auth import HttpBasic, NoAuth, Principal, UserRecord
from metalnic.errors import InvalidInput, NotAuthenticated


def cheap_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def bump_mtime(path: Path, seconds: int = 5) -> None:
    """Move the file's mtime on, as time passing would (timestamps can be coarse)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {pw: cheap_hash(pw) for pw in ("alice-pw", "alice-new", "admin-pw", "p:w:d", "ünï")}


@pytest.fixture
def users_file(tmp_path: Path, hashes: dict[str, str]) -> Path:
    path = tmp_path / "users.toml"
    auth.save_users(
        path,
        {
            "alice": UserRecord(hashes["alice-pw"], ("member",), "project-a"),
            "root": UserRecord(hashes["admin-pw"], ("admin", "observer"), "ops"),
            "colon": UserRecord(hashes["p:w:d"], ("observer",), None),
            "uni": UserRecord(hashes["ünï"], ("member",), "p"),
        },
    )
    return path


# --- the users file ------------------------------------------------------------------


def test_add_user_round_trip(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "sub" / "users.toml"
    bob = UserRecord(hashes["admin-pw"], ("observer",), None)
    auth.save_users(path, {"bob": bob})
    auth.add_user(path, "alice", "s3cret-Passw0rd", ["member", "observer"], "project-a")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "s3cret-Passw0rd" not in text
    users = auth.load_users(path)
    assert set(users) == {"alice", "bob"}
    assert users["bob"] == bob  # existing users are kept
    alice = users["alice"]
    assert alice.roles == ("member", "observer")
    assert alice.project == "project-a"
    assert alice.password_hash.startswith("$2")
    assert alice.password_hash in text
    assert bcrypt.checkpw(b"s3cret-Passw0rd", alice.password_hash.encode())
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))


@pytest.mark.parametrize(
    ("name", "password", "roles", "message"),
    [
        ("", "pw", ["admin"], "user name"),
        ("a:b", "pw", ["admin"], "user name"),
        ("alice", "pw", [], "Roles"),
        ("alice", "pw", ["root"], "Roles"),
        ("alice", "pw", ["admin", "superuser"], "Roles"),
        ("alice", "", ["admin"], "password"),
    ],
)
def test_add_user_rejects(
    tmp_path: Path, name: str, password: str, roles: list[str], message: str
) -> None:
    path = tmp_path / "users.toml"
    with pytest.raises(InvalidInput, match=message):
        auth.add_user(path, name, password, roles, None)
    assert not path.exists()


def test_add_user_rejects_overlong_password(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        auth.add_user(tmp_path / "users.toml", "alice", "x" * 73, ["admin"], None)


def test_save_and_load_round_trip(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "users.toml"
    users = {
        "zed": UserRecord(hashes["alice-pw"], ("observer",), None),
        "amy": UserRecord(hashes["admin-pw"], ("admin", "member"), "ops"),
    }
    auth.save_users(path, users)
    assert auth.load_users(path) == users
    text = path.read_text()
    assert text.index("amy") < text.index("zed")  # sorted, stable output
    assert text.count("project") == 1  # no project key for a user without one


def test_save_users_makes_the_file_private(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "users.toml"
    path.write_text("")
    path.chmod(0o644)
    auth.save_users(path, {"a": UserRecord(hashes["alice-pw"], ("admin",), None)})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_users_missing_file_is_empty(tmp_path: Path) -> None:
    assert auth.load_users(tmp_path / "nope.toml") == {}


@pytest.mark.parametrize("text", ["", "[other]\nx = 1\n", "[users]\n"])
def test_load_users_without_users_is_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    assert auth.load_users(path) == {}


@pytest.mark.parametrize(
    "text",
    [
        "[users\n",
        "[users.a]\npassword_hash = 'h'\nroles = ['root']\n",
        "[users.a]\nroles = ['admin']\n",
        "[users.a]\npassword_hash = 1\nroles = ['admin']\n",
        "[users.a]\npassword_hash = 'h'\nroles = 'admin'\n",
    ],
)
def test_load_users_rejects_invalid_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=str(path)):
        auth.load_users(path)


@pytest.mark.parametrize("text", ["[users]\nalice = 'x'\n", "users = 1\n"])
def test_load_users_rejects_entries_that_are_not_tables(tmp_path: Path, text: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput):
        auth.load_users(path)


# --- HTTP basic ----------------------------------------------------------------------


def test_right_password(users_file: Path) -> None:
    who = HttpBasic(users_file).authenticate(basic("alice", "alice-pw"))
    assert who == Principal("alice", frozenset({"member"}), "project-a")
    assert not who.is_admin


def test_admin_principal(users_file: Path) -> None:
    who = HttpBasic(users_file).authenticate(basic("root", "admin-pw"))
    assert who.roles == frozenset({"admin", "observer"})
    assert who.is_admin
    assert who.project == "ops"


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("alice", "wrong"),
        ("alice", "alice-pw "),
        ("alice", "ALICE-PW"),
        ("alice", ""),
        ("alice", "admin-pw"),  # another user's password
        ("nobody", "alice-pw"),
        ("", "alice-pw"),
        ("Alice", "alice-pw"),
    ],
)
def test_wrong_credentials(users_file: Path, name: str, password: str) -> None:
    with pytest.raises(NotAuthenticated) as info:
        HttpBasic(users_file).authenticate(basic(name, password))
    assert info.value.status == 401


def test_password_may_contain_colons_and_unicode(users_file: Path) -> None:
    checker = HttpBasic(users_file)
    assert checker.authenticate(basic("colon", "p:w:d")).name == "colon"
    assert checker.authenticate(basic("uni", "ünï")).project == "p"


def test_scheme_is_case_insensitive_and_whitespace_tolerated(users_file: Path) -> None:
    token = basic("alice", "alice-pw").split(" ", 1)[1]
    checker = HttpBasic(users_file)
    assert checker.authenticate("basic " + token).name == "alice"
    assert checker.authenticate("BASIC   " + token + "  ").name == "alice"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic ",
        "Bearer abc",
        "Digest username=alice",
        "alice:alice-pw",
        "Basic alice:alice-pw",  # not base64
        "Basic YWxpY2U6YWxpY2UtcHc",  # base64 without its padding
        "Basic " + base64.b64encode(b"alice").decode(),  # no ':'
        "Basic " + base64.b64encode(b"\xffalice:\xfe").decode(),  # not UTF-8
    ],
)
def test_malformed_header(users_file: Path, header: str | None) -> None:
    with pytest.raises(NotAuthenticated):
        HttpBasic(users_file).authenticate(header)


def test_cached_answers_only_after_bcrypt_accepted_the_password(users_file: Path) -> None:
    checker = HttpBasic(users_file)
    assert checker.cached(basic("alice", "alice-pw")) is None
    with pytest.raises(NotAuthenticated):
        checker.authenticate(basic("alice", "nope"))
    assert checker.cached(basic("alice", "nope")) is None
    checker.authenticate(basic("alice", "alice-pw"))
    who = checker.cached(basic("alice", "alice-pw"))
    assert who == Principal("alice", frozenset({"member"}), "project-a")
    assert checker.cached(basic("alice", "nope")) is None
    assert checker.cached(basic("nobody", "alice-pw")) is None


def test_success_is_cached_but_failures_are_not(users_file: Path) -> None:
    checker = HttpBasic(users_file)
    for _ in range(3):
        assert checker.authenticate(basic("alice", "alice-pw")).name == "alice"
        with pytest.raises(NotAuthenticated):
            checker.authenticate(basic("alice", "nope"))


def test_reload_after_password_change(users_file: Path, hashes: dict[str, str]) -> None:
    checker = HttpBasic(users_file)
    assert checker.authenticate(basic("alice", "alice-pw")).name == "alice"  # now cached
    users = auth.load_users(users_file)
    users["alice"] = UserRecord(hashes["alice-new"], ("admin",), None)
    auth.save_users(users_file, users)
    bump_mtime(users_file)

    with pytest.raises(NotAuthenticated):
        checker.authenticate(basic("alice", "alice-pw"))
    who = checker.authenticate(basic("alice", "alice-new"))
    assert who == Principal("alice", frozenset({"admin"}), None)


def test_reload_after_user_removed(users_file: Path) -> None:
    checker = HttpBasic(users_file)
    assert checker.authenticate(basic("alice", "alice-pw")).name == "alice"
    users = auth.load_users(users_file)
    del users["alice"]
    auth.save_users(users_file, users)
    with pytest.raises(NotAuthenticated):
        checker.authenticate(basic("alice", "alice-pw"))
    assert checker.authenticate(basic("root", "admin-pw")).is_admin


def test_users_file_deleted_and_created_again(users_file: Path, hashes: dict[str, str]) -> None:
    checker = HttpBasic(users_file)
    assert checker.authenticate(basic("alice", "alice-pw")).name == "alice"
    users_file.unlink()
    with pytest.raises(NotAuthenticated):
        checker.authenticate(basic("alice", "alice-pw"))
    auth.save_users(users_file, {"alice": UserRecord(hashes["alice-pw"], ("observer",), None)})
    assert checker.authenticate(basic("alice", "alice-pw")).roles == frozenset({"observer"})


def test_users_file_that_does_not_exist_yet(tmp_path: Path, hashes: dict[str, str]) -> None:
    path = tmp_path / "users.toml"
    checker = HttpBasic(path)
    with pytest.raises(NotAuthenticated):
        checker.authenticate(basic("alice", "alice-pw"))
    auth.save_users(path, {"alice": UserRecord(hashes["alice-pw"], ("member",), "a")})
    assert checker.authenticate(basic("alice", "alice-pw")).project == "a"


def test_reload_after_same_size_change_within_one_timestamp(
    users_file: Path, hashes: dict[str, str]
) -> None:
    checker = HttpBasic(users_file)
    assert checker.authenticate(basic("alice", "alice-pw")).name == "alice"
    before = users_file.stat()
    users = auth.load_users(users_file)
    users["alice"] = UserRecord(hashes["alice-new"], ("member",), "project-a")
    auth.save_users(users_file, users)
    os.utime(users_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # same timestamp
    assert users_file.stat().st_size == before.st_size

    with pytest.raises(NotAuthenticated):
        checker.authenticate(basic("alice", "alice-pw"))


def test_overlong_password_is_not_authenticated(users_file: Path) -> None:
    with pytest.raises(NotAuthenticated):
        HttpBasic(users_file).authenticate(basic("alice", "a" * 73))


def test_overlong_password_for_unknown_user(users_file: Path) -> None:
    with pytest.raises(NotAuthenticated):
        HttpBasic(users_file).authenticate(basic("nobody", "a" * 73))


# --- noauth and the factory ------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Basic !!!", basic("alice", "wrong")])
def test_noauth_everyone_is_admin(header: str | None) -> None:
    who = NoAuth().authenticate(header)
    assert who == auth.NOAUTH_PRINCIPAL
    assert who.is_admin
    assert who.project is None


def test_make_authenticator_noauth() -> None:
    checker = auth.make_authenticator("noauth", None)
    assert isinstance(checker, NoAuth)
    assert checker.strategy == "noauth"


def test_make_authenticator_http_basic(users_file: Path) -> None:
    checker = auth.make_authenticator("http_basic", users_file)
    assert isinstance(checker, HttpBasic)
    assert checker.strategy == "http_basic"
    assert checker.authenticate(basic("alice", "alice-pw")).name == "alice"


def test_make_authenticator_needs_a_users_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--users-file"):
        auth.make_authenticator("http_basic", None)
    with pytest.raises(InvalidInput, match="does not exist"):
        auth.make_authenticator("http_basic", tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("roles", "is_admin"),
    [({"admin"}, True), ({"admin", "member"}, True), ({"member"}, False), (set(), False)],
)
def test_principal_is_admin(roles: set[str], is_admin: bool) -> None:
    assert Principal("x", frozenset(roles), None).is_admin is is_admin
