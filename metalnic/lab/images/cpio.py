"""A gzip-compressed ``newc`` cpio archive: the format the kernel unpacks an initramfs from.

Written here (about forty lines) instead of running ``busybox cpio -o -H newc``
because this way every entry is owned by root whatever user builds it, every
timestamp is fixed (the same inputs give the same bytes, so the sha256 of an
image says which inputs made it), and ``/dev/console`` can be a device node
without ``mknod`` rights — the kernel opens it for ``/init``'s stdin/stdout
before devtmpfs is mounted.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
from pathlib import Path

MTIME = 1_700_000_000  # fixed: reproducible archives


class Cpio:
    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._ino = 1000
        self._names: set[str] = set()

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        name = name.strip("/")
        if name in self._names:
            return  # the first wins: callers add what matters most first
        self._names.add(name)
        self._ino += 1
        encoded = name.encode() + b"\0"
        fields = (
            self._ino, mode, 0, 0, 1, MTIME, len(data), 0, 0, rdev[0], rdev[1],
            len(encoded), 0,
        )  # fmt: skip
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + encoded)
        self._out.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self._out.write(data + b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self._entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def names(self) -> set[str]:
        return set(self._names)

    def tree(self, root: Path, prefix: str = "") -> None:
        """Everything under ``root`` (files keep their executable bit, symlinks stay
        links), as ``prefix/<relative path>``, in sorted order."""
        for path in sorted(root.rglob("*")):
            name = f"{prefix}/{path.relative_to(root)}".strip("/")
            if path.is_symlink():
                self.symlink(name, os.readlink(path))
            elif path.is_dir():
                self.directory(name)
            else:
                self.file(name, path.read_bytes(), executable=bool(path.stat().st_mode & 0o111))

    def gzipped(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return gzip.compress(self._out.getvalue(), compresslevel=6, mtime=0)
