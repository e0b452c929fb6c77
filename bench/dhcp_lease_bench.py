"""Lease time through a smart NIC: DHCPDISCOVER → DHCPACK, from tcpdump's timestamps.

    sudo .venv/bin/python bench/dhcp_lease_bench.py --rounds 30

The world of tests/root/test_dhcp_agent.py (a server, a ``metalnic agent`` for
the NIC, a ``metalnic dhcp-agent`` on the lab's DHCP node, dnsmasq): host h1,
behind smart NIC nic1, runs ``busybox udhcpc -q`` ``--rounds`` times while
tcpdump captures on its interface; each round is timed from the DISCOVER on
the wire to the ACK on the wire (the exchange through NIC, fabric, DHCP bridge
and dnsmasq, without udhcpc's own start-up), and also from the udhcpc start to
its exit.  Prints the numbers; asserts nothing.  Needs root.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalnic.lab import netns  # noqa: E402
from tests.dhcplab import fabric_world  # noqa: E402

STAMP = re.compile(r"^(\d+\.\d+) ")  # a packet's first line (tcpdump -tt)
KIND = re.compile(r"DHCP-Message \(53\), length 1: (\w+)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with fabric_world(Path(tempfile.mkdtemp(prefix="dhcp-bench-"))) as world:
        host = world.lab.state.hosts["h1"]
        pcap = world.lab.dir / "h1.pcap"
        dump = subprocess.Popen(
            netns.in_ns(world.lab.ns("h1"), "tcpdump", "-i", host.port_a, "-n", "-U", "-w",
                        str(pcap), "udp port 67 or udp port 68"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
        whole = []
        client = world.udhcpc("h1", "-bench")
        for _ in range(args.rounds):
            got, took = client.once()
            assert got is not None, "no lease"
            whole.append(took)
        time.sleep(0.5)
        dump.terminate()
        dump.wait()
        text = subprocess.run(
            ["tcpdump", "-r", str(pcap), "-n", "-tt", "-v"], capture_output=True, text=True
        ).stdout
        wire = _exchanges(text)
    _show("DISCOVER → ACK on the wire", wire)
    _show("udhcpc -q start → exit", whole)


def _exchanges(text: str) -> list[float]:
    """Seconds from each DISCOVER to the next ACK (``tcpdump -v``: the message type is
    a few lines below its packet's timestamp)."""
    out: list[float] = []
    began = stamp = None
    for line in text.splitlines():
        if (at := STAMP.match(line)) is not None:
            stamp = float(at.group(1))
        elif (kind := KIND.search(line)) is not None and stamp is not None:
            if kind.group(1) == "Discover":
                began = stamp
            elif kind.group(1) == "ACK" and began is not None:
                out.append(stamp - began)
                began = None
    return out


def _show(what: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        print(f"{what}: no samples")
        return
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(
        f"{what}: n={len(ms)} median {statistics.median(ms):.1f} ms, "
        f"p95 {p95:.1f} ms, min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
