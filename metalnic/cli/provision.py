"""``metalnic node <verb> …``, ``metalnic node power …`` and ``metalnic node history``:
provisioning from the shell, with ``--wait`` and a live view of what happens.

A verb is Ironic's ``PUT /v1/nodes/{id}/states/provision`` (or ``…/power``).  With
``--wait`` the command then follows the node until its flow settles: every new
event of the node's history (``GET …/history?marker=<last seq>``) and every
change of its provision or power state is printed as it happens, on stderr (so
that ``-f json`` keeps stdout for the result), and the command ends with the
node's states — exit 0 when it reached the state the verb leads to, 1 when it
settled anywhere else (its ``last_error`` is printed), 2 on timeout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalnic.cli.output import emit
from metalnic.jsontypes import JSONObject

if TYPE_CHECKING:
    from metalnic.cli.client import BaremetalClient


@dataclass(frozen=True)
class Verb:
    target: str  # Ironic's provision target
    reaches: str | None  # the state a successful run settles in (None: any)
    about: str


VERBS = {
    "manage": Verb("manage", "manageable", "verify the BMC and make the node manageable"),
    "provide": Verb("provide", "available", "clean the node and make it available"),
    "inspect": Verb("inspect", "manageable", "inspect the node's hardware"),
    "clean": Verb("clean", "manageable", "run manual clean steps (--clean-steps)"),
    "deploy": Verb("active", "active", "deploy the node's instance"),
    "rebuild": Verb("rebuild", "active", "deploy the instance again"),
    "undeploy": Verb("deleted", "available", "tear the instance down and clean the node"),
    "rescue": Verb("rescue", "rescue", "boot the rescue ramdisk (password from stdin)"),
    "unrescue": Verb("unrescue", "active", "leave rescue, back to the instance"),
    "abort": Verb("abort", None, "abort the current wait (cleaning, deploying, rescuing)"),
    "adopt": Verb("adopt", "active", "adopt a node that already runs its instance"),
}
POWER = {
    "on": ("power on", "power on"),
    "off": ("power off", "power off"),
    "reboot": ("rebooting", "power on"),
    "soft-off": ("soft power off", "power off"),
    "soft-reboot": ("soft rebooting", "power on"),
}
STATE_FIELDS = "provision_state,target_provision_state,power_state,target_power_state,last_error"
POLL_SECONDS = 0.5


def _wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=0.0,
        metavar="SECONDS",
        help="follow the node until it settles (give up after SECONDS; 0 or none: never)",
    )


def add_parsers(node: Any) -> None:
    """The verbs, ``power`` and ``history`` under ``metalnic node``."""
    for name, verb in VERBS.items():
        p = node.add_parser(name, help=verb.about)
        p.add_argument("node")
        _wait_option(p)
        if name in ("deploy", "rebuild"):
            p.add_argument("--config-drive", type=Path, help="a JSON file: the config drive")
        if name == "clean":
            p.add_argument(
                "--clean-steps", required=True, help="JSON list of clean steps, or @FILE"
            )
        p.set_defaults(func=provision, verb=name)
    p = node.add_parser("power", help="power a node on, off or reboot it")
    p.add_argument("state", choices=sorted(POWER))
    p.add_argument("node")
    _wait_option(p)
    p.set_defaults(func=power)
    p = node.add_parser("history", help="the node's event log")
    p.add_argument("node")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=history)


def _json_argument(value: str, option: str) -> Any:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"error: {option} is not JSON: {exc}") from None


def _rescue_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("rescue password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise SystemExit("error: rescue needs a password (on stdin, or typed at the prompt)")
    return password


def provision(c: BaremetalClient, a: argparse.Namespace) -> None:
    verb = VERBS[a.verb]
    body: JSONObject = {"target": verb.target}
    if getattr(a, "config_drive", None):
        body["configdrive"] = _json_argument(f"@{a.config_drive}", "--config-drive")
    if getattr(a, "clean_steps", None):
        body["clean_steps"] = _json_argument(a.clean_steps, "--clean-steps")
    if a.verb == "rescue":
        body["rescue_password"] = _rescue_password()  # never on the command line
    follow = Follower(c, a.node) if a.wait is not None else None
    c.request("PUT", f"/v1/nodes/{a.node}/states/provision", json=body)
    if follow is None:
        print(f"node {a.node}: {a.verb} requested", file=sys.stderr)
        return
    shown = follow.until(lambda s: s["target_provision_state"] is None, a.wait)
    _finish(shown, a.format, "provision_state", verb.reaches)


def power(c: BaremetalClient, a: argparse.Namespace) -> None:
    target, reaches = POWER[a.state]
    follow = Follower(c, a.node) if a.wait is not None else None
    c.request("PUT", f"/v1/nodes/{a.node}/states/power", json={"target": target})
    if follow is None:
        print(f"node {a.node}: {target} requested", file=sys.stderr)
        return
    shown = follow.until(lambda s: s["target_power_state"] is None, a.wait)
    _finish(shown, a.format, "power_state", reaches)


def _finish(shown: JSONObject, fmt: str, field: str, reaches: str | None) -> None:
    emit({k: shown.get(k) for k in STATE_FIELDS.split(",")}, fmt)
    if reaches is not None and shown[field] != reaches:
        error = shown.get("last_error") or "no error recorded"
        print(f"error: the node is {shown[field]}, not {reaches}: {error}", file=sys.stderr)
        raise SystemExit(1)


def _seq(event: JSONObject) -> int:
    seq = event.get("seq")
    if not isinstance(seq, int):
        raise SystemExit(f"error: a history event without its seq: {event}")
    return seq


class Follower:
    """Prints a node's new events and state changes until a condition holds.

    Made before the verb is sent: it remembers where the node's history stood, so
    that only what the verb caused is shown."""

    def __init__(self, c: BaremetalClient, node: str) -> None:
        self._c = c
        self._node = node
        self._started = time.monotonic()
        events = self._events(None)
        self._marker: int | None = _seq(events[-1]) if events else None
        self._states = self._read()

    def _read(self) -> JSONObject:
        shown: JSONObject = self._c.request(
            "GET", f"/v1/nodes/{self._node}", params={"fields": STATE_FIELDS}
        )
        return shown

    def _events(self, marker: int | None) -> list[JSONObject]:
        params = {"limit": "1000"} if marker is None else {"marker": str(marker)}
        body = self._c.request("GET", f"/v1/nodes/{self._node}/history", params=params)
        events: list[JSONObject] = body["history"]
        return events

    def _say(self, kind: str, text: str) -> None:
        print(f"{time.monotonic() - self._started:7.1f}s  {kind:<13} {text}", file=sys.stderr)

    def poll(self) -> JSONObject:
        """Print what changed since the last poll; the node's states now."""
        for event in self._events(self._marker):
            self._say(str(event["event_type"]), str(event["event"]))
            self._marker = _seq(event)
        now = self._read()
        for field in ("provision_state", "power_state"):
            if now.get(field) != self._states.get(field):
                self._say(field.replace("_state", ""), f"{self._states.get(field)} → {now[field]}")
        self._states = now
        return now

    def until(self, done: Any, timeout: float) -> JSONObject:
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            now = self.poll()
            if done(now):
                return now
            if deadline is not None and time.monotonic() > deadline:
                print(f"error: still {now['provision_state']} after {timeout:g} s", file=sys.stderr)
                raise SystemExit(2)
            time.sleep(POLL_SECONDS)


def history(c: BaremetalClient, a: argparse.Namespace) -> None:
    body = c.request("GET", f"/v1/nodes/{a.node}/history", params={"limit": str(a.limit)})
    rows = [{k: v for k, v in e.items() if k != "links"} for e in body["history"]]
    emit(rows, a.format, ["seq", "created_at", "event_type", "severity", "event"])
