"""The image the lab's deploys write, and where the hosts download it from.

Namespace hosts write it to a file, so any bytes do: a small deterministic
sample (its checksum is stable, nothing to build).  A QEMU host boots what was
written, so its lab serves the instance image built from Debian packages
(``metalnic.lab.images``: a disk whose OS leases its address by DHCP).  Either
is served by the host simulators' process from ``<dir>/images/disk.img`` on the
provisioning address.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from metalnic.lab import netns
from metalnic.lab.description import Images

SAMPLE_SIZE = 4 << 20


def deploy_image(directory: Path, server_ip: str, hosts: str) -> Images:
    root = directory / "images"
    root.mkdir(exist_ok=True)
    target = root / "disk.img"
    if hosts == "vm":
        from metalnic.lab.images import instance_image

        built, sha256 = instance_image()
        shutil.copyfile(built, target)
    else:
        block = b"METALNIC LAB DISK IMAGE\n" + bytes(range(256)) * 16
        image = (block * (SAMPLE_SIZE // len(block) + 1))[:SAMPLE_SIZE]
        target.write_bytes(image)
        sha256 = hashlib.sha256(image).hexdigest()
    port = netns.free_port(server_ip)
    return {
        "address": server_ip,
        "port": port,
        "url": f"http://{server_ip}:{port}/disk.img",
        "sha256": sha256,
    }
