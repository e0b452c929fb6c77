"""Who is calling: the users file, HTTP basic authentication, and principals.

Two strategies, chosen at start-up:

* ``noauth`` — every caller is an admin (development only);
* ``http_basic`` — users from a TOML file, each with a bcrypt hash, roles
  (``admin``, ``member``, ``observer``) and a project.

bcrypt is slow on purpose, so a successful check is remembered for the life
of the process as an HMAC of the password under a random per-process key;
failed checks are never cached.  Neither passwords nor hashes are logged or
returned anywhere.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import secrets
import tempfile
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import bcrypt
import tomli_w

from metalnic.errors import InvalidInput, NotAuthenticated
from metalnic.login import Backoff

ROLES = ("admin", "member", "observer", "agent")
REALM = "metalnic"
# bcrypt looks at no more than 72 bytes of a password (bcrypt >= 5 refuses more).
MAX_PASSWORD_BYTES = 72


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    project: str | None
    # NIC hosts the users file grants this agent user (the API's grants add to these).
    nic_hosts: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


NOAUTH_PRINCIPAL = Principal("noauth", frozenset({"admin"}), None)


@dataclass(frozen=True)
class UserRecord:
    password_hash: str
    roles: tuple[str, ...]
    project: str | None
    nic_hosts: tuple[str, ...] = ()

    def principal(self, name: str) -> Principal:
        return Principal(name, frozenset(self.roles), self.project, frozenset(self.nic_hosts))


class Authenticator(Protocol):
    strategy: str

    def cached(self, authorization: str | None, source: str | None = None) -> Principal | None:
        """The caller if that needs no slow work (no bcrypt), else None; raises
        NotAuthenticated when the answer is no without slow work (a back-off)."""
        ...

    def authenticate(self, authorization: str | None, source: str | None = None) -> Principal:
        """The caller, doing whatever work it takes; raises NotAuthenticated.
        ``source``: the client's address (failed logins back off per source too)."""
        ...

    def user(self, name: str) -> Principal | None:
        """What user ``name`` would be once authenticated; None if unknown."""
        ...


class NoAuth:
    strategy = "noauth"

    def cached(self, authorization: str | None, source: str | None = None) -> Principal | None:
        return NOAUTH_PRINCIPAL

    def authenticate(self, authorization: str | None, source: str | None = None) -> Principal:
        return NOAUTH_PRINCIPAL

    def user(self, name: str) -> Principal | None:
        return None  # noauth has no users


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def load_users(path: Path) -> dict[str, UserRecord]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"Users file {path} is not valid TOML: {exc}") from None
    table = data.get("users", {})
    if not isinstance(table, dict):
        raise InvalidInput(f"Users file {path}: 'users' must be a table of users.")
    users: dict[str, UserRecord] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise InvalidInput(f"Users file {path}: entry {name!r} must be a table.")
        roles = entry.get("roles", ())
        project = entry.get("project")
        nic_hosts = entry.get("nic_hosts", [])
        if (
            not isinstance(roles, list)
            or not roles
            or any(r not in ROLES for r in roles)
            or not isinstance(entry.get("password_hash"), str)
            or not (project is None or isinstance(project, str))
            or ("member" in roles and not project)
            or not _valid_nic_hosts(nic_hosts, roles)
        ):
            raise InvalidInput(f"Users file {path}: entry {name!r} is invalid.")
        users[name] = UserRecord(entry["password_hash"], tuple(roles), project, tuple(nic_hosts))
    return users


def save_users(path: Path, users: dict[str, UserRecord]) -> None:
    doc = {
        "users": {
            name: {
                "password_hash": rec.password_hash,
                "roles": list(rec.roles),
                **({"project": rec.project} if rec.project else {}),
                **({"nic_hosts": list(rec.nic_hosts)} if rec.nic_hosts else {}),
            }
            for name, rec in sorted(users.items())
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates a new file readable by the owner only; the rename makes
    # the switch atomic for a server that is reading the file meanwhile.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            tomli_w.dump(doc, fh)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _valid_nic_hosts(nic_hosts: object, roles: Iterable[str]) -> bool:
    """``nic_hosts``: a list of distinct non-empty names, only on an agent user."""
    if not isinstance(nic_hosts, list):
        return False
    if nic_hosts and "agent" not in roles:
        return False
    return len(set(nic_hosts)) == len(nic_hosts) and all(
        isinstance(h, str) and 0 < len(h) <= 255 for h in nic_hosts
    )


def add_user(
    path: Path,
    name: str,
    password: str,
    roles: Iterable[str],
    project: str | None,
    nic_hosts: Iterable[str] = (),
) -> None:
    roles = tuple(roles)
    nic_hosts = tuple(dict.fromkeys(nic_hosts))
    if not name or ":" in name:
        raise InvalidInput("A user name must be non-empty and contain no ':'.")
    if not roles or any(r not in ROLES for r in roles):
        raise InvalidInput(f"Roles must be chosen from {', '.join(ROLES)}.")
    if not password:
        raise InvalidInput("The password must not be empty.")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"The password must not be longer than {MAX_PASSWORD_BYTES} bytes.")
    if "member" in roles and not project:
        raise InvalidInput("A member needs a project (--project): it manages that project's nodes.")
    if not _valid_nic_hosts(list(nic_hosts), roles):
        raise InvalidInput("--nic-host is for agent users: the NIC hosts that agent may serve.")
    users = load_users(path)
    users[name] = UserRecord(hash_password(password), roles, project, nic_hosts)
    save_users(path, users)


class HttpBasic:
    """HTTP basic authentication against a users file, reloaded when it changes."""

    strategy = "http_basic"

    def __init__(
        self, users_file: Path, users: Backoff | None = None, sources: Backoff | None = None
    ) -> None:
        self._path = users_file
        # Failed logins back off per user name and per client address; an address
        # may be a NAT or a proxy in front of many users: it gets more slack.
        self.by_user = users or Backoff(free=5)
        self.by_source = sources or Backoff(free=20)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, UserRecord] = {}
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, bytes], str] = {}
        self._refresh()

    def _refresh(self) -> None:
        try:
            st = self._path.stat()
            # The inode changes on every save (atomic rename), even when the
            # size and a coarse timestamp do not.
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            self._users = load_users(self._path)
            self._verified.clear()
            self._stamp = stamp

    def _known(self, name: str, password: str, user: UserRecord) -> tuple[bytes, bool]:
        """The cache key of this password, and whether bcrypt already accepted it."""
        tag = hmac.new(self._key, password.encode(), hashlib.sha256).digest()
        return tag, self._verified.get((name, tag)) == user.password_hash

    def user(self, name: str) -> Principal | None:
        self._refresh()
        record = self._users.get(name)
        return record.principal(name) if record is not None else None

    def cached(self, authorization: str | None, source: str | None = None) -> Principal | None:
        name, password = _parse_basic(authorization)
        self._refresh()
        user = self._users.get(name)
        if user is not None and len(password.encode()) <= MAX_PASSWORD_BYTES:
            _tag, known = self._known(name, password, user)
            if known:
                return user.principal(name)  # never backed off: bcrypt accepted it
        self._refuse_if_backing_off(name, source)
        return None  # authenticate() decides, taking as long as a bcrypt check

    def authenticate(self, authorization: str | None, source: str | None = None) -> Principal:
        name, password = _parse_basic(authorization)
        self._refresh()
        user = self._users.get(name)
        tag = b""
        if user is not None and len(password.encode()) <= MAX_PASSWORD_BYTES:
            tag, known = self._known(name, password, user)
            if known:
                return user.principal(name)
        self._refuse_if_backing_off(name, source)
        if user is None or len(password.encode()) > MAX_PASSWORD_BYTES:
            # Spend the same time as a wrong password: no user enumeration.
            self._bcrypt(b"x", _dummy_hash())
            ok = False
        else:
            ok = self._bcrypt(password.encode(), user.password_hash.encode())
        if not ok or user is None:
            self.by_user.failed(name)
            if source:
                self.by_source.failed(source)
            raise NotAuthenticated("The request you have made requires authentication.")
        self._verified[(name, tag)] = user.password_hash
        self.by_user.succeeded(name)
        return user.principal(name)

    @staticmethod
    def _bcrypt(password: bytes, hashed: bytes) -> bool:
        return bcrypt.checkpw(password, hashed)

    def _refuse_if_backing_off(self, name: str, source: str | None) -> None:
        wait = max(self.by_user.wait(name), self.by_source.wait(source) if source else 0.0)
        if wait > 0:
            raise NotAuthenticated(
                "Authentication refused: too many failed logins for this user or address; "
                f"retry in {max(1, round(wait))} s."
            )


@functools.cache
def _dummy_hash() -> bytes:
    """A hash at the default cost, made once, for checks of unknown users."""
    return bcrypt.hashpw(b"metalnic-dummy", bcrypt.gensalt())


def _parse_basic(authorization: str | None) -> tuple[str, str]:
    if not authorization or not authorization.lower().startswith("basic "):
        raise NotAuthenticated("The request you have made requires authentication.")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("Malformed HTTP basic credentials.") from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise NotAuthenticated("Malformed HTTP basic credentials.")
    return name, password


def make_authenticator(
    strategy: str,
    users_file: Path | None,
    user_failures: int = 5,
    source_failures: int = 20,
    backoff_max: float = 60.0,
) -> Authenticator:
    """``*_failures``: failed logins allowed before each back-off begins."""
    if strategy == "noauth":
        return NoAuth()
    if users_file is None:
        raise InvalidInput("--auth http_basic needs --users-file.")
    if not users_file.exists():
        raise InvalidInput(
            f"Users file {users_file} does not exist; create it with 'metalnic users add'."
        )
    return HttpBasic(
        users_file,
        Backoff(free=user_failures, ceiling=backoff_max),
        Backoff(free=source_failures, ceiling=backoff_max),
    )
