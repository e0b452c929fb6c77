"""The instance image: a raw disk with one bootable FAT16 partition and syslinux.

Built without mounting anything (no root, no loop devices), with Debian's own
tools: ``sfdisk`` (fdisk) writes the partition table, ``mkfs.fat``
(dosfstools) makes the filesystem at the partition's offset, ``mcopy``
(mtools) puts the kernel, the initramfs and ``syslinux.cfg`` in it,
``syslinux --install --offset`` writes its boot sector and ``ldlinux.sys``,
and the MBR boot code is ``mbr.bin`` from the ``syslinux-common`` package.
SeaBIOS boots it like a disk the instance was deployed to.  Legacy BIOS only:
the lab's QEMU machines run SeaBIOS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from metalnic.lab.images.debs import ImageBuildError

MIB = 1 << 20
PART_START = 2048  # sectors: the partition starts at 1 MiB
TOOLS = {"sfdisk": "fdisk", "mkfs.fat": "dosfstools", "mcopy": "mtools", "syslinux": "syslinux"}
# no_timer_check: under TCG on a loaded machine the kernel's IO-APIC timer check can
# fail and panic ("IO-APIC + timer doesn't work!"; seen with 4 VMs and load 14).
APPEND = "console=ttyS0,115200 quiet no_timer_check"


def missing_tools() -> list[str]:
    """The Debian packages whose tools are not installed (scripts/setup installs them)."""
    return sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})


def syslinux_cfg(append: str = APPEND) -> str:
    lines = ("DEFAULT metalnic", "PROMPT 0", "TIMEOUT 1", "LABEL metalnic", "  KERNEL /vmlinuz")
    return "\n".join((*lines, f"  APPEND initrd=/initrd.gz {append}", ""))


def image_size(payload: int) -> int:
    """Bytes of the disk: the files plus 4 MiB of slack, at least 24 MiB, whole MiB."""
    return max(24 * MIB, -(-(payload + 4 * MIB) // MIB) * MIB)


def _run(*args: str) -> None:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": "1700000000"}
    run = subprocess.run(list(args), capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise ImageBuildError(f"{args[0]} failed: {(run.stderr or run.stdout).strip()[-400:]}")


def build(out: Path, kernel: Path, initrd: Path, mbr: Path, append: str = APPEND) -> None:
    """Write the bootable disk image ``out``."""
    if missing := missing_tools():
        raise ImageBuildError(f"the instance image needs the Debian packages {' '.join(missing)}")
    size = image_size(kernel.stat().st_size + initrd.stat().st_size)
    cfg = out.with_name("syslinux.cfg")
    cfg.write_text(syslinux_cfg(append))
    with out.open("wb") as fh:
        fh.truncate(size)
    table = f"label: dos\nstart={PART_START}, type=6, bootable\n"
    run = subprocess.run(["sfdisk", "-q", str(out)], input=table, capture_output=True, text=True)
    if run.returncode != 0:
        raise ImageBuildError(f"sfdisk failed: {run.stderr.strip()[-400:]}")
    blocks = (size - PART_START * 512) // 1024  # mkfs.fat counts 1 KiB blocks
    _run("mkfs.fat", "-F", "16", "-n", "METALNIC", "-i", "4d4e4943",
         "--offset", str(PART_START), str(out), str(blocks))  # fmt: skip
    image = f"{out}@@{PART_START * 512}"
    for src, name in ((kernel, "vmlinuz"), (initrd, "initrd.gz"), (cfg, "syslinux.cfg")):
        _run("mcopy", "-i", image, str(src), f"::/{name}")
    _run("syslinux", "--install", "--offset", str(PART_START * 512), str(out))
    code = mbr.read_bytes()
    if len(code) > 440:
        raise ImageBuildError(f"{mbr} is {len(code)} bytes: not an MBR boot code")
    with out.open("r+b") as fh:
        fh.write(code)  # 440 bytes at most: the partition table after it stays
    cfg.unlink()
