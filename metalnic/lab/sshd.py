"""A remote NIC's SSH server in the lab: OpenSSH's sshd inside the NIC's namespace.

What the remote agent reads over SSH (``metalnic/agent/sshchannel.py``): the NIC's
netdevs (``ip -j link`` in its namespace: port B and the rest) and its boot id.
The boot id of ``/proc/sys/kernel/random/boot_id`` is the machine's: a network
namespace cannot change it.  So sshd runs in a mount namespace of its own (``ip
netns exec`` makes one) where a lab file (``boot_id`` in the NIC's directory) is
bind-mounted over that path: ``reboot`` writes a new id into the file (in place,
so the bind mount sees it) and the agent sees a rebooted NIC.

sshd runs with its own config file, host key, pid file and log under the NIC's
directory, listens on the NIC's management address (reachable from the root
namespace, where the agent runs), accepts only public-key logins as root with
the keys in ``authorized_keys`` (the agent's), and is stopped by its pid.
``StrictModes no``: the lab's files sit under /tmp, which is world-writable, and
sshd's strict modes refuse an authorized_keys file below it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

from metalnic.lab.netns import LabError, in_ns, run

SSHD = "/usr/sbin/sshd"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it


def available() -> bool:
    return os.access(SSHD, os.X_OK)


def start(
    ns: str, directory: Path, address: str, port: int, host_key: Path, authorized_keys: Path
) -> Path:
    """sshd in ``ns`` on ``address:port``; returns the boot id file it serves."""
    if not available():
        raise LabError(f"remote NICs need {SSHD} (Debian: openssh-server)")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    boot_id = directory / "boot_id"
    if not boot_id.exists():
        boot_id.write_text(f"{uuid.uuid4()}\n")
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress {address}:{port}\n"
        f"HostKey {host_key}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "AllowUsers root\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nUseDNS no\nPrintMotd no\nPrintLastLog no\nPermitUserRC no\n"
        "X11Forwarding no\nAllowTcpForwarding no\nAllowAgentForwarding no\n"
    )
    script = f"mount --bind {boot_id} {BOOT_ID} && exec {SSHD} -f {config} -E {directory}/sshd.log"
    run(in_ns(ns, "sh", "-c", script))  # sshd detaches once it listens
    pidfile = directory / "sshd.pid"
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            return boot_id
        time.sleep(0.02)
    raise LabError(f"sshd in {ns} did not start (see {directory}/sshd.log)")


def reboot(boot_id: Path) -> str:
    """A new boot id for the NIC (written in place: the bind mount follows the inode)."""
    new = str(uuid.uuid4())
    with boot_id.open("r+") as out:
        out.write(new + "\n")
        out.truncate()
    return new


def pid(directory: Path) -> int | None:
    """The live sshd of ``directory`` (its command line names its config there)."""
    try:
        found = int((directory / "sshd.pid").read_text())
        cmdline = Path(f"/proc/{found}/cmdline").read_bytes()
        state = Path(f"/proc/{found}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, ValueError, IndexError):
        return None
    return found if state != "Z" and str(directory / "sshd_config").encode() in cmdline else None


def stop(directory: Path) -> None:
    """Stop the sshd of ``directory`` by its pid, and its connections (its children, each
    in a session of its own: a live connection would outlast the listener)."""
    found = pid(directory)
    if found is None:
        return
    for each in [*_descendants(found), found]:
        with contextlib.suppress(OSError):  # gone meanwhile
            os.kill(each, signal.SIGTERM)
    for _ in range(100):
        if pid(directory) is None:
            break
        time.sleep(0.02)
    else:
        os.kill(found, signal.SIGKILL)
    (directory / "sshd.pid").unlink(missing_ok=True)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        each = todo.pop()
        found.append(each)
        todo += children.get(each, [])
    return found
