"""What the builder reads out of binaries: ELF ``DT_NEEDED``, a kernel module's
``.modinfo``, and the compressed kernel inside a ``bzImage``.

Written here rather than calling ``readelf``/``modinfo``/``ldd`` because those
read the *host's* view (``ldd`` resolves against the host's libraries, and
binutils is not installed) while the builder must decide from the files it
extracted from the packages.  Only the few fields it needs are parsed: 64-bit
little-endian ELF (x86-64), the bzImage setup header of the Linux boot
protocol (``setup_sects`` at 0x1f1, ``payload_offset``/``payload_length`` at
0x248/0x24c), and an xz payload (Debian's kernel), which Python's ``lzma``
unpacks — BCJ x86 filter included.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Mapping

from metalnic.lab.images.debs import ImageBuildError

ELF_MAGIC = b"\x7fELF"
SHT_DYNAMIC = 6
DT_NEEDED = 1


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


def _sections(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(name offset, type, file offset, size, link) of each section header."""
    if not is_elf(data) or data[4] != 2 or data[5] != 1:
        raise ImageBuildError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    out = []
    for i in range(shnum):
        name, kind, _flags, _addr, offset, size, link = struct.unpack_from(
            "<IIQQQQI", data, shoff + i * shentsize
        )
        out.append((name, kind, offset, size, link))
    return out


def _string(data: bytes, offset: int) -> str:
    return data[offset : data.index(b"\0", offset)].decode()


def needed(data: bytes) -> list[str]:
    """The sonames an ELF object names as ``DT_NEEDED`` (none for a static binary)."""
    sections = _sections(data)
    for _name, kind, offset, size, link in sections:
        if kind != SHT_DYNAMIC:
            continue
        strtab = sections[link][2]
        names = []
        for pos in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == DT_NEEDED:
                names.append(_string(data, strtab + value))
        return names
    return []


def modinfo(data: bytes) -> dict[str, str]:
    """A kernel module's ``.modinfo`` (``name``, ``depends`` …; first value of a key)."""
    sections = _sections(data)
    shstrndx = struct.unpack_from("<H", data, 0x3E)[0]
    names_at = sections[shstrndx][2]
    for name, _kind, offset, size, _link in sections:
        if _string(data, names_at + name) == ".modinfo":
            info: dict[str, str] = {}
            for item in data[offset : offset + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, value)
            return info
    raise ImageBuildError("no .modinfo section: not a kernel module")


def load_order(depends: Mapping[str, list[str]], roots: list[str]) -> list[str]:
    """The modules ``roots`` need, each after those it depends on (``virtio_ring``
    before ``virtio``), roots in the order given.  A dependency without a module
    fails the build: it would fail ``insmod`` at boot."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, parent: str) -> None:
        if name in order:
            return
        if name not in depends:
            raise ImageBuildError(f"kernel module {name} (needed by {parent}) is not in the kernel")
        if name in visiting:
            raise ImageBuildError(f"kernel modules depend on each other in a cycle at {name}")
        visiting.add(name)
        for dep in depends[name]:
            visit(dep, name)
        order.append(name)

    for root in roots:
        visit(root, "the image")
    return order


def bzimage_payload(data: bytes) -> bytes:
    """The uncompressed kernel (``vmlinux``, an ELF QEMU boots directly through its
    PVH entry point) from a ``bzImage``."""
    if data[0x202:0x206] != b"HdrS":
        raise ImageBuildError("not a bzImage (no HdrS setup header)")
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = data[start : start + length]
    if not payload.startswith(b"\xfd7zXZ\x00"):
        raise ImageBuildError(f"the kernel payload is not xz (starts {payload[:6].hex()})")
    vmlinux = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if not is_elf(vmlinux):
        raise ImageBuildError("the unpacked kernel is not an ELF file")
    return vmlinux
