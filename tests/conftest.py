"""Shared fixtures: real servers started as `metalnic serve` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, add_user, start_server

PASSWORDS = {
    "admin": "admin-secret-1",
    "alice": "alice-secret-2",  # member of project-a
    "bob": "bob-secret-3",  # member of project-b
    "olga": "olga-secret-4",  # observer
}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One noauth server for the API tests."""
    srv = start_server(tmp_path_factory.mktemp("noauth"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.toml"
    add_user(path, "admin", PASSWORDS["admin"], "admin", "ops")
    add_user(path, "alice", PASSWORDS["alice"], "member", "project-a")
    add_user(path, "bob", PASSWORDS["bob"], "member", "project-b")
    add_user(path, "olga", PASSWORDS["olga"], "observer", None)
    return path


@pytest.fixture(scope="session")
def basic_server(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[Server]:
    """A server with http_basic auth and the users above."""
    srv = start_server(
        tmp_path_factory.mktemp("basic"), "--auth", "http_basic", "--users-file", str(users_file)
    )
    srv.auth = ("admin", PASSWORDS["admin"])
    yield srv
    srv.stop()
