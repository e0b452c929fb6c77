"""Which extracted files go into an initramfs, and the archive made of them.

* :func:`python_files`: the interpreter and the standard library of Debian's
  ``python3.11-minimal`` / ``libpython3.11-*`` packages, minus what the ramdisk
  agent never imports (tests, Tk, IDLE, curses, sqlite, readline, TLS …) —
  every megabyte is unpacked by an emulated CPU at each boot;
* :func:`library_closure`: the shared libraries those ELF files need, found by
  their ``DT_NEEDED`` sonames in the extracted library directories (not the
  host's: ``ldd`` would answer for the host), plus the dynamic loader;
* :func:`compile_stdlib`: ``.pyc`` files made by the extracted interpreter
  itself (Debian's packages ship none: ``py3compile`` makes them at install),
  as unchecked hashes so that the archive's fixed timestamps do not stale them;
* :func:`base_archive`: busybox, the kernel modules in load order and the
  shared ``/init`` helpers, common to the ramdisk and the instance.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from metalnic.lab.images import elf
from metalnic.lab.images.cpio import Cpio
from metalnic.lab.images.debs import ImageBuildError

PYTHON = "usr/bin/python3.11"
STDLIB = "usr/lib/python3.11"
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
LOADER = "lib64/ld-linux-x86-64.so.2"
# Standard-library packages the agent (http.server, urllib, json, hashlib,
# logging, argparse, threading) never reaches.
STDLIB_DROPPED = frozenset(
    {
        "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data",
        "distutils", "venv", "sqlite3", "dbm", "curses", "unittest", "asyncio", "xmlrpc",
        "msilib", "site-packages", "dist-packages", "__phello__", "xml", "multiprocessing",
        "wsgiref", "ctypes", "concurrent", "zoneinfo", "tomllib", "pydoc.py", "turtle.py",
        "doctest.py", "_pydecimal.py", "pdb.py", "mailbox.py", "imaplib.py", "smtplib.py",
        "nntplib.py", "ftplib.py", "tarfile.py", "zipfile.py", "_pyio.py", "pickletools.py",
        "difflib.py", "cProfile.py", "profile.py", "trace.py",
    }
)  # fmt: skip
# Extension modules dropped, and with them the libraries only they need (the
# package closure skips those: see builder.PACKAGE_SKIP).  hashlib's sha256 is
# built into Debian's interpreter, so _hashlib (libcrypto) is not needed.
DYNLOAD_DROPPED = (
    "_test", "_xx", "xxlimited", "_ctypes_test", "_sqlite3", "_curses", "readline", "_dbm",
    "_gdbm", "nis", "_ssl", "_hashlib", "_tkinter", "ossaudiodev", "_crypt", "_asyncio",
)  # fmt: skip
# dlopen()ed, so no DT_NEEDED names it: glibc loads libgcc_s when a thread exits.
DLOPENED = ("libgcc_s.so.1",)


def python_files(root: Path) -> list[str]:
    """Paths (relative to ``root``) of the interpreter and the kept standard library:
    its compiled modules without their sources (``compile_stdlib(legacy=True)``
    put each ``.pyc`` where its ``.py`` is, so Python imports it sourceless; this
    halves the archive) and its extension modules and data files."""
    if not (root / PYTHON).is_file():
        raise ImageBuildError(f"{PYTHON} is not in the extracted packages")
    kept = [PYTHON]
    stdlib = root / STDLIB
    for path in sorted(stdlib.rglob("*")):
        rel = path.relative_to(stdlib)
        top = rel.parts[0]
        if {top, top.removesuffix("c")} & STDLIB_DROPPED or top.startswith("config-"):
            continue  # (a dropped "pydoc.py" drops its "pydoc.pyc")
        if "__pycache__" in rel.parts or path.suffix == ".exe":
            continue
        if path.suffix == ".py" and path.with_suffix(".pyc").exists():
            continue
        if rel.parts[0] == "lib-dynload" and path.name.startswith(DYNLOAD_DROPPED):
            continue
        if path.is_file() or path.is_symlink():
            kept.append(f"{STDLIB}/{rel}")
    return kept


def resolve_in(root: Path, rel: str) -> str:
    """``rel`` with its symlinks followed *inside* ``root`` (Debian's loader link
    is absolute: ``/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…``)."""
    for _ in range(40):
        path = root / rel
        if not path.is_symlink():
            return rel
        target = os.readlink(path)
        joined = target if target.startswith("/") else f"{os.path.dirname(rel)}/{target}"
        rel = os.path.normpath(joined).lstrip("/")
    raise ImageBuildError(f"too many symlinks at {rel}")


def _find_soname(root: Path, soname: str) -> str | None:
    for directory in LIB_DIRS:
        if os.path.lexists(root / directory / soname):
            return f"{directory}/{soname}"
    return None


def library_closure(root: Path, objects: Iterable[str]) -> list[str]:
    """The loader and every library the ELF ``objects`` need, transitively (paths
    relative to ``root``; a soname that is a symlink brings its target too).  A
    soname no extracted package provides fails the build, naming who needs it."""
    todo = [o for o in objects if elf.is_elf((root / o).read_bytes()[:4])]
    wanted: dict[str, str] = {}
    for soname in DLOPENED:
        if (found := _find_soname(root, soname)) is not None:
            wanted[found] = "glibc"
    todo += list(wanted)
    seen: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for soname in elf.needed((root / resolve_in(root, current)).read_bytes()):
            found = _find_soname(root, soname)
            if found is None:
                if soname == "ld-linux-x86-64.so.2":
                    continue
                raise ImageBuildError(
                    f"{current} needs {soname}, which no extracted package provides"
                )
            wanted.setdefault(found, current)
            todo.append(found)
    if not os.path.lexists(root / LOADER):
        raise ImageBuildError(f"the dynamic loader {LOADER} is not in the extracted packages")
    out = {LOADER}
    for path in (*wanted, LOADER):
        out.add(path)
        out.add(resolve_in(root, path))
    return sorted(out)


def compile_stdlib(root: Path, dirs: Iterable[str], legacy: bool = False) -> None:
    """``.pyc`` for every kept module of ``dirs``, compiled by the extracted
    interpreter: in ``__pycache__``, or beside the source when ``legacy``."""
    env = {"PYTHONHOME": str(root / "usr"), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    loader = root / resolve_in(root, LOADER)
    skip = "|".join(sorted(re.escape(name) for name in STDLIB_DROPPED))
    args = [str(loader), "--library-path", ":".join(str(root / d) for d in LIB_DIRS)]
    options = ["-q", "-j", "0", "--invalidation-mode", "unchecked-hash", *(["-b"] * legacy)]
    run = subprocess.run(
        [*args, str(root / PYTHON), "-S", "-m", "compileall", *options,
         "-x", f"/python3\\.11/({skip})(/|$)", *(str(root / d) for d in dirs)],
        env=env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if run.returncode != 0:
        raise ImageBuildError(f"compiling the standard library failed: {run.stderr[-800:]}")


def add_paths(archive: Cpio, root: Path, paths: Iterable[str]) -> None:
    """Each path (and its parent directories) from ``root`` into ``archive``."""
    for rel in paths:
        parts = Path(rel).parts
        for i in range(1, len(parts)):
            archive.directory("/".join(parts[:i]))
        path = root / rel
        if path.is_symlink():
            archive.symlink(rel, os.readlink(path))
        elif path.is_dir():
            archive.directory(rel)
        else:
            archive.file(rel, path.read_bytes(), executable=bool(path.stat().st_mode & 0o111))


def init_file(name: str) -> bytes:
    return resources.files("metalnic.lab.images").joinpath("files", name).read_bytes()


INIT_FILES = ("common.sh", "udhcpc.sh", "ramdisk-init.sh", "instance-init.sh", "sshd.sh")


def base_archive(busybox: Path, modules: list[tuple[str, bytes]], init: str) -> Cpio:
    """busybox (static) as ``/bin/busybox``, the modules (in load order) with
    ``/lib/modules/load-order``, the helpers in ``/lib/metalnic`` and ``init``
    (a file of ``files/``) as ``/init``."""
    archive = Cpio()
    for d in ("bin", "dev", "lib", "lib/modules", "lib/metalnic", "proc", "run", "sys", "tmp"):
        archive.directory(d)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3)
    archive.file("bin/busybox", busybox.read_bytes(), executable=True)
    archive.symlink("bin/sh", "busybox")
    for name, data in modules:
        archive.file(f"lib/modules/{name}.ko", data)
    archive.file("lib/modules/load-order", "".join(f"{n}\n" for n, _ in modules).encode())
    archive.file("lib/metalnic/common.sh", init_file("common.sh"))
    archive.file("lib/metalnic/udhcpc.sh", init_file("udhcpc.sh"), executable=True)
    archive.file("init", init_file(init), executable=True)
    return archive
