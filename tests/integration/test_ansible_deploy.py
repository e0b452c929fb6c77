"""The ansible deploy interface against real parts: a real ``metalnic serve`` runs
ansible-core's ``ansible-playbook`` over a real SSH connection (OpenSSH's ``ssh``)
to a real ``sshd`` standing in for the ramdisk's SSH server, next to a real ramdisk
agent process that reports that server's host key.  The tasks' commands find
busybox's applets first on the server's PATH, as in the lab's ramdisk (whose SSH
server is dropbear: ``tests/root/test_demo.py`` deploys a QEMU host with it)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalnic.baremetal.drivers.deploy.ansible import ansible_playbook, conductor_public_key
from tests.integration.conductor_helpers import (
    MIB,
    a_disk,
    audit_smartnic_order,
    history,
    image_node,
    kept_off_tenant_networks,
    provision,
    wait_for,
)
from tests.integration.test_conductor import FAST
from tests.integration.test_direct_deploy import (
    CONFIGDRIVE,
    HostSimulator,
    conductor_skip_clean,
    images,
)
from tests.support import Server, free_port, require, start_server

__all__ = ["images"]  # the image server fixture, shared with the direct deploy's tests

SSHD = Path("/usr/sbin/sshd")
BUSYBOX = shutil.which("busybox")


@pytest.fixture(autouse=True)
def _tools() -> None:
    require(os.geteuid() == 0, "root (sshd logs the conductor in as root)")
    require(
        SSHD.exists() and bool(shutil.which("ssh")) and bool(BUSYBOX),
        "openssh-server, openssh-client and busybox (scripts/setup installs them)",
    )
    require(ansible_playbook() is not None, "ansible-core (pip install -e .)")


class RamdiskSshd:
    """OpenSSH's sshd on 127.0.0.1 as the ramdisk's SSH server: its own config, host
    key and pid, public-key logins as root with the conductor's key only, and a PATH
    whose first directory holds busybox's applets."""

    def __init__(self, directory: Path, authorized: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = directory / "host_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True
        )
        applets = directory / "busybox-bin"
        applets.mkdir()
        listed = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True)
        for name in listed.stdout.split():
            if name not in ("sh", "ash"):  # the login shell stays the system's
                (applets / name).symlink_to(str(BUSYBOX))
        config = directory / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1:{self.port}\nHostKey {self.host_key}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "AllowUsers root\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nUseDNS no\nPrintMotd no\nPrintLastLog no\nPermitUserRC no\n"
            f"SetEnv PATH={applets}:/usr/sbin:/usr/bin:/sbin:/bin\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.log = directory / "sshd.log"
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(config), "-E", str(self.log)], start_new_session=True
        )
        deadline = time.monotonic() + 10
        while "Server listening" not in (self.log.read_text() if self.log.exists() else ""):
            assert time.monotonic() < deadline, "sshd did not start"
            time.sleep(0.05)

    def args(self, host_key: Path | None = None) -> tuple[str, ...]:
        """The agent's flags reporting this server (``host_key``: report another key)."""
        public = host_key or self.host_key.with_name("host_key.pub")
        return ("--ssh-port", str(self.port), "--ssh-host-key", str(public))

    def close(self) -> None:
        os.killpg(self.proc.pid, 15)  # sshd and its connections: their own session
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conductor's key pair, made as the server makes it; sshd admits its public half."""
    key = tmp_path_factory.mktemp("conductor-key") / "id_ed25519"
    conductor_public_key(key)
    return key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, keys: Path) -> Iterator[Server]:
    env = {**FAST, "METALNIC_ANSIBLE_KEY_FILE": str(keys)}
    srv = start_server(tmp_path_factory.mktemp("ansible"), env=env)
    yield srv
    srv.stop()


@pytest.fixture
def sshd(tmp_path: Path, keys: Path) -> Iterator[RamdiskSshd]:
    daemon = RamdiskSshd(tmp_path / "sshd", keys.with_name("id_ed25519.pub"))
    yield daemon
    daemon.close()


def ansible_node(server: Server, image_url: str, checksum: str) -> tuple[str, str]:
    with server.client() as c:
        return image_node(c, "ansible", image_url, checksum)


def tasks(texts: list[str], status: str) -> list[str]:
    """The playbook tasks the history reports with ``status``."""
    return [t.split(": ")[1] for t in texts if t.startswith("ansible: ") and f": {status}" in t]


def test_ansible_deploy_writes_verifies_and_cleans_over_ssh(
    server: Server, images: tuple[str, bytes], tmp_path: Path, sshd: RamdiskSshd
) -> None:
    url, image = images
    disk = a_disk(tmp_path)
    original = disk.read_bytes()
    drive = tmp_path / "disk.config-2"
    node, mac = ansible_node(server, url, hashlib.sha256(image).hexdigest())
    with server.client() as c, HostSimulator(server, node, mac, disk, sshd.args()):
        provision(c, node, "manage")
        wait_for(c, node, "manageable")
        provision(c, node, "provide")  # cleaning runs clean.yaml
        wait_for(c, node, "available", timeout=120)
        assert disk.read_bytes()[:MIB] == b"\0" * MIB
        provision(c, node, "active", configdrive=CONFIGDRIVE)
        active = wait_for(c, node, "active", timeout=120)
        assert active["last_error"] is None
        assert disk.read_bytes()[: len(image)] == image
        # dd with conv=notrunc: the rest of the disk is as it was
        assert disk.read_bytes()[len(image) :] == original[len(image) :]
        assert json.loads(drive.read_bytes().split(b"\0", 1)[0]) == CONFIGDRIVE
        provision(c, node, "deleted")
        cleaned = wait_for(c, node, "available", timeout=120)
        events = history(c, node)
    assert cleaned["power_state"] == "power off"
    assert disk.read_bytes()[:MIB] == b"\0" * MIB
    assert drive.read_bytes()[:1] in (b"", b"\0")  # cleaning empties the config drive
    texts = [e["event"] for e in events]
    ok = tasks(texts, "ok")
    for task in (
        "stage the image URL and the config drive in the ramdisk's memory",
        "download the image into the ramdisk's memory",
        "verify the downloaded image's sha256",
        "write the image to the disk",
        "read the image back from the disk and verify its sha256",
        "write the config drive",
        "prepare the boot (the kernel re-reads the disk's partition table)",
    ):
        assert ok.count(task) == 1, (task, texts)
    assert ok.count("erase the disk's first MiB (partition table and boot sector)") == 2
    assert not tasks(texts, "FAILED")
    runs = [t for t in texts if t.startswith("ansible: running ")]
    assert [r.split()[2] for r in runs] == ["clean.yaml", "deploy.yaml", "clean.yaml"], runs
    counts = audit_smartnic_order(events)
    assert counts["network"] == 10 and counts["boots"] == 4  # as the direct deploy's
    assert url not in "\n".join(texts)  # the image's URL is not in the history


def test_a_wrong_checksum_fails_the_task_and_the_disk_is_untouched(
    server: Server, images: tuple[str, bytes], tmp_path: Path, sshd: RamdiskSshd
) -> None:
    url, _ = images
    disk = a_disk(tmp_path)
    before = disk.read_bytes()
    node, mac = ansible_node(server, url, "0" * 64)
    conductor_skip_clean(server, node)
    with server.client() as c, HostSimulator(server, node, mac, disk, sshd.args()):
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed", timeout=120)
        events = history(c, node)
    texts = [e["event"] for e in events]
    kept_off_tenant_networks(events)
    assert "verify the downloaded image's sha256" in failed["last_error"]
    assert "image checksum mismatch: expected sha256 " + "0" * 64 in failed["last_error"]
    assert failed["power_state"] == "power off"
    assert disk.read_bytes() == before
    assert tasks(texts, "FAILED") == ["verify the downloaded image's sha256"]
    assert "write the image to the disk" not in tasks(texts, "ok")


def test_a_playbook_failing_midway_fails_the_deploy_and_powers_off(
    server: Server, tmp_path: Path, sshd: RamdiskSshd
) -> None:
    """An image larger than the disk: downloaded and verified, then the fit check fails."""
    root = tmp_path / "www"
    root.mkdir()
    big = os.urandom(5 * MIB)
    (root / "big.img").write_bytes(big)
    web = subprocess.Popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", str(port := free_port())],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        disk = a_disk(tmp_path)
        before = disk.read_bytes()
        url = f"http://127.0.0.1:{port}/big.img"
        node, mac = ansible_node(server, url, hashlib.sha256(big).hexdigest())
        conductor_skip_clean(server, node)
        with server.client() as c, HostSimulator(server, node, mac, disk, sshd.args()):
            provision(c, node, "active")
            failed = wait_for(c, node, "deploy failed", timeout=120)
            events = history(c, node)
    finally:
        web.terminate()
        web.wait(timeout=10)
    texts = [e["event"] for e in events]
    kept_off_tenant_networks(events)
    assert "larger than the disk" in failed["last_error"], failed["last_error"]
    assert failed["power_state"] == "power off"
    assert disk.read_bytes() == before
    ok = tasks(texts, "ok")
    assert "verify the downloaded image's sha256" in ok
    assert tasks(texts, "FAILED") == ["check the image fits on the disk"]


def test_a_host_key_other_than_the_reported_one_is_refused(
    server: Server, images: tuple[str, bytes], tmp_path: Path, sshd: RamdiskSshd
) -> None:
    """The agent reports a key the SSH server does not have: the conductor's ssh refuses
    to talk to that server, nothing is run and the deploy fails."""
    url, image = images
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    disk = a_disk(tmp_path)
    before = disk.read_bytes()
    node, mac = ansible_node(server, url, hashlib.sha256(image).hexdigest())
    conductor_skip_clean(server, node)
    args = sshd.args(host_key=other.with_name("other.pub"))
    with server.client() as c, HostSimulator(server, node, mac, disk, args):
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed", timeout=120)
        kept_off_tenant_networks(history(c, node))
    assert "UNREACHABLE" in failed["last_error"], failed["last_error"]
    assert "Host key verification failed" in failed["last_error"], failed["last_error"]
    assert failed["power_state"] == "power off"
    assert disk.read_bytes() == before
    assert "Accepted publickey" not in sshd.log.read_text()


def test_a_ramdisk_without_an_ssh_server_is_refused(
    server: Server, images: tuple[str, bytes], tmp_path: Path
) -> None:
    url, image = images
    disk = a_disk(tmp_path)
    node, mac = ansible_node(server, url, hashlib.sha256(image).hexdigest())
    conductor_skip_clean(server, node)
    with server.client() as c, HostSimulator(server, node, mac, disk):
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed", timeout=120)
        kept_off_tenant_networks(history(c, node))
    assert "runs no SSH server for the ansible deploy" in failed["last_error"]
    assert failed["power_state"] == "power off"


def test_templates_in_what_the_tenant_or_the_ramdisk_says_never_reach_ansible(
    server: Server, images: tuple[str, bytes], tmp_path: Path, sshd: RamdiskSshd
) -> None:
    """Ansible templates its variables and inventory: "{{ lookup('pipe', …) }}" in the
    image checksum (the node owner's instance_info) or in a path the ramdisk reports
    would run on the conductor. Both are refused before ansible-playbook starts."""
    url, image = images
    marker = tmp_path / "ran-on-the-conductor"
    templated = "{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    node, _mac = ansible_node(server, url, templated)
    with server.client() as c:
        result = c.get(f"/v1/nodes/{node}/validate").json()["deploy"]
        assert result == {
            "result": False,
            "reason": "instance_info image_os_hash_value must be a sha256: 64 hexadecimal digits",
        }
        conductor_skip_clean(server, node)
        provision(c, node, "active")  # the deploy validates first and fails, host off
        failed = wait_for(c, node, "deploy failed", timeout=60)
        assert "must be a sha256" in failed["last_error"]
    assert not marker.exists()
    # The ramdisk (on the untrusted host) reports a disk path with a template in it.
    odd = tmp_path / "{{ lookup('pipe', 'id') }}"
    odd.write_bytes(b"\0" * MIB)
    node, mac = ansible_node(server, url, hashlib.sha256(image).hexdigest())
    conductor_skip_clean(server, node)
    with server.client() as c, HostSimulator(server, node, mac, odd, sshd.args()):
        provision(c, node, "active")
        failed = wait_for(c, node, "deploy failed", timeout=120)
        texts = [e["event"] for e in history(c, node)]
    assert "the ramdisk agent reported an unusable disk" in failed["last_error"]
    assert not any(t.startswith("ansible: running") for t in texts)  # no playbook ran
    assert not marker.exists()
    assert "Accepted publickey" not in sshd.log.read_text()
