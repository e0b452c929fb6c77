"""Talking to one NIC's Open vSwitch: OVSDB through ``ovs-vsctl``, flows through ``ovs-ofctl``.

The command-line tools, not a Python OVSDB library, because each remote NIC
needs its own TLS trust (the CA stored on its bare-metal port) and the ``ovs``
library keeps key, certificate and CA as process-wide class attributes: one
identity per process.  A tool run costs ~5–15 ms (measured here), well inside
the bind-latency budget, and every flow change goes in one OpenFlow bundle,
so a rejected flow leaves the bridge as it was instead of half-programmed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

OPENFLOW = "OpenFlow14"  # bundles need 1.4; ct() and goto_table need 1.3
TIMEOUT = 10.0


class OvsError(Exception):
    """An OVS tool failed; the message says which command and why (no secrets in it)."""


@dataclass(frozen=True)
class Tls:
    """Client identity and the trust for one remote NIC (file paths)."""

    private_key: str
    certificate: str
    ca_cert: str

    def args(self) -> list[str]:
        return ["-p", self.private_key, "-c", self.certificate, "-C", self.ca_cert]


@dataclass(frozen=True)
class Endpoint:
    """Where a NIC's OVS listens: its OVSDB and each bridge's OpenFlow target.

    Local mode: ``unix:/run/openvswitch/db.sock`` and ``unix:<rundir>/<bridge>.mgmt``.
    Remote mode: ``ssl:IP:PORT`` for both, with ``tls``.
    """

    db: str
    openflow: dict[str, str] = field(default_factory=dict)
    tls: Tls | None = None

    def flow_target(self, bridge: str) -> str:
        try:
            return self.openflow[bridge]
        except KeyError:
            raise OvsError(f"no OpenFlow target is configured for bridge {bridge}") from None


@dataclass(frozen=True)
class Interface:
    name: str
    ofport: int
    external_ids: dict[str, str]
    error: str | None
    tag: int | None = None
    port_other_config: dict[str, str] = field(default_factory=dict)


class Ovs:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    # --- running the tools --------------------------------------------------------

    def _run(self, cmd: list[str], stdin: str | None = None, what: str = "") -> str:
        try:
            done = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT + 5
            )
        except subprocess.TimeoutExpired:
            raise OvsError(f"{cmd[0]} {what} timed out") from None
        except OSError as exc:
            raise OvsError(f"{cmd[0]} cannot run: {exc.strerror}") from None
        if done.returncode != 0:
            reason = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise OvsError(f"{cmd[0]} {what}: {reason[-1] if reason else 'failed'}")
        return done.stdout

    def _tls(self) -> list[str]:
        return self.endpoint.tls.args() if self.endpoint.tls else []

    def vsctl(self, *args: str) -> str:
        """One OVSDB transaction (``--`` separates its commands); waits for vswitchd."""
        cmd = ["ovs-vsctl", f"--db={self.endpoint.db}", f"--timeout={TIMEOUT:.0f}", *self._tls()]
        return self._run([*cmd, *args], what=args[0] if args else "")

    def ofctl(
        self,
        command: str,
        bridge: str,
        *args: str,
        stdin: str | None = None,
        options: Sequence[str] = (),
    ) -> str:
        cmd = ["ovs-ofctl", "-O", OPENFLOW, *self._tls(), f"--timeout={TIMEOUT:.0f}", *options]
        target = self.endpoint.flow_target(bridge)
        return self._run([*cmd, command, target, *args], stdin=stdin, what=f"{command} {bridge}")

    # --- OVSDB ------------------------------------------------------------------------

    def bridges(self) -> dict[str, dict[str, str]]:
        """Bridge name → external_ids."""
        rows = self._lists(("Bridge", "name,external_ids"))[0]
        return {r["name"]: r["external_ids"] for r in rows}

    def state(self, bridge: str) -> tuple[set[str], list[Interface]]:
        """The bridges, and the interfaces on ``bridge``'s ports with their tags: one read."""
        bridges, ports, interfaces = self._lists(
            ("Bridge", "name,ports"),
            ("Port", "_uuid,name,tag,other_config,interfaces"),
            ("Interface", "_uuid,name,ofport,external_ids,error"),
        )
        names = {r["name"] for r in bridges}
        mine = next((r for r in bridges if r["name"] == bridge), None)
        port_ids = set(_as_list(mine["ports"])) if mine else set()
        by_iface = {
            iface: port
            for port in ports
            if port["_uuid"] in port_ids
            for iface in _as_list(port["interfaces"])
        }
        out: list[Interface] = []
        for row in interfaces:
            port = by_iface.get(row["_uuid"])
            if port is None:
                continue
            tag = port.get("tag")
            out.append(
                Interface(
                    name=row["name"],
                    ofport=row["ofport"] if isinstance(row["ofport"], int) else -1,
                    external_ids=row["external_ids"] or {},
                    error=row["error"] or None,
                    tag=tag if isinstance(tag, int) else None,
                    port_other_config=port.get("other_config") or {},
                )
            )
        return names, out

    def interfaces(self, bridge: str) -> list[Interface]:
        return self.state(bridge)[1]

    def _lists(self, *tables: tuple[str, str]) -> list[list[dict[str, Any]]]:
        """Several ``list`` commands in one ovs-vsctl run (one JSON document each)."""
        args: list[str] = ["--format=json"]
        for table, columns in tables:
            args += ["--", f"--columns={columns}", "list", table]
        raw = self.vsctl(*args)
        decoder = json.JSONDecoder()
        docs: list[list[dict[str, Any]]] = []
        pos = 0
        while len(docs) < len(tables):
            while raw[pos].isspace():
                pos += 1
            doc, pos = decoder.raw_decode(raw, pos)
            docs.append(
                [
                    {name: _datum(value) for name, value in zip(doc["headings"], row, strict=True)}
                    for row in doc["data"]
                ]
            )
        return docs

    # --- OpenFlow ---------------------------------------------------------------------

    def bundle(self, bridge: str, lines: Sequence[str]) -> None:
        """Apply ``add …``/``delete …`` lines atomically (one OpenFlow bundle)."""
        if lines:
            self.ofctl(
                "add-flows", bridge, "-", stdin="\n".join(lines) + "\n", options=["--bundle"]
            )

    def dump_flows(self, bridge: str) -> list[str]:
        out = self.ofctl("dump-flows", bridge, "--no-stats")
        return [line.strip() for line in out.splitlines() if "cookie=" in line]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _datum(value: Any) -> Any:
    """OVSDB JSON → Python: ["map", [[k, v]…]] → dict, ["set", []] → None/list."""
    if isinstance(value, list) and len(value) == 2 and value[0] in ("map", "set", "uuid"):
        kind, body = value
        if kind == "map":
            return {k: _datum(v) for k, v in body}
        if kind == "set":
            return [_datum(v) for v in body] if body else None
        return body
    return value
