"""What every agent's configuration file (TOML) has in common: its server and timing.

    server = "https://metalnic.example:6385"
    username = "agent-rack1"                          # a user with the `agent` role
    password_file = "/etc/metalnic/agent.password"    # or METALNIC_AGENT_PASSWORD
    cacert = "/etc/metalnic/ca.pem"                   # trust for the server's HTTPS
    host = "rack1"                                    # default: the host name
    heartbeat_interval = 2.0                          # seconds
    resync_interval = 5.0                             # seconds (the long-poll timeout)

The smart NIC agent (``metalnic/agent/config.py``) and the DHCP agent
(``metalnic/dhcp/config.py``) read these keys here, as the fields of
``process.ProcessConfig``, and add their own.  Secrets never go on the
command line (visible to other users).
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import TypedDict

from metalnic.jsontypes import JSONObject

COMMON = frozenset(
    {
        "server",
        "username",
        "password_file",
        "cacert",
        "host",
        "heartbeat_interval",
        "resync_interval",
    }
)


class ConfigError(Exception):
    pass


class Common(TypedDict):
    """The keyword arguments of ``process.ProcessConfig``."""

    server: str
    host: str
    username: str | None
    password: str | None
    cacert: str | None
    heartbeat_interval: float
    resync_interval: float


def read(path: Path, what: str) -> JSONObject:
    """The TOML document at ``path`` (``what``: "agent", "DHCP agent")."""
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {what} config {path}: {exc}") from None


def common(doc: JSONObject, what: str, own: set[str]) -> Common:
    """The common part of ``doc``, after refusing keys neither common nor ``own``."""
    unknown = sorted(set(doc) - COMMON - own)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s): {', '.join(unknown)}")
    server = text(doc, "server")
    if server is None:
        raise ConfigError("server (the metalnic URL) is required")
    password = os.environ.get("METALNIC_AGENT_PASSWORD")
    password_file = text(doc, "password_file")
    if password_file:
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read password_file: {exc.strerror}") from None
    return Common(
        server=server,
        host=text(doc, "host") or socket.gethostname(),
        username=text(doc, "username"),
        password=password,
        cacert=text(doc, "cacert"),
        heartbeat_interval=seconds(doc, "heartbeat_interval", 2.0),
        resync_interval=seconds(doc, "resync_interval", 5.0),
    )


def text(doc: JSONObject, key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def seconds(doc: JSONObject, key: str, default: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key} is a number of seconds")
    return float(value)
