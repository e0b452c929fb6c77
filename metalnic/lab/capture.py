"""Packet captures in the lab: ``tcpdump`` on a link inside a namespace, and a reader
for what it wrote (classic pcap, Ethernet frames, 802.1Q tags)."""

from __future__ import annotations

import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from metalnic.lab import netns

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}


@dataclass(frozen=True)
class Frame:
    time: float  # seconds since the epoch
    src: str
    dst: str
    vlan: int | None
    ethertype: int


class Capture:
    """``tcpdump -i DEV -w FILE`` in ``namespace`` until ``stop``."""

    def __init__(self, namespace: str, device: str, path: Path) -> None:
        self.namespace, self.device, self.path = namespace, device, path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Capture:
        # --immediate-mode: each packet handed over as it arrives (libpcap otherwise retires
        # its ring's blocks up to ~1 s late, and a block not yet retired when tcpdump stops
        # is lost: the last packets of a test); -U: each written at once; -Z root: no
        # privilege drop, so it can keep writing.
        cmd = ["tcpdump", "-i", self.device, "-n", "--immediate-mode", "-U", "-Z", "root",
               "-w", str(self.path)]  # fmt: skip
        self.proc = subprocess.Popen(
            netns.in_ns(self.namespace, *cmd),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        # tcpdump says "listening on …" once the capture is open.
        line = self.proc.stderr.readline().decode()
        if "listening on" not in line:
            self.stop()
            raise netns.LabError(f"tcpdump on {self.device} did not start: {line.strip()}")
        return self

    def stop(self) -> list[Frame]:
        if self.proc is not None:
            time.sleep(0.2)  # the last packets in flight
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
        return read_pcap(self.path) if self.path.exists() else []


def read_pcap(path: Path) -> list[Frame]:
    data = path.read_bytes()
    if len(data) < 24 or data[:4] not in _PCAP_MAGIC:
        return []
    order = _PCAP_MAGIC[data[:4]]
    frames = []
    offset = 24
    while offset + 16 <= len(data):
        sec, usec, caplen, _origlen = struct.unpack(order + "IIII", data[offset : offset + 16])
        packet = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if len(packet) < 14:
            continue
        ethertype = int.from_bytes(packet[12:14], "big")
        vlan = None
        if ethertype == 0x8100 and len(packet) >= 18:
            vlan = int.from_bytes(packet[14:16], "big") & 0x0FFF
            ethertype = int.from_bytes(packet[16:18], "big")
        frames.append(
            Frame(sec + usec / 1e6, _mac(packet[6:12]), _mac(packet[0:6]), vlan, ethertype)
        )
    return frames


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
