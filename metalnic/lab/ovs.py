"""One Open vSwitch instance per smart NIC: its own ovsdb-server (root namespace) and
ovs-vswitchd (inside the NIC's network namespace), files under one run directory.

Facts behind the shape (see shared/LAB-NOTES.md): only the userspace datapath
works here (``datapath_type=netdev``), one ovs-vswitchd per namespace, and
``/var/run/openvswitch`` must exist even with private run directories.
Stopping uses ``exit --cleanup`` (else tap devices stay) and waits for the
pidfile to go (an exited daemon may linger as <defunct>).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from metalnic.lab.netns import LabError, in_ns, run

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class OvsInstance:
    def __init__(self, name: str, ns: str, directory: Path) -> None:
        self.name, self.ns, self.dir = name, ns, directory
        self.db = f"unix:{directory}/db.sock"

    def mgmt(self, bridge: str) -> str:
        """The bridge's OpenFlow management socket (reachable from any namespace)."""
        return f"unix:{self.dir}/{bridge}.mgmt"

    def start(self, remotes: tuple[str, ...] = ()) -> None:
        self.start_ovsdb(remotes)
        self.vsctl("--no-wait", "init")
        self.start_vswitchd()

    def start_ovsdb(self, remotes: tuple[str, ...] = ()) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        Path("/var/run/openvswitch").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "conf.db"
        if not conf.exists():
            run(["ovsdb-tool", "create", str(conf), SCHEMA])
        run(
            [
                "ovsdb-server",
                str(conf),
                f"--remote=punix:{self.dir}/db.sock",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                *[f"--remote={r}" for r in remotes],
                "--private-key=db:Open_vSwitch,SSL,private_key",
                "--certificate=db:Open_vSwitch,SSL,certificate",
                "--ca-cert=db:Open_vSwitch,SSL,ca_cert",
                f"--pidfile={self.dir}/ovsdb-server.pid",
                f"--unixctl={self.dir}/ovsdb-server.ctl",
                f"--log-file={self.dir}/ovsdb-server.log",
                "--detach",
            ]
        )

    def start_vswitchd(self) -> None:
        run(
            in_ns(
                self.ns,
                "env",
                f"OVS_RUNDIR={self.dir}",
                "ovs-vswitchd",
                self.db,
                f"--pidfile={self.dir}/ovs-vswitchd.pid",
                f"--unixctl={self.dir}/ovs-vswitchd.ctl",
                f"--log-file={self.dir}/ovs-vswitchd.log",
                "--detach",
            )
        )

    def stop_vswitchd(self) -> None:
        pidfile = self.dir / "ovs-vswitchd.pid"
        if pidfile.exists():
            run(
                ["ovs-appctl", "-t", f"{self.dir}/ovs-vswitchd.ctl", "exit", "--cleanup"],
                check=False,
            )
            _wait_gone(pidfile)

    def stop(self) -> None:
        self.stop_vswitchd()
        self.stop_ovsdb()

    def stop_ovsdb(self) -> None:
        pidfile = self.dir / "ovsdb-server.pid"
        if pidfile.exists():
            run(["ovs-appctl", "-t", f"{self.dir}/ovsdb-server.ctl", "exit"], check=False)
            _wait_gone(pidfile)

    def vswitchd_pid(self) -> int | None:
        try:
            return int((self.dir / "ovs-vswitchd.pid").read_text())
        except (OSError, ValueError):
            return None

    def vsctl(self, *args: str) -> str:
        return run(["ovs-vsctl", f"--db={self.db}", "--timeout=10", *args])

    def ofctl(self, command: str, bridge: str, *args: str) -> str:
        return run(["ovs-ofctl", "-O", "OpenFlow14", command, self.mgmt(bridge), *args])


def _wait_gone(pidfile: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if pidfile.exists():  # last resort: our own daemon, by its pid
        try:
            os.kill(int(pidfile.read_text()), 9)
            pidfile.unlink()
        except (OSError, ValueError):
            pass
    if pidfile.exists():
        raise LabError(f"{pidfile} did not go away")
