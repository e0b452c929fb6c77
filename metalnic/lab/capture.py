"""Packet captures in the lab: ``tcpdump`` on a link inside a namespace, and a reader
for what it wrote (classic pcap, Ethernet frames, 802.1Q tags, and the message type of
an IPv4 DHCP packet: the packet proofs tell a firmware's DHCPDISCOVER from its answer)."""

from __future__ import annotations

import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from metalnic.lab import netns

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}
_DHCP_COOKIE = b"\x63\x82\x53\x63"
DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPACK = 1, 2, 3, 5  # option 53 (RFC 2132)


@dataclass(frozen=True)
class Frame:
    time: float  # seconds since the epoch
    src: str
    dst: str
    vlan: int | None
    ethertype: int
    dhcp: int | None = None  # an IPv4 DHCP packet's message type (option 53) ...
    dhcp_client: str | None = None  # ... and the client it is from or for (chaddr)


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
        vlan, payload = None, 14
        if ethertype == 0x8100 and len(packet) >= 18:
            vlan = int.from_bytes(packet[14:16], "big") & 0x0FFF
            ethertype = int.from_bytes(packet[16:18], "big")
            payload = 18
        dhcp = dhcp_message(packet[payload:]) if ethertype == 0x0800 else None
        frames.append(
            Frame(
                sec + usec / 1e6, _mac(packet[6:12]), _mac(packet[0:6]), vlan, ethertype,
                *(dhcp or (None, None)),
            )
        )  # fmt: skip
    return frames


def dhcp_message(ip: bytes) -> tuple[int, str] | None:
    """The DHCP message type and client hardware address of an IPv4 packet (UDP between
    ports 67 and 68), else None."""
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    udp = ip[(ip[0] & 0x0F) * 4 :]
    if len(udp) < 8 or {int.from_bytes(udp[0:2], "big"), int.from_bytes(udp[2:4], "big")} != {
        67,
        68,
    }:
        return None
    bootp = udp[8:]
    if bootp[236:240] != _DHCP_COOKIE:
        return None
    options, i = bootp[240:], 0
    while i < len(options) and options[i] != 255:
        if options[i] == 0:  # pad
            i += 1
            continue
        if i + 1 >= len(options):
            break
        code, length = options[i], options[i + 1]
        if code == 53 and length == 1 and i + 2 < len(options):
            return options[i + 2], _mac(bootp[28:34])
        i += 2 + length
    return None


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
