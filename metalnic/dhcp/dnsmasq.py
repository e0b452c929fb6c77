"""One dnsmasq process per network: started in the network's namespace, reloaded with
SIGHUP, stopped with SIGTERM — found again after an agent restart by its pid file.

dnsmasq daemonises itself and outlives the agent (as under Neutron), so leases
are answered while the agent is down; a restarted agent recognises its
dnsmasq by the pid file and the process's command line, and keeps it when the
command line it would use is the same.  On SIGHUP dnsmasq rereads the hosts
and options files and keeps its lease database (verified by
``tests/root/test_dhcp_agent.py``); a changed command line (a subnet added or
removed, another DHCP port address) restarts it, and the lease file carries
the leases over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from metalnic.dhcp.render import Files


class DnsmasqError(Exception):
    pass


def make_readable_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) mode 0755 and check that dnsmasq can
    reach it: dnsmasq drops root (to user nobody) right after start and rereads its
    hosts and options files as that user on every SIGHUP.  A parent that others cannot
    traverse would leave each network with no leases ("cannot read …: Permission
    denied" in its log only) — so it is an error here, naming the directory."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o755, exist_ok=True)
        path.chmod(0o755)  # mkdir's mode is reduced by the umask
    for path in (directory, *directory.parents):
        if not path.stat().st_mode & 0o001:
            raise DnsmasqError(
                f"{path} (mode {path.stat().st_mode & 0o777:04o}) is not traversable by other "
                f"users, and dnsmasq rereads its files in {directory} as user nobody: "
                "choose a state_dir whose every parent is (e.g. /var/lib/metalnic-dhcp)"
            )


def running(files: Files) -> int | None:
    """The pid of this network's dnsmasq, if it runs (checked against /proc)."""
    try:
        pid = int(files.pid.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not cmdline or not cmdline[0].endswith(b"dnsmasq"):
        return None
    if f"--pid-file={files.pid}".encode() not in cmdline:
        return None
    if _zombie(pid):
        return None
    return pid


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def current_args(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    return [part.decode() for part in raw]


def start(namespace: str, args: list[str], files: Files) -> int:
    """Start dnsmasq in ``namespace`` (it daemonises once it is bound and ready)."""
    files.directory.mkdir(parents=True, exist_ok=True)
    files.leases.touch(exist_ok=True)
    # Not a pipe: the daemon keeps its stderr, and a write to a closed pipe kills it.
    errors = files.directory / "stderr"
    with errors.open("w") as err:
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, *args],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            timeout=30,
        )
    if done.returncode != 0:
        raise DnsmasqError(f"dnsmasq in {namespace}: {errors.read_text().strip()}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid = running(files)
        if pid is not None:
            return pid
        time.sleep(0.01)
    raise DnsmasqError(f"dnsmasq in {namespace} wrote no pid file {files.pid}")


def reload(pid: int) -> None:
    """Reread hosts and options files; the leases stay."""
    os.kill(pid, signal.SIGHUP)


def stop(files: Files, timeout: float = 5.0) -> None:
    pid = running(files)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(files) == pid and time.monotonic() < deadline:
        time.sleep(0.01)
    if running(files) == pid:
        os.kill(pid, signal.SIGKILL)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically; False when the file already says exactly that."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)  # dnsmasq (user nobody) rereads it; whatever the umask
    tmp.replace(path)
    return True
