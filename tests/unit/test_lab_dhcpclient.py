"""The lab's DHCP client script and its log: what the host simulator and the DHCP tests
read back (the script itself runs under busybox in tests/root)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from metalnic.lab import dhcpclient
from metalnic.lab.datacentre import new_password


def test_parse_reads_each_field_and_tolerates_empty_ones() -> None:
    got = dhcpclient.parse(
        "bound 10.99.0.11 mask=24 router= server=10.99.0.10 boot=http://x/boot.ipxe"
    )
    assert got == dhcpclient.Event(
        "bound", "10.99.0.11", "24", "", "10.99.0.10", "http://x/boot.ipxe"
    )
    assert got.leased and got.interface == "10.99.0.11/24"
    assert not dhcpclient.parse("deconfig  mask= router= server= boot=").leased
    assert not dhcpclient.parse("leasefail  mask= router= server= boot=").leased
    many = dhcpclient.parse("renew 10.50.0.3 mask=24 router=10.50.0.1 10.50.0.254 server=s boot=")
    assert many.leased and many.router == "10.50.0.1" and many.server == "s"


@pytest.mark.skipif(not Path("/bin/sh").exists(), reason="needs /bin/sh")
def test_the_script_logs_what_udhcpc_gives_it(tmp_path: Path) -> None:
    """Run as udhcpc runs it (event as $1, lease in the environment); ``ip`` is a stub
    on PATH so that nothing is configured on this machine."""
    script = dhcpclient.write_script(tmp_path)
    assert os.access(script, os.X_OK)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ip").write_text('#!/bin/sh\necho "$@" >> "$IP_CALLS"\n')
    (bindir / "ip").chmod(0o755)
    log = tmp_path / "events"
    env = {**dhcpclient.environment(log), "PATH": f"{bindir}:/usr/bin:/bin",
           "IP_CALLS": str(tmp_path / "ip-calls"), "interface": "eth0", "ip": "10.50.0.3",
           "mask": "24", "serverid": "10.50.0.2", "router": "10.50.0.1"}  # fmt: skip
    subprocess.run([str(script), "bound"], env=env, check=True)
    got = dhcpclient.parse(log.read_text().splitlines()[-1])
    assert (got.kind, got.interface, got.server, got.router) == (
        "bound", "10.50.0.3/24", "10.50.0.2", "10.50.0.1"
    )  # fmt: skip
    assert "addr add 10.50.0.3/24 dev eth0" in (tmp_path / "ip-calls").read_text()


def test_command_keeps_asking_until_killed() -> None:
    cmd = dhcpclient.command("eth0", Path("/s"), "-x", "hostname:h1")
    assert cmd[:3] == ["busybox", "udhcpc", "-i"] and "-f" in cmd
    assert "-n" not in cmd and "-q" not in cmd  # no giving up, no quitting once leased
    assert cmd[-2:] == ["-x", "hostname:h1"]


def test_generated_passwords_never_look_like_options() -> None:
    assert all(not new_password(12).startswith("-") for _ in range(2000))


def test_dnsmasq_state_dirs_are_made_reachable_or_refused(tmp_path: Path) -> None:
    """dnsmasq rereads its files as user nobody: a state directory under a private
    parent is refused with the directory's name; missing ones are made 0755."""
    from metalnic.dhcp import dnsmasq

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    with pytest.raises(dnsmasq.DnsmasqError, match=f"{private} .mode 0700. is not traversable"):
        dnsmasq.make_readable_dir(private / "state" / "net1")
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # /tmp: open to all (1777)
        base = Path(top)
        base.chmod(0o755)
        old = os.umask(0o077)
        try:
            dnsmasq.make_readable_dir(base / "open" / "state" / "net1")
            assert dnsmasq.write_if_changed(base / "open" / "state" / "net1" / "hosts", "x\n")
        finally:
            os.umask(old)
        for path in ("open", "open/state", "open/state/net1"):
            assert (base / path).stat().st_mode & 0o777 == 0o755
        assert (base / "open/state/net1/hosts").stat().st_mode & 0o777 == 0o644
