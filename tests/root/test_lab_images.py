"""The lab's images really boot: QEMU (TCG) runs the ramdisk and the instance image.

Two boots, each on a tap in namespace ``him-img`` where dnsmasq serves DHCP and
a stub of the bare-metal API answers ``/v1/lookup`` and ``/v1/heartbeat``:

* the ramdisk, kernel loaded directly (``-kernel vmlinux -initrd …``, Ironic's
  ``BOOTIF``/``ipa-api-url`` on the command line): it leases an address on the
  NIC with the BOOTIF MAC, its agent looks itself up by that MAC, heartbeats
  with a callback on the leased address, answers ``/v1/status`` there, and
  ``standby.prepare_image`` writes the instance image to its ``/dev/vda``
  (checksum verified) and the config drive to its ``/dev/vdb``;
* the instance image from its disk (SeaBIOS → syslinux → kernel, no
  ``-kernel``), with a config drive on a second disk: it names itself from the
  drive's ``meta_data`` (and tells DHCP that name), leases an address and
  answers ping and HTTP on port 80.

The images come from the builder's cache (``METALNIC_IMAGE_CACHE`` or its
default): the first run builds them (about 30 s), later ones find them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metalnic.lab import netns
from metalnic.lab.images import Images, build
from tests.support import require

NS, TAP = "him-img", "him-tap0"
SERVER, SUBNET = "10.79.0.1", "10.79.0.0/24"
STUB_PORT = 8079
BOOT_LIMIT = 60.0  # seconds from QEMU start to the last expected console line

STUB = r"""
import json, sys, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[1], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        log.write(json.dumps({"method": "GET", "path": self.path}) + "\n")
        if self.path == "/disk.img":
            data = open(sys.argv[3], "rb").read()
            self.send_response(200); self.send_header("Content-Length", str(len(data)))
            self.end_headers(); self.wfile.write(data)
        elif self.path.startswith("/v1/lookup"):
            self.reply(200, {"node": {"uuid": "0c5e7ab2-0000-4000-8000-000000000001"},
                             "config": {"agent_token": "him-token"}})
        else:
            self.reply(404, {})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        entry = {"method": "POST", "path": self.path, "body": body}
        try:  # the agent's own command endpoint, on the callback it reports
            with urllib.request.urlopen(body["callback_url"] + "/v1/status", timeout=5) as r:
                entry["status"] = json.loads(r.read())
        except Exception as exc:
            entry["status_error"] = repr(exc)
        log.write(json.dumps(entry) + "\n")
        self.reply(202, {})
ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""


@dataclass
class Net:
    dir: Path
    requests: Path

    def log(self) -> list[dict[str, object]]:
        text = self.requests.read_text() if self.requests.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


def _cleanup() -> None:
    netns.delete(NS)  # the tap goes with it; dnsmasq and the stub are stopped by pid


@pytest.fixture(scope="module")
def images() -> Images:
    require(os.geteuid() == 0, "root (network namespaces, taps)")
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("dnsmasq", "dnsmasq-base")):
        require(shutil.which(tool) is not None, f"{tool} (Debian package {pkg})")
    require(shutil.which("apt-get") is not None, "apt-get (the images come from Debian packages)")
    started = time.monotonic()
    built = build(say=lambda line: print(f"build-images: {line}"))
    print(f"images ready in {time.monotonic() - started:.1f} s")
    return built


@pytest.fixture(scope="module")
def net(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    d = tmp_path_factory.mktemp("him-img")
    _cleanup()
    netns.add(NS)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        netns.run(netns.in_ns(NS, "ip", "tuntap", "add", TAP, "mode", "tap"))
        netns.run(netns.in_ns(NS, "ip", "addr", "add", f"{SERVER}/24", "dev", TAP))
        netns.run(netns.in_ns(NS, "ip", "link", "set", TAP, "up"))
        # Packets the namespace sends into the tap must carry full checksums: QEMU's
        # tap without vnet_hdr hands the guest what it gets (partial ones fail TCP).
        netns.run(netns.in_ns(NS, "ethtool", "-K", TAP, "tx", "off"))
        conf = d / "dnsmasq.conf"
        conf.write_text(
            f"port=0\ninterface={TAP}\nbind-interfaces\nuser=root\nno-ping\n"
            f"dhcp-range=10.79.0.100,10.79.0.150,255.255.255.0,10m\n"
            f"dhcp-leasefile={d}/leases\nlog-dhcp\nlog-facility={d}/dnsmasq.log\n"
        )
        procs.append(
            subprocess.Popen(
                netns.in_ns(NS, "dnsmasq", "--keep-in-foreground", f"--conf-file={conf}")
            )
        )
        requests = d / "requests.jsonl"
        procs.append(
            subprocess.Popen(
                netns.in_ns(
                    NS,
                    sys.executable,
                    "-c",
                    STUB,
                    str(requests),
                    str(STUB_PORT),
                    str(images.instance),
                )  # fmt: skip
            )
        )
        yield Net(d, requests)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        _cleanup()


class Guest:
    """One QEMU run in the namespace, its serial console in a file."""

    def __init__(self, net: Net, name: str, args: list[str], mac: str) -> None:
        self.serial = net.dir / f"{name}.serial"
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", "1",
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.serial}",
            "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vnet_hdr=off",
            # romfile= : no iPXE ROM, so a disk boot cannot fall through to the network
            "-device", f"virtio-net-pci,netdev=n0,mac={mac},romfile=",
            *args,
        ]  # fmt: skip
        self.started = time.monotonic()
        self.proc = subprocess.Popen(netns.in_ns(NS, *cmd), stderr=subprocess.PIPE)

    def text(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_for(self, pattern: str) -> tuple[re.Match[str], float]:
        """The first console line matching ``pattern``, and when (s since start)."""
        while time.monotonic() - self.started < BOOT_LIMIT:
            if found := re.search(pattern, self.text()):
                return found, time.monotonic() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
        pytest.fail(f"no {pattern!r} on the console within {BOOT_LIMIT} s: {err}\n{self.text()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_ramdisk_leases_on_bootif_and_its_agent_looks_up_and_heartbeats(
    images: Images, net: Net
) -> None:
    mac = "52:54:00:79:00:01"
    disk, drive = net.dir / "ramdisk-disk.img", net.dir / "ramdisk-drive.img"
    for path, size in ((disk, 32 << 20), (drive, 1 << 20)):
        with path.open("wb") as fh:
            fh.truncate(size)
    append = (
        f"console=ttyS0 quiet BOOTIF=01-{mac.replace(':', '-')} "
        f"ipa-api-url=http://{SERVER}:{STUB_PORT}"
    )
    guest = Guest(
        net,
        "ramdisk",
        [
            *("-kernel", str(images.vmlinux), "-initrd", str(images.ramdisk), "-append", append),
            *("-drive", f"file={disk},format=raw,if=virtio,index=0"),
            *("-drive", f"file={drive},format=raw,if=virtio,index=1"),
        ],
        mac,
    )
    try:
        lease, leased_at = guest.wait_for(r"metalnic-ramdisk: lease (10\.79\.0\.\d+)/24 on (\w+)")
        ip = lease.group(1)
        guest.wait_for(r"metalnic-ramdisk: agent starting: .*--mac " + re.escape(mac))
        _, looked_up_at = guest.wait_for(r"(?m)^metalnic-ramdisk: looked up node")
        _, beat_at = guest.wait_for(r"(?m)^metalnic-ramdisk: heartbeat accepted")
        started = time.monotonic()
        result = _command(ip, "standby.prepare_image", {
            "image_info": {"urls": [f"http://{SERVER}:{STUB_PORT}/disk.img"],
                           "os_hash_value": images.instance_sha256},
            "configdrive": {"meta_data": {"hostname": "him-deployed"}},
        })  # fmt: skip
        written_in = time.monotonic() - started
    finally:
        guest.stop()
    assert result["command_status"] == "SUCCEEDED", result
    assert result["command_result"] == {
        "os_hash_algo": "sha256",
        "os_hash_value": images.instance_sha256,
    }
    size = images.instance.stat().st_size
    with disk.open("rb") as fh:
        assert hashlib.sha256(fh.read(size)).hexdigest() == images.instance_sha256
    head = drive.read_bytes()[:4096]
    assert json.loads(head.split(b"\0", 1)[0]) == {"meta_data": {"hostname": "him-deployed"}}
    log = net.log()
    lookups = [e for e in log if str(e["path"]).startswith("/v1/lookup")]
    assert lookups and f"addresses={mac.replace(':', '%3A')}" in str(lookups[0]["path"])
    beats = [e for e in log if e["method"] == "POST"]
    assert beats, log
    body = beats[0]["body"]
    assert isinstance(body, dict)
    assert body["callback_url"] == f"http://{ip}:9999" and body["agent_token"] == "him-token"
    assert beats[0].get("status") == {"version": "metalnic-ramdisk"}, beats[0]
    print(
        f"ramdisk (vmlinux direct): lease {ip} at {leased_at:.1f} s, lookup at "
        f"{looked_up_at:.1f} s, heartbeat at {beat_at:.1f} s; image ({size >> 20} MiB) "
        f"written and verified in {written_in:.1f} s"
    )


def _command(ip: str, name: str, params: dict[str, object]) -> dict[str, object]:
    """A command to the ramdisk agent, from the namespace (as the conductor sends it)."""
    send = (
        "import json, sys, urllib.request as u; r = u.Request(sys.argv[1], data=sys.argv[2]"
        ".encode(), headers={'Content-Type': 'application/json', 'X-Agent-Token': 'him-token'}); "
        "print(u.urlopen(r, timeout=50).read().decode())"
    )
    body = json.dumps({"name": name, "params": params})
    url = f"http://{ip}:9999/v1/commands/?wait=true"
    answer: dict[str, object] = json.loads(
        netns.run(netns.in_ns(NS, sys.executable, "-c", send, url, body))
    )
    return answer


def test_instance_image_boots_from_disk_names_itself_and_answers_ping_and_http(
    images: Images, net: Net
) -> None:
    disk = net.dir / "instance.img"
    shutil.copy(images.instance, disk)
    drive = net.dir / "config-drive.img"
    meta = {"meta_data": {"hostname": "him-inst1", "uuid": "him"}, "user_data": None}
    drive.write_bytes(json.dumps(meta).encode() + b"\0" * (1 << 20))
    guest = Guest(
        net,
        "instance",
        [
            "-drive",
            f"file={disk},format=raw,if=virtio,index=0",
            "-drive",
            f"file={drive},format=raw,if=virtio,index=1",
        ],  # fmt: skip
        "52:54:00:79:00:02",
    )
    try:
        lease, leased_at = guest.wait_for(r"metalnic-instance: lease (10\.79\.0\.\d+)/24")
        ip = lease.group(1)
        guest.wait_for(r"metalnic-instance: ready")
        assert "metalnic-instance: hostname him-inst1" in guest.text()
        assert " him-inst1 " in (net.dir / "leases").read_text()  # sent as DHCP option 12
        ping = netns.run(netns.in_ns(NS, "ping", "-c", "1", "-W", "5", ip), check=False)
        assert " 0% packet loss" in ping, ping
        # (not busybox wget: the host's segfaults on this answer)
        fetch = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=9).read())"
        page = netns.run(netns.in_ns(NS, sys.executable, "-c", fetch, f"http://{ip}:80/"))
        assert page.strip() == repr(f"metalnic-instance him-inst1 {ip}\n".encode())
    finally:
        guest.stop()
    print(f"instance (from disk): lease {ip} at {leased_at:.1f} s after QEMU started")
