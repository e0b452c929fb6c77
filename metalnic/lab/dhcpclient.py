"""The lab's DHCP client: busybox ``udhcpc`` and the script it runs at each event.

The lab's hosts (and the DHCP tests' hosts) take their addresses the way a
server's firmware, ramdisk and installed OS do: by asking DHCP.  Busybox's
udhcpc is the client (Debian's ``busybox-static``: the one a Debian-built
initramfs has too); it calls :data:`SCRIPT` for every event with the lease in
its environment.  The script configures the lease on the interface (so a
renewal, unicast to the server, leaves from the leased address) and appends
one line per event to the file named by ``$UDHCPC_LOG``::

    <event> <ip> mask=<prefix length> router=<routers> server=<server id> boot=<file>

``event`` is udhcpc's: ``deconfig`` (start, or the lease is gone), ``bound``,
``renew``, ``leasefail`` (no offer after its tries), ``nak``.  :func:`parse`
reads such a line back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SCRIPT = """#!/bin/sh
boot="${bootfile:-${boot_file:-}}"
echo "$1 ${ip:-} mask=${mask:-} router=${router:-} server=${serverid:-} boot=$boot" \\
  >> "$UDHCPC_LOG"
case "$1" in
  bound|renew)
    ip addr flush dev "$interface" scope global
    ip addr add "$ip/${mask:-24}" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" scope global ;;
esac
"""


def write_script(directory: Path) -> Path:
    """:data:`SCRIPT` as an executable file ``udhcpc.sh`` in ``directory``."""
    script = directory / "udhcpc.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return script


def command(dev: str, script: Path, *extra: str, tries: int = 3) -> list[str]:
    """udhcpc in the foreground on ``dev``: ``tries`` DISCOVERs a second apart, then a
    second's pause, and again — until a lease (and then renewals) or until killed."""
    return ["busybox", "udhcpc", "-i", dev, "-f", "-t", str(tries), "-T", "1", "-A", "1",
            "-s", str(script), *extra]  # fmt: skip


def environment(log: Path) -> dict[str, str]:
    """The environment udhcpc needs so that its script logs to ``log``."""
    return {**os.environ, "UDHCPC_LOG": str(log)}


@dataclass(frozen=True)
class Event:
    kind: str  # bound, renew, deconfig, leasefail, nak
    ip: str = ""
    prefixlen: str = ""
    router: str = ""
    server: str = ""
    boot: str = ""

    @property
    def leased(self) -> bool:
        return self.kind in ("bound", "renew") and bool(self.ip)

    @property
    def interface(self) -> str:
        """The lease as ``ip/prefix`` (what ``ip addr`` shows)."""
        return f"{self.ip}/{self.prefixlen or 24}"


def parse(line: str) -> Event:
    """One line of the script's log (see the module docstring)."""
    kind, _, rest = line.partition(" ")
    fields: dict[str, str] = {}
    ip = ""
    for word in rest.split():
        key, eq, value = word.partition("=")
        if eq:
            fields[key] = value
        elif not ip:
            ip = word
    return Event(
        kind,
        ip,
        fields.get("mask", ""),
        fields.get("router", ""),
        fields.get("server", ""),
        fields.get("boot", ""),
    )
