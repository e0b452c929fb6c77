"""Build (or find in the cache) the lab's kernel, ramdisk and instance image.

Three artifacts, each in ``<cache>/<kind>-<key>/`` where the key is a sha256 of
what made it — the Debian package versions it was built from, the builder's
own source (this package, its ``/init`` scripts) and, for the ramdisk, the
ramdisk agent's source; for the instance image also the versions of the disk
tools.  A build with an existing key does nothing ("cached"); downloaded
``.deb`` files are kept in ``<cache>/debs``.  Each artifact is made in a
staging directory and renamed into place, under a lock on the cache, so a
half-built image is never found and two builds do not race.

* kernel: ``vmlinuz`` of Debian's ``linux-image-amd64`` candidate, its
  uncompressed ``vmlinux`` (boots directly in 2.9 s instead of 7.7 s under
  TCG), and the NIC/disk modules with their dependencies in load order;
* ramdisk: ``initramfs.gz`` — busybox-static, Python from Debian's packages,
  the metalnic ramdisk agent, dropbear's SSH server (``dropbear-bin``: the
  server and its key generator with their libraries, ~0.6 MB; started by /init
  on request, ``files/sshd.sh``: the rescue mode), ``files/ramdisk-init.sh`` as
  ``/init``;
* instance: ``disk.img`` (``disk.build``) booting the same kernel with a
  busybox initramfs (``files/instance-init.sh``), and its sha256.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from metalnic.lab.images import disk, elf, rootfs
from metalnic.lab.images.debs import Archive, Package

KERNEL_META = "linux-image-amd64"
MODULES = ["virtio_pci", "virtio_net", "virtio_blk", "e1000"]
# The ramdisk also loads LIO, the kernel's iSCSI target (the iscsi deploy interface
# exports the disk through it: metalnic.ramdisk.iscsi); the instance does not.
# crc32c: every iSCSI login allocates it through the crypto API, by name (no
# modinfo dependency; without it "iscsi_login_setup_crypto() failed").
TARGET_MODULES = ["crc32c_generic", "target_core_iblock", "target_core_file", "iscsi_target_mod"]
RAMDISK_ROOTS = ["busybox-static", "python3.11-minimal", "libpython3.11-stdlib", "dropbear-bin"]
# The SSH server's files taken from dropbear-bin (not its client or converter).
SSH_FILES = ("usr/sbin/dropbear", "usr/bin/dropbearkey")
# Packages the ramdisk needs no file from: configuration and data packages, and
# the libraries of the extension modules rootfs.DYNLOAD_DROPPED leaves out
# (libcrypt1 is not among them: dropbear checks passwords with it).
PACKAGE_SKIP = frozenset(
    {
        "media-types", "mime-support", "tzdata", "readline-common", "libreadline8",
        "libncursesw6", "libtinfo6", "libsqlite3-0", "libdb5.3", "libnsl2", "libtirpc3",
        "libtirpc-common", "libgssapi-krb5-2", "libssl3", "gcc-12-base",
    }
)  # fmt: skip
AGENT_FILES = (
    "__init__.py",
    "redact.py",
    "jsontypes.py",
    "contract/__init__.py",
    "contract/configdrive.py",
    "ramdisk/__init__.py",
    "ramdisk/agent.py",
    "ramdisk/iscsi.py",
)
SYSLINUX_MBR = "usr/lib/syslinux/mbr/mbr.bin"
PRUNE_AFTER = 24 * 3600.0  # seconds an artifact of other inputs stays unused
APT_LISTS = Path("/var/lib/apt/lists")
APT_CONFIG = Path("/etc/apt")


def default_cache() -> Path:
    """``$METALNIC_IMAGE_CACHE``, else /var/cache/metalnic/images (root) or ~/.cache/…"""
    if env := os.environ.get("METALNIC_IMAGE_CACHE"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/metalnic/images")
    return Path.home() / ".cache" / "metalnic" / "images"


@dataclass
class Images:
    vmlinuz: Path
    vmlinux: Path
    ramdisk: Path
    instance: Path
    instance_sha256: str
    cached: dict[str, bool] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)  # name -> version used


def archive_state(lists: Path = APT_LISTS, config: Path = APT_CONFIG) -> str:
    """A fingerprint of apt's package lists and sources: changes when ``apt-get
    update`` (or a new source) could change what the archive's candidates are."""
    digest = hashlib.sha256()
    paths = [*lists.glob("*Packages*"), *config.glob("sources.list*")]
    paths += [*config.glob("sources.list.d/*"), *config.glob("preferences*")]
    for path in sorted(paths):
        info = path.stat()
        digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _source_hash(extra: list[Path], kernel_only: bool = False) -> str:
    """sha256 over the builder's own source (for the kernel, only the modules that
    make it) and ``extra``: changing them rebuilds."""
    here = Path(__file__).parent
    own = [here / "debs.py", here / "elf.py"]
    if not kernel_only:
        own = [*here.glob("*.py"), *(here / "files").glob("*")]
    digest = hashlib.sha256()
    for path in sorted([*own, *extra]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_key(kind: str, packages: list[Package], source: str, extra: dict[str, str]) -> str:
    """The artifact's directory key: what it is made of, nothing else."""
    material = {
        "kind": kind,
        "packages": sorted(f"{p.name}={p.version}" for p in packages),
        "source": source,
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _agent_sources() -> list[Path]:
    import metalnic

    root = Path(metalnic.__file__).parent
    return [root / name for name in AGENT_FILES]


def _tool_versions() -> dict[str, str]:
    out = {}
    for package in sorted(set(disk.TOOLS.values())):
        run = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
        out[package] = run.stdout.strip() if run.returncode == 0 else "absent"
    return out


def _resolved_name() -> str:
    """The file keeping the archive's answer: for this state of the package lists
    and these roots and skips (adding a root to the ramdisk must resolve again)."""
    asked = json.dumps([KERNEL_META, RAMDISK_ROOTS, sorted(PACKAGE_SKIP)]).encode()
    return f"resolved-{archive_state()}-{hashlib.sha256(asked).hexdigest()[:8]}.json"


class Builder:
    def __init__(self, cache: Path | None = None, say: Callable[[str], None] = print) -> None:
        self.cache = (cache or default_cache()).resolve()
        self.say = say
        self.archive = Archive(self.cache / "debs")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.cache.mkdir(parents=True, exist_ok=True)
        with (self.cache / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextmanager
    def _artifact(self, kind: str, key: str, cached: dict[str, bool]) -> Iterator[Path | None]:
        """Yields a staging directory to fill, or None when ``<kind>-<key>`` exists."""
        final = self.cache / f"{kind}-{key}"
        if (final / "manifest.json").exists():
            os.utime(final / "manifest.json")  # in use: not pruned (see _prune)
            cached[kind] = True
            self.say(f"{kind}: cached ({final})")
            yield None
            return
        cached[kind] = False
        started = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=self.cache))
        staging.chmod(0o755)  # an HTTP or TFTP server not running as root serves it
        try:
            yield staging
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.say(f"{kind}: built in {time.monotonic() - started:.1f} s ({final})")

    def build(self) -> Images:
        with self._locked():
            return self._build()

    def _build(self) -> Images:
        cached: dict[str, bool] = {}
        kernel, python, syslinux = self._resolve()
        busybox = next(p for p in python if p.name == "busybox-static")
        source = _source_hash([])
        kernel_dir = self._kernel(kernel, _source_hash([], kernel_only=True), cached)
        modules = _modules(kernel_dir, "load-order")
        ramdisk_key = cache_key(
            "ramdisk",
            [kernel, *python],
            _source_hash(_agent_sources()),
            {"modules": ",".join(MODULES + TARGET_MODULES)},
        )
        with self._artifact("ramdisk", ramdisk_key, cached) as staging:
            if staging is not None:
                self._ramdisk(staging, python, busybox, _modules(kernel_dir, "load-order-ramdisk"))
        instance_key = cache_key("instance", [kernel, busybox, *syslinux], source, _tool_versions())
        with self._artifact("instance", instance_key, cached) as staging:
            if staging is not None:
                self._instance(staging, kernel_dir, busybox, syslinux[0], modules)
        instance_dir = self.cache / f"instance-{instance_key}"
        self._prune(
            {kernel_dir.name, f"ramdisk-{ramdisk_key}",
             f"instance-{instance_key}", _resolved_name()},
            {p.filename for p in [kernel, *python, *syslinux]},
        )  # fmt: skip
        manifest = json.loads((instance_dir / "manifest.json").read_text())
        return Images(
            vmlinuz=kernel_dir / "vmlinuz",
            vmlinux=kernel_dir / "vmlinux",
            ramdisk=self.cache / f"ramdisk-{ramdisk_key}" / "initramfs.gz",
            instance=instance_dir / "disk.img",
            instance_sha256=manifest["sha256"],
            cached=cached,
            packages={p.name: p.version for p in [kernel, *python, *syslinux]},
        )

    def _prune(self, current: set[str], debs: set[str]) -> None:
        """Artifacts and ``.deb`` files of other inputs go once unused for a day: the
        cache is shared by checkouts whose builders differ (a worktree's tests must
        not lose the files they are booting to another worktree's build)."""
        old = time.time() - PRUNE_AFTER
        for path in self.cache.iterdir():
            kinds = ("kernel-", "ramdisk-", "instance-", "resolved-")
            if not path.name.startswith(kinds) or path.name in current:
                continue
            used = path / "manifest.json" if path.is_dir() else path
            if not used.exists() or used.stat().st_mtime < old:
                self.say(f"cache: removing {path.name} (unused for a day)")
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for deb in self.archive.debs.glob("*.deb"):
            if deb.name not in debs and deb.stat().st_mtime < old:
                deb.unlink()

    def _resolve(self) -> tuple[Package, list[Package], list[Package]]:
        """The kernel, the ramdisk's packages and syslinux-common, as the archive has
        them now.  ``apt-cache`` takes seconds here (no binary package cache), so the
        answer is kept per state of the package lists (``archive_state``) and per
        set of packages asked for (``_resolved_name``)."""
        saved = self.cache / _resolved_name()
        if saved.exists():
            data = json.loads(saved.read_text())
            kernel, *syslinux = [Package.from_json(p) for p in data["single"]]
            return kernel, [Package.from_json(p) for p in data["ramdisk"]], syslinux
        meta = self.archive.one(KERNEL_META)
        kernel = self.archive.one(meta.depends[0].split(" | ")[0])
        python = self.archive.resolve(RAMDISK_ROOTS, skip=PACKAGE_SKIP)
        syslinux = [self.archive.one("syslinux-common")]
        single = [p.to_json() for p in (kernel, *syslinux)]
        saved.write_text(json.dumps({"single": single, "ramdisk": [p.to_json() for p in python]}))
        return kernel, python, syslinux

    def _kernel(self, kernel: Package, source: str, cached: dict[str, bool]) -> Path:
        key = cache_key("kernel", [kernel], source, {"modules": ",".join(MODULES + TARGET_MODULES)})
        with self._artifact("kernel", key, cached) as staging:
            if staging is not None:
                deb = self.archive.fetch([kernel])[kernel.name]
                raw = staging / "raw"
                taken = Archive.extract_some(
                    deb, raw, lambda n: n.startswith("boot/vmlinuz-") or n.endswith(".ko")
                )
                (vmlinuz,) = [n for n in taken if n.startswith("boot/vmlinuz-")]
                shutil.move(raw / vmlinuz, staging / "vmlinuz")
                (staging / "vmlinux").write_bytes(
                    elf.bzimage_payload((staging / "vmlinuz").read_bytes())
                )
                paths = {
                    Path(n).name.removesuffix(".ko"): raw / n for n in taken if n.endswith(".ko")
                }
                depends = _LazyDepends(paths)
                order = elf.load_order(depends, MODULES)
                everything = elf.load_order(depends, MODULES + TARGET_MODULES)
                (staging / "modules").mkdir()
                for name in everything:
                    shutil.copy(paths[name], staging / "modules" / f"{name}.ko")
                for listing, names in (("load-order", order), ("load-order-ramdisk", everything)):
                    (staging / "modules" / listing).write_text("".join(f"{n}\n" for n in names))
                shutil.rmtree(raw)
                _manifest(staging, package=f"{kernel.name}={kernel.version}", modules=everything)
        return self.cache / f"kernel-{key}"

    def _extract(self, packages: list[Package], into: Path) -> None:
        files = self.archive.fetch(packages)
        for package in packages:
            Archive.extract(files[package.name], into)

    def _ramdisk(
        self,
        staging: Path,
        python: list[Package],
        busybox: Package,
        modules: list[tuple[str, bytes]],
    ) -> None:
        root = staging / "root"
        self._extract(python, root)
        agent_root = root / "usr/lib/metalnic/metalnic"
        for src, name in zip(_agent_sources(), AGENT_FILES, strict=True):
            (agent_root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, agent_root / name)
        rootfs.compile_stdlib(root, [rootfs.STDLIB], legacy=True)
        rootfs.compile_stdlib(root, ["usr/lib/metalnic"])
        kept = rootfs.python_files(root)
        agent = [str(p.relative_to(root)) for p in (root / "usr/lib/metalnic").rglob("*.py*")]
        libs = rootfs.library_closure(
            root, [*(k for k in kept if k.endswith(".so") or k == rootfs.PYTHON), *SSH_FILES]
        )
        archive = rootfs.base_archive(root / "bin/busybox", modules, "ramdisk-init.sh")
        archive.file("lib/metalnic/sshd.sh", rootfs.init_file("sshd.sh"))
        rootfs.add_paths(archive, root, [*libs, *kept, *agent, *SSH_FILES])
        data = archive.gzipped()
        (staging / "initramfs.gz").write_bytes(data)
        shutil.rmtree(root)
        _manifest(
            staging,
            packages=[f"{p.name}={p.version}" for p in python],
            files=len(archive.names()),
            bytes=len(data),
        )

    def _instance(
        self,
        staging: Path,
        kernel_dir: Path,
        busybox: Package,
        syslinux: Package,
        modules: list[tuple[str, bytes]],
    ) -> None:
        root = staging / "root"
        files = self.archive.fetch([busybox, syslinux])
        Archive.extract(files[busybox.name], root)
        Archive.extract_some(files[syslinux.name], root, lambda n: n == SYSLINUX_MBR)
        initrd = staging / "initrd.gz"
        initrd.write_bytes(
            rootfs.base_archive(root / "bin/busybox", modules, "instance-init.sh").gzipped()
        )
        image = staging / "disk.img"
        disk.build(image, kernel_dir / "vmlinuz", initrd, root / SYSLINUX_MBR)
        shutil.rmtree(root)
        digest = hashlib.sha256()
        with image.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        _manifest(staging, sha256=digest.hexdigest(), bytes=image.stat().st_size)
        (staging / "disk.img.sha256").write_text(f"{digest.hexdigest()}  disk.img\n")


class _LazyDepends(dict[str, list[str]]):
    """Module name -> its ``depends=`` (read from the .ko when first asked)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        super().__init__()
        self._paths = paths

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def __getitem__(self, name: str) -> list[str]:
        if not dict.__contains__(self, name):
            deps = elf.modinfo(self._paths[name].read_bytes()).get("depends", "")
            self[name] = [d for d in deps.split(",") if d]
        return dict.__getitem__(self, name)


def _modules(kernel_dir: Path, listing: str) -> list[tuple[str, bytes]]:
    order = (kernel_dir / "modules" / listing).read_text().split()
    return [(n, (kernel_dir / "modules" / f"{n}.ko").read_bytes()) for n in order]


def _manifest(staging: Path, **values: object) -> None:
    (staging / "manifest.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def build(cache: Path | None = None, say: Callable[[str], None] = print) -> Images:
    """Build what is not cached yet; return where everything is."""
    return Builder(cache, say).build()


def instance_image(cache: Path | None = None) -> tuple[Path, str]:
    """The instance image's path and sha256 (what the lab's image server publishes)."""
    images = build(cache, say=lambda _line: None)
    return images.instance, images.instance_sha256
