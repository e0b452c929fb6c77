"""``metalnic lab up|status|down|console``: the virtual data centre (metalnic.lab.datacentre)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metalnic.lab.description import Host, LabDescription


def add_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="the virtual data centre: smart NICs, fabric, hosts (root)")
    acts = lab.add_subparsers(dest="action", required=True)
    for action, text in (
        ("up", "build it (idempotent; a broken one is rebuilt)"),
        ("status", "show it and what is wrong with it"),
        ("down", "remove everything it made, and nothing else"),
        ("console", "print a VM host's serial console (firmware, ramdisk, instance)"),
    ):
        p = acts.add_parser(action, help=text)
        if action == "console":
            p.add_argument("host", help="the host's name (host1, host2, …)")
            p.add_argument("--follow", "-f", action="store_true", help="keep printing (tail -f)")
        p.add_argument("--name", default="demo", help="the lab's name (default: demo)")
        p.add_argument(
            "--dir",
            type=Path,
            help="its state directory "
            "(default: $METALNIC_LAB_DIR/<name> or /var/lib/metalnic-lab/<name>)",
        )
        if action != "console":
            p.add_argument("--json", action="store_true", help="print the description as JSON")
        if action == "up":
            p.add_argument(
                "--hosts",
                choices=("netns", "vm"),
                default="netns",
                help="hosts as network namespaces (default, fast) or QEMU machines "
                "(TCG) that really boot, on a tap that is port B",
            )
            p.add_argument("--local-nics", type=int, default=2)
            p.add_argument("--remote-nics", type=int, default=2)
            p.add_argument(
                "--provisioning-subnet",
                default="10.99.0.0/24",
                help="IPv4 subnet of the provisioning network (server: its first address)",
            )
            p.add_argument(
                "--api-port",
                type=int,
                default=6385,
                help="the server's port, as the hosts' ramdisk reaches it (default 6385)",
            )
        p.set_defaults(func=run, client=False)
    _add_build_images(acts)


def _add_build_images(acts: Any) -> None:
    p = acts.add_parser(
        "build-images",
        help="build the QEMU hosts' kernel, ramdisk and instance image from Debian packages",
    )
    p.add_argument(
        "--cache",
        type=Path,
        help="cache directory (default: $METALNIC_IMAGE_CACHE, else "
        "/var/cache/metalnic/images as root, ~/.cache/metalnic/images otherwise)",
    )
    p.add_argument("--json", action="store_true", help="print where everything is as JSON")
    p.set_defaults(func=build_images, client=False)


def build_images(a: argparse.Namespace) -> None:
    from metalnic.lab import images

    try:
        built = images.build(a.cache, say=(lambda _line: None) if a.json else print)
    except images.ImageBuildError as exc:
        raise SystemExit(f"error: the images could not be built: {exc}") from None
    where = {
        "vmlinuz": str(built.vmlinuz),
        "vmlinux": str(built.vmlinux),
        "ramdisk": str(built.ramdisk),
        "instance": str(built.instance),
        "instance_sha256": built.instance_sha256,
        "cached": built.cached,
    }
    if a.json:
        print(json.dumps(where, indent=1))
        return
    for key in ("vmlinuz", "vmlinux", "ramdisk", "instance", "instance_sha256"):
        print(f"  {key:16} {where[key]}")


def run(a: argparse.Namespace) -> None:
    from metalnic.lab import datacentre
    from metalnic.lab.netns import LabError

    directory = a.dir or datacentre.default_dir(a.name)
    if a.action == "console":
        _console(directory, a.host, a.follow)
        return
    if os.geteuid() != 0:
        raise SystemExit("error: the lab needs root (network namespaces, Open vSwitch)")
    spec = datacentre.LabSpec(
        a.name,
        getattr(a, "local_nics", 2),
        getattr(a, "remote_nics", 2),
        getattr(a, "provisioning_subnet", "10.99.0.0/24"),
        getattr(a, "api_port", 6385),
        getattr(a, "hosts", "netns"),
    )
    if a.action == "down":
        datacentre.teardown(spec.prefix, directory)
        print(f"lab {a.name} is down")
        return
    if a.action == "status":
        description = datacentre.describe(directory)
        if description is None:
            print(f"lab {a.name} is not up")
            sys.exit(3)
        problems = datacentre.problems(description)
        _show(description, a.json)
        for problem in problems:
            print(f"problem: {problem}")
        sys.exit(1 if problems else 0)
    try:
        description = datacentre.up(spec, directory)
    except LabError as exc:
        raise SystemExit(
            f"error: the lab could not be built (nothing left behind): {exc}"
        ) from None
    if description.get("already_up"):
        print(f"lab {a.name} is already up")
    _show(description, a.json)


def _show(description: LabDescription, as_json: bool) -> None:
    if as_json:
        print(json.dumps(description, indent=1))
        return
    print(f"lab {description['name']} (prefix {description['prefix']}, {description['dir']})")
    prov = description["provisioning"]
    print(
        f"  provisioning: VLAN {prov['vlan']}, server side {prov['server_ip']}/{prov['prefix']} "
        f"on {prov['leg']}; the hosts' ramdisk calls {prov.get('api_url', '?')}"
    )
    if "pool" in prov:
        print(f"  provisioning leases (DHCP): {prov['pool'][0]} – {prov['pool'][1]}")
    if "images" in description:
        print(f"  image: {description['images']['url']} (sha256 {description['images']['sha256']})")
    if "bmc" in description:
        print(
            f"  BMC: Redfish at {description['bmc']['url']} (user "
            f"{description['bmc']['username']}, password in {description['bmc']['password_file']})"
        )
    for nic in description["nics"]:
        print(f"  {nic['name']:6} {nic['mode']:6} ovsdb {nic['ovsdb']}")
    for host in description["hosts"]:
        where = (
            f"VM on tap {host['port_b']} (= port B; console {host['vm']['console']})"
            if "vm" in host
            else f"port A {host['port_a']} (netns {host['netns']}) ↔ port B {host['port_b']}"
        )
        print(f"  {host['name']:6} behind {host['nic']:6} mac {host['mac']}  {where}{_bmc(host)}")


def _console(directory: Path, host: str, follow: bool) -> None:
    """The host's serial console as captured (all power-ons, each marked); with
    ``follow``, then what it prints next, until interrupted."""
    home = directory / "hosts" / host
    path = home / "console.log"
    if not home.is_dir():
        raise SystemExit(f"error: no host {host!r} in the lab at {directory}")
    if not path.exists() and not follow:
        raise SystemExit(
            f"error: {host} has no serial console yet (a namespace host never has one: "
            f"see {home / 'events.log'})"
        )
    offset = 0
    try:
        while True:
            if path.exists():
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                    offset = fh.tell()
                if chunk:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
            if not follow:
                return
            time.sleep(0.3)
    except KeyboardInterrupt:
        return


def _bmc(host: Host) -> str:
    if host.get("bmc") == "ipmi":
        return f", IPMI BMC {host['ipmi_address']}:{host['ipmi_port']}/udp"
    if host.get("bmc") == "redfish":
        return f", Redfish system {host['redfish_system_id']}"
    return ""
