"""The lab's pcap reader: 802.1Q tags, and the DHCP message type the packet proofs
order a firmware's DHCPDISCOVER by."""

from __future__ import annotations

import struct
from pathlib import Path

from metalnic.lab.capture import DHCPDISCOVER, DHCPOFFER, dhcp_message, read_pcap

MAC_A, MAC_B = bytes.fromhex("525400000001"), bytes.fromhex("ffffffffffff")


def _ipv4_udp(sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes(4), bytes([255] * 4))  # fmt: skip
    return header + udp


def _bootp(options: bytes) -> bytes:
    fixed = bytes([1, 1, 6, 0]) + bytes(24) + MAC_A + bytes(202)  # chaddr at 28
    return fixed + b"\x63\x82\x53\x63" + options + b"\xff"


def _frame(ip: bytes, vlan: int | None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return MAC_B + MAC_A + tag + b"\x08\x00" + ip


def _pcap(path: Path, frames: list[bytes]) -> None:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, frame in enumerate(frames):
        data += struct.pack("<IIII", 1000 + i, 500000, len(frame), len(frame)) + frame
    path.write_bytes(data)


def test_a_tagged_dhcpdiscover_is_read_with_its_vlan_and_type(tmp_path: Path) -> None:
    discover = _ipv4_udp(68, 67, _bootp(b"\x00\x35\x01\x01"))  # a pad, then option 53
    offer = _ipv4_udp(67, 68, _bootp(b"\x0c\x02ab\x35\x01\x02"))  # hostname first
    dns = _ipv4_udp(5353, 53, _bootp(b"\x35\x01\x01"))  # not DHCP's ports
    _pcap(tmp_path / "c.pcap", [_frame(discover, 100), _frame(offer, None), _frame(dns, 100)])
    frames = read_pcap(tmp_path / "c.pcap")
    client = "52:54:00:00:00:01"
    assert [(f.vlan, f.ethertype, f.dhcp, f.dhcp_client) for f in frames] == [
        (100, 0x0800, DHCPDISCOVER, client),
        (None, 0x0800, DHCPOFFER, client),
        (100, 0x0800, None, None),
    ]
    assert frames[0].src == client and frames[0].time == 1000.5


def test_what_is_not_dhcp_has_no_type() -> None:
    assert dhcp_message(b"") is None
    assert dhcp_message(_ipv4_udp(68, 67, bytes(300))) is None  # no magic cookie
    assert dhcp_message(_ipv4_udp(68, 67, _bootp(b"\x0c\x05"))) is None  # truncated option
    tcp = bytearray(_ipv4_udp(68, 67, _bootp(b"\x35\x01\x01")))
    tcp[9] = 6
    assert dhcp_message(bytes(tcp)) is None
