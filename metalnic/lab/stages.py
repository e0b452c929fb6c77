"""A host's events as the demo shows them: each boot's stages, as they happen.

A host's ``events.log`` (``lab.machine.HostLog``) has its follower's events
(``pxe firmware PXE: …: qemu 123 powered on``, ``disk lease …``) and, for a VM, the
serial console's milestones (``<state> console: …``, from ``lab.vm.milestones``).
``stage`` turns one event into the line the demo prints, naming the stage it
belongs to:

* ``firmware:`` SeaBIOS, iPXE asking DHCP, booting from disk;
* ``ramdisk:`` its kernel starting, its lease, lookup, heartbeat, the commands it
  ran (disk erased, image written) — everything the ramdisk prints but its HTTP
  access log and its start-up chatter;
* ``instance:`` its kernel starting, its hostname, lease and readiness;
* ``host:`` everything else (power, boot device, a namespace host's own leases), as
  ``host: <state> <detail>``.

``None``: not worth a line of its own.
"""

from __future__ import annotations

import re

_CONSOLE = "console: "
_TRAILER = re.compile(r"\s*(\(uptime [0-9.]+\)|\[[0-9-]+ [0-9:,]+\])\s*$")  # /init's, logging's
_QUIET = (
    re.compile(r'^[0-9.]+ "(GET|POST|PUT) '),  # the ramdisk agent's HTTP access log
    re.compile(r"^(init|cmdline |dhcp on |agent starting|probe channel)"),
    # dropbear's start-up and login-record chatter (logins and failures stay)
    re.compile(r"^sshd: \[[0-9]+\] .*(Not backgrounding|lastlog_|syslogin_|[uw]tmpx?_)"),
)


def stage(state: str, detail: str) -> str | None:
    """The demo's line for one host event (see the module docstring)."""
    if not detail.startswith(_CONSOLE):
        return f"host: {state} {detail}"
    said = detail[len(_CONSOLE) :]
    if said.startswith("firmware: "):
        return said
    if said.startswith("kernel: "):
        owner = "ramdisk" if state == "pxe" else "instance"
        return f"{owner}: {said[len('kernel: ') :]}"
    for tag, owner in (("metalnic-ramdisk: ", "ramdisk"), ("metalnic-instance: ", "instance")):
        if said.startswith(tag):
            text = _TRAILER.sub("", said[len(tag) :])
            if any(quiet.search(text) for quiet in _QUIET):
                return None
            return f"{owner}: {text}"
    return f"console: {said}"
