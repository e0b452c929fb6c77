"""Network namespaces and veth pairs, named with a per-run prefix and torn down by it."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence


class LabError(Exception):
    pass


def run(cmd: Sequence[str], stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def add(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    run(in_ns(ns, "ip", "link", "set", "lo", "up"))
    # No IPv6 chatter (router solicitations, MLD) before the links are programmed.
    for key in ("all", "default"):
        run(in_ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"))


def veth(a: str, ns_a: str | None, b: str, ns_b: str | None) -> None:
    """A veth pair ``a`` (in ``ns_a``) ↔ ``b`` (in ``ns_b``); None is the root namespace."""
    cmd = ["ip", "link", "add", a]
    if ns_a:
        cmd += ["netns", ns_a]
    cmd += ["type", "veth", "peer", "name", b]
    if ns_b:
        cmd += ["netns", ns_b]
    run(cmd)
    for name, ns in ((a, ns_a), (b, ns_b)):
        run(in_ns(ns, "ip", "link", "set", name, "up") if ns else ["ip", "link", "set", name, "up"])


def address(ns: str | None, dev: str, cidr: str, mac: str | None = None) -> None:
    pre = in_ns(ns, "")[:-1] if ns else []
    if mac:
        run([*pre, "ip", "link", "set", dev, "address", mac])
    run([*pre, "ip", "addr", "add", cidr, "dev", dev])


def list_ns(prefix: str) -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.split()[0].startswith(prefix)]


def delete(ns: str) -> None:
    run(["ip", "netns", "del", ns], check=False)  # veth ends inside go with it


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` right now (the caller retries if it is taken meanwhile)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])
