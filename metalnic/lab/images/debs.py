"""Debian packages as the images' only source: which ones, which versions, their files.

The builder takes every file it puts in an image from a Debian package of the
machine's own archive (``apt-get download`` + ``dpkg-deb``), never from the
running system and never from elsewhere, so an image is reproducible from the
package versions alone — which is also what its cache key is made of.

* :func:`parse_stanzas` / :func:`parse_depends` read ``apt-cache show`` output
  and a ``Depends`` field (alternatives ``a | b`` take the first the archive
  has; version constraints are not checked: the archive's candidate is what
  ``apt-get download`` fetches anyway);
* :func:`closure` walks ``Depends`` and ``Pre-Depends`` from the roots, minus
  packages the caller knows it needs nothing from (each skip is a decision the
  ELF check in ``rootfs`` backs: a library that a kept binary needs and that
  is missing fails the build, naming the soname);
* :class:`Archive` runs ``apt-cache``/``apt-get``/``dpkg-deb``; a downloaded
  ``.deb`` is kept in the cache's ``debs/`` directory and reused.

No python-apt: it would be one more package on the host for two commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from metalnic.jsontypes import JSONObject

_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?")


class ImageBuildError(Exception):
    """The images could not be built; the message says what is missing."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str
    depends: tuple[str, ...]  # alternatives groups, each "a | b"

    def to_json(self) -> JSONObject:
        return {"name": self.name, "version": self.version, "architecture": self.architecture,
                "depends": list(self.depends)}  # fmt: skip

    @classmethod
    def from_json(cls, data: JSONObject) -> Package:
        depends = data["depends"]
        assert isinstance(depends, list)
        fields = (str(data["name"]), str(data["version"]), str(data["architecture"]))
        return cls(*fields, tuple(str(d) for d in depends))

    @property
    def filename(self) -> str:
        """The name ``apt-get download`` gives the file (epoch colon quoted as %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"


def parse_stanzas(text: str) -> dict[str, Package]:
    """``apt-cache show --no-all-versions`` output → packages by name (first stanza wins)."""
    found: dict[str, Package] = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _sep, value = line.partition(":")
                fields[key] = value.strip()
        name = fields.get("Package")
        if not name or name in found:
            continue
        groups = [
            *parse_depends(fields.get("Pre-Depends", "")),
            *parse_depends(fields.get("Depends", "")),
        ]
        found[name] = Package(
            name, fields.get("Version", ""), fields.get("Architecture", "all"), tuple(groups)
        )
    return found


def parse_depends(field: str) -> list[str]:
    """``"a (>= 1), b | c:any"`` → ``["a", "b | c"]`` (names only, in order)."""
    groups = []
    for group in field.split(","):
        names = [m.group(1) for alt in group.split("|") if (m := _NAME.match(alt))]
        if names:
            groups.append(" | ".join(names))
    return groups


def closure(
    roots: Iterable[str],
    lookup: Callable[[list[str]], Mapping[str, Package]],
    skip: frozenset[str] = frozenset(),
) -> dict[str, Package]:
    """Every package reachable from ``roots`` through their dependencies, minus
    ``skip``.  ``lookup(names)`` returns the archive's candidates among ``names``
    (asked once per wave; a name it does not know is a virtual or absent package).
    A root the archive does not have fails; an alternatives group none of whose
    members exist fails too, naming the package that wanted it."""
    chosen: dict[str, Package] = {}
    wanted: dict[str, str] = {name: "" for name in roots}  # name -> who wants it
    known: dict[str, Package | None] = {}
    while wanted:
        unknown = sorted({n for group in wanted for n in group.split(" | ")} - known.keys())
        if unknown:
            answer = lookup(unknown)
            known.update({n: answer.get(n) for n in unknown})
        nxt: dict[str, str] = {}
        for group, parent in wanted.items():
            names = group.split(" | ")
            if any(n in chosen or n in skip for n in names):
                continue
            pick = next((known[n] for n in names if known.get(n) is not None), None)
            if pick is None:
                who = f" (wanted by {parent})" if parent else ""
                raise ImageBuildError(f"no Debian package {group!r} in the archive{who}")
            chosen[pick.name] = pick
            for dep in pick.depends:
                nxt.setdefault(dep, pick.name)
        wanted = nxt
    return chosen


class Archive:
    """The machine's apt archive, with downloads kept in ``debs``."""

    def __init__(self, debs: Path) -> None:
        self.debs = debs

    def lookup(self, names: list[str]) -> dict[str, Package]:
        """The candidates among ``names`` (names apt does not know are left out)."""
        out = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", *names],
            capture_output=True,
            text=True,
        )
        # apt-cache exits 100 when any name is unknown but still prints the others.
        return parse_stanzas(out.stdout)

    def one(self, name: str) -> Package:
        """The archive's candidate of ``name`` (without its dependencies)."""
        found = self.lookup([name]).get(name)
        if found is None:
            raise ImageBuildError(f"no Debian package {name!r} in the archive")
        return found

    def resolve(self, roots: Iterable[str], skip: frozenset[str] = frozenset()) -> list[Package]:
        return sorted(closure(roots, self.lookup, skip).values(), key=lambda p: p.name)

    def fetch(self, packages: Sequence[Package]) -> dict[str, Path]:
        """Each package's ``.deb`` (downloaded once, in one ``apt-get download``)."""
        self.debs.mkdir(parents=True, exist_ok=True)
        files = {p.name: self.debs / p.filename for p in packages}
        missing = [p for p in packages if not files[p.name].exists()]
        for path in files.values():
            if path.exists():
                os.utime(path)  # in use (the builder prunes what is unused for a day)
        if missing:
            specs = [f"{p.name}={p.version}" for p in missing]
            run = subprocess.run(
                ["apt-get", "download", "-q", *specs],
                cwd=self.debs,
                capture_output=True,
                text=True,
            )
            absent = [p.filename for p in missing if not files[p.name].exists()]
            if run.returncode != 0 or absent:
                raise ImageBuildError(
                    f"apt-get download failed ({', '.join(absent)}): {run.stderr.strip()[-500:]}"
                )
        return files

    @staticmethod
    def extract(deb: Path, into: Path) -> None:
        """Every file of ``deb`` under ``into`` (``dpkg-deb -x``)."""
        into.mkdir(parents=True, exist_ok=True)
        run = subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], capture_output=True)
        if run.returncode != 0:
            raise ImageBuildError(f"dpkg-deb -x {deb.name}: {run.stderr.decode()[-300:]}")

    @staticmethod
    def extract_some(deb: Path, into: Path, keep: Callable[[str], bool]) -> list[str]:
        """Only the members whose path (``lib/…``, no ``./``) ``keep`` accepts: the
        kernel package holds thousands of modules and the images need about ten."""
        with subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            taken = []
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isfile() and keep(name):
                        member.name = name
                        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                            tar.extract(member, into, filter="data")
                        else:
                            tar.extract(member, into)
                        taken.append(name)
        if proc.returncode != 0:
            raise ImageBuildError(f"dpkg-deb --fsys-tarfile {deb.name} failed")
        return taken
