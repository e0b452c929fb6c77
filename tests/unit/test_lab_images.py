"""The image builder's logic without building anything: Debian metadata and the
dependency closure, cache keys, ELF/module/bzImage reading, the cpio writer, the
standard-library selection, and the ``/init`` helpers' parsing (run by busybox sh)."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from metalnic.lab.images import builder, disk, elf, rootfs
from metalnic.lab.images.cpio import Cpio
from metalnic.lab.images.debs import ImageBuildError, Package, closure, parse_depends, parse_stanzas
from metalnic.ramdisk import agent

SHOW = """Package: libpython3.11-stdlib
Version: 3.11.2-6+deb12u9
Architecture: amd64
Depends: libpython3.11-minimal (= 3.11.2-6+deb12u9), media-types | mime-support,
 libbz2-1.0, libc6 (>= 2.34)
Description: stdlib

Package: python3.11-minimal
Version: 3.11.2-6+deb12u9
Architecture: amd64
Pre-Depends: libc6 (>= 2.35)
Depends: libpython3.11-minimal (= 3.11.2-6+deb12u9), zlib1g:amd64 (>= 1:1.2.0)

Package: python3.11-minimal
Version: 3.11.0-1
Architecture: amd64
"""


def test_stanzas_give_versions_and_dependency_groups_pre_depends_first() -> None:
    found = parse_stanzas(SHOW)
    std = found["libpython3.11-stdlib"]
    assert std.version == "3.11.2-6+deb12u9"
    assert std.depends == (
        "libpython3.11-minimal",
        "media-types | mime-support",
        "libbz2-1.0",
        "libc6",
    )
    minimal = found["python3.11-minimal"]  # the first stanza (the candidate) wins
    assert minimal.depends == ("libc6", "libpython3.11-minimal", "zlib1g")
    assert minimal.filename == "python3.11-minimal_3.11.2-6+deb12u9_amd64.deb"
    epoch = Package("zlib1g", "1:1.2.13", "amd64", ())
    assert epoch.filename == "zlib1g_1%3a1.2.13_amd64.deb"  # as apt-get download names it
    assert Package.from_json(epoch.to_json()) == epoch


def test_depends_field_drops_versions_and_architectures() -> None:
    assert parse_depends("a (>= 1), b:any | c (<< 2) ,  d") == ["a", "b | c", "d"]
    assert parse_depends("") == []


class FakeArchive:
    def __init__(self, packages: Mapping[str, tuple[str, ...]]) -> None:
        self.packages = {n: Package(n, "1", "amd64", deps) for n, deps in packages.items()}
        self.asked: list[list[str]] = []

    def __call__(self, names: list[str]) -> dict[str, Package]:
        self.asked.append(names)
        return {n: self.packages[n] for n in names if n in self.packages}


def test_closure_follows_dependencies_in_waves_skips_and_takes_the_first_alternative() -> None:
    archive = FakeArchive(
        {
            "python": ("libc", "mime | media", "readline"),
            "libc": ("gcc-base",),
            "gcc-base": (),
            "media": (),  # "mime" is virtual: absent from the archive
            "readline": ("readline-common",),
        }
    )
    got = closure(["python"], archive, skip=frozenset({"readline"}))
    assert sorted(got) == ["gcc-base", "libc", "media", "python"]
    assert len(archive.asked) == 3  # one apt-cache call per level, each name asked once
    assert sum(len(names) for names in archive.asked) == len(set(sum(archive.asked, [])))


def test_closure_names_who_wanted_a_missing_package() -> None:
    archive = FakeArchive({"python": ("libc",), "libc": ("libgone",)})
    with pytest.raises(ImageBuildError, match=r"'libgone' .*wanted by libc"):
        closure(["python"], archive)
    with pytest.raises(ImageBuildError, match="'nothing'"):
        closure(["nothing"], archive)


def test_cache_key_changes_with_each_input_and_only_with_them() -> None:
    a = [Package("a", "1", "amd64", ()), Package("b", "2", "all", ())]
    key = builder.cache_key("ramdisk", a, "src", {"modules": "x"})
    assert key == builder.cache_key("ramdisk", list(reversed(a)), "src", {"modules": "x"})
    assert key != builder.cache_key("instance", a, "src", {"modules": "x"})
    assert key != builder.cache_key("ramdisk", [a[0], Package("b", "3", "all", ())], "src", {})
    assert key != builder.cache_key("ramdisk", a, "src2", {"modules": "x"})
    assert key != builder.cache_key("ramdisk", a, "src", {"modules": "y"})


def test_archive_state_follows_the_package_lists(tmp_path: Path) -> None:
    lists, config = tmp_path / "lists", tmp_path / "apt"
    lists.mkdir()
    config.mkdir()
    packages = lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
    packages.write_text("x")
    before = builder.archive_state(lists, config)
    assert builder.archive_state(lists, config) == before
    os.utime(packages, ns=(1, 1))  # apt-get update rewrote it
    assert builder.archive_state(lists, config) != before


def test_source_hash_of_the_ramdisk_covers_the_agent() -> None:
    sources = builder._agent_sources()
    assert all(path.exists() for path in sources)
    assert any(path.name == "agent.py" for path in sources)
    assert builder._source_hash(sources) != builder._source_hash([])
    assert builder._source_hash([], kernel_only=True) != builder._source_hash([])


def test_modules_load_after_what_they_depend_on() -> None:
    depends = {
        "virtio_ring": [],
        "virtio": [],
        "virtio_pci": ["virtio_pci_modern_dev", "virtio", "virtio_ring"],
        "virtio_pci_modern_dev": [],
        "virtio_net": ["net_failover", "virtio", "virtio_ring"],
        "net_failover": ["failover"],
        "failover": [],
    }
    order = elf.load_order(depends, ["virtio_pci", "virtio_net"])
    assert len(order) == len(set(order)) == 7
    for name, deps in depends.items():
        assert all(order.index(d) < order.index(name) for d in deps)
    with pytest.raises(ImageBuildError, match="virtio_blk .*not in the kernel"):
        elf.load_order(depends, ["virtio_blk"])
    with pytest.raises(ImageBuildError, match="cycle"):
        elf.load_order({"a": ["b"], "b": ["a"]}, ["a"])


def _elf(sections: list[tuple[str, int, bytes, int]]) -> bytes:
    """A minimal ELF64 with (name, type, content, link) sections plus .shstrtab."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n, *_ in sections) + b".shstrtab\0"
    body, offsets = b"", []
    for _n, _t, content, _l in sections:
        offsets.append(64 + len(body))
        body += content
    shstr_at = 64 + len(body)
    body += names
    shoff = 64 + len(body)
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header += struct.pack(
        "<HHIQQQIHHHHHH",
        3,
        62,
        1,
        0,
        0,
        shoff,
        0,
        64,
        0,
        0,
        64,
        len(sections) + 2,
        len(sections) + 1,
    )
    headers = b"\0" * 64
    pos = 1
    for (name, kind, content, link), offset in zip(sections, offsets, strict=True):
        headers += struct.pack("<IIQQQQIIQQ", pos, kind, 0, 0, offset, len(content), link, 0, 1, 0)
        pos += len(name) + 1
    headers += struct.pack("<IIQQQQIIQQ", pos, 3, 0, 0, shstr_at, len(names), 0, 0, 1, 0)
    return header + body + headers


def test_dt_needed_and_modinfo_are_read_from_the_file() -> None:
    strtab = b"\0libc.so.6\0libz.so.1\0"
    dynamic = struct.pack("<qQqQqQ", 1, 1, 1, 11, 0, 0)  # NEEDED libc, NEEDED libz, NULL
    shared = _elf([(".dynstr", 3, strtab, 0), (".dynamic", 6, dynamic, 1)])
    assert elf.needed(shared) == ["libc.so.6", "libz.so.1"]
    module = _elf(
        [(".modinfo", 1, b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_net\0", 0)]
    )
    assert elf.modinfo(module)["depends"] == "virtio,virtio_ring"
    assert elf.needed(module) == []  # static: nothing needed
    with pytest.raises(ImageBuildError, match="not a kernel module"):
        elf.modinfo(shared)
    with pytest.raises(ImageBuildError, match="not a 64-bit"):
        elf.needed(b"#!/bin/sh\n")


def test_vmlinux_is_unpacked_from_the_bzimage_payload() -> None:
    kernel = b"\x7fELF" + bytes(range(256)) * 64
    payload = lzma.compress(kernel, format=lzma.FORMAT_XZ) + struct.pack("<I", len(kernel))
    setup = bytearray(3 * 512)  # setup_sects = 2: protected-mode code at 1536
    setup[0x1F1] = 2
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", setup, 0x248, 100, len(payload))
    image = bytes(setup) + b"\0" * 100 + payload + b"\0" * 16
    assert elf.bzimage_payload(image) == kernel
    with pytest.raises(ImageBuildError, match="not a bzImage"):
        elf.bzimage_payload(b"\0" * 4096)


def _entries(archive: bytes) -> dict[str, tuple[int, bytes]]:
    data, out, pos = gzip.decompress(archive), {}, 0
    while True:
        assert data[pos : pos + 6] == b"070701" and pos % 4 == 0
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data[pos : pos + size])
        pos += size + (-size % 4)


def test_cpio_entries_are_root_owned_aligned_and_reproducible(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "tool").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "d" / "tool").chmod(0o755)
    (tmp_path / "link").symlink_to("d/tool")

    def make() -> bytes:
        archive = Cpio()
        archive.char_device("dev/console", 5, 1)
        archive.file("init", b"abc", executable=True)
        archive.file("init", b"second is ignored")
        archive.tree(tmp_path, "opt")
        return archive.gzipped()

    first = make()
    assert first == make()
    entries = _entries(first)
    assert entries["init"] == (0o100755, b"abc")
    assert entries["opt/d/tool"] == (0o100755, b"#!/bin/sh\n")
    assert entries["opt/link"] == (0o120777, b"d/tool")
    assert entries["dev/console"][0] == 0o20600
    assert list(entries).index("opt/d") < list(entries).index("opt/d/tool")


def test_python_files_keep_compiled_modules_without_sources(tmp_path: Path) -> None:
    std = tmp_path / rootfs.STDLIB
    for rel in ("os.py", "os.pyc", "json/__init__.py", "json/__init__.pyc", "test/x.pyc",
                "tkinter/__init__.pyc", "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
                "lib-dynload/_json.cpython-311-x86_64-linux-gnu.so", "sysdata.txt",
                "__pycache__/os.cpython-311.pyc", "pydoc.pyc"):  # fmt: skip
        (std / rel).parent.mkdir(parents=True, exist_ok=True)
        (std / rel).write_bytes(b"")
    with pytest.raises(ImageBuildError, match="python3.11"):
        rootfs.python_files(tmp_path)
    (tmp_path / rootfs.PYTHON).parent.mkdir(parents=True)
    (tmp_path / rootfs.PYTHON).write_bytes(b"")
    kept = {p.removeprefix(rootfs.STDLIB + "/") for p in rootfs.python_files(tmp_path)}
    assert kept == {
        rootfs.PYTHON, "os.pyc", "json/__init__.pyc", "sysdata.txt",
        "lib-dynload/_json.cpython-311-x86_64-linux-gnu.so",
    }  # fmt: skip


def test_symlinks_resolve_inside_the_extracted_tree(tmp_path: Path) -> None:
    libdir = tmp_path / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (libdir / "ld-linux-x86-64.so.2").write_bytes(b"loader")
    (libdir / "libz.so.1.2.13").write_bytes(b"z")
    (libdir / "libz.so.1").symlink_to("libz.so.1.2.13")
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64/ld-linux-x86-64.so.2").symlink_to(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    )
    assert rootfs.resolve_in(tmp_path, rootfs.LOADER) == "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert rootfs.resolve_in(tmp_path, "lib/x86_64-linux-gnu/libz.so.1").endswith("libz.so.1.2.13")


def test_disk_layout_values() -> None:
    assert disk.image_size(10 << 20) == 24 << 20
    assert disk.image_size(30 << 20) == 34 << 20
    cfg = disk.syslinux_cfg("console=ttyS0")
    assert "KERNEL /vmlinuz" in cfg and "APPEND initrd=/initrd.gz console=ttyS0" in cfg


def _sh(script: str, tmp_path: Path) -> str:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (Debian package busybox-static)")
    common = Path(rootfs.__file__).parent / "files" / "common.sh"
    run = subprocess.run([busybox, "sh", "-c", f". {common}; {script}"], capture_output=True,
                         text=True, cwd=tmp_path, check=True)  # fmt: skip
    return run.stdout.strip()


@pytest.mark.parametrize(
    ("bootif", "mac"),
    [
        ("01-52-54-00-AA-00-01", "52:54:00:aa:00:01"),  # PXELINUX's IPAPPEND 2
        ("52:54:00:aa:00:01", "52:54:00:aa:00:01"),  # iPXE's ${mac} (metalnic's script)
        ("", ""),
    ],
)
def test_init_reads_bootif_and_the_api_url_from_the_kernel_command_line(
    bootif: str, mac: str, tmp_path: Path
) -> None:
    words = "initrd=initramfs console=ttyS0 ipa-api-url=http://10.9.0.1:6385"
    (tmp_path / "cmdline").write_text(f"{words} BOOTIF={bootif}\n" if bootif else words + "\n")
    out = _sh('parse_cmdline cmdline; echo "$MAC|$API|$DISK"', tmp_path)
    assert out == f"{mac}|http://10.9.0.1:6385|/dev/vda"


def test_init_script_and_ipxe_script_agree_on_the_parameters(tmp_path: Path) -> None:
    from metalnic.baremetal.drivers.base import NetworkPhase
    from metalnic.baremetal.drivers.boot import scripts

    files = scripts.BootFiles(http_url="http://10.9.0.1:6385/boot", api_url="http://10.9.0.1:6385")
    line = next(
        x for x in scripts.node_script(files, "n", NetworkPhase.PROVISIONING).splitlines()
        if x.startswith("kernel ")
    )  # fmt: skip
    words = line.split("||")[0].split()[4:]
    (tmp_path / "cmdline").write_text(" ".join(words).replace("${mac}", "52:54:00:aa:00:07"))
    out = _sh('parse_cmdline cmdline; echo "$MAC|$API"', tmp_path)
    assert out == "52:54:00:aa:00:07|http://10.9.0.1:6385"


def test_init_reads_the_conductors_ssh_key_as_the_ansible_deploy_passes_it(
    tmp_path: Path,
) -> None:
    from metalnic.baremetal.drivers.deploy import ansible

    key = ansible.conductor_public_key(tmp_path / "keys" / "id_ed25519")
    (tmp_path / "cmdline").write_text(f"console=ttyS0 {ansible.kernel_param(key)} BOOTIF=\n")
    assert _sh('parse_cmdline cmdline; echo "$SSHKEY"', tmp_path) == key
    (tmp_path / "cmdline").write_text("console=ttyS0\n")
    assert _sh('parse_cmdline cmdline; echo "[$SSHKEY]"', tmp_path) == "[]"


def test_instance_names_itself_from_the_config_drive_the_agent_wrote(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    drive.write_bytes(b"old, longer content " * 300)
    agent._write_drive(drive, '{"meta_data": {"hostname": "web-1", "uuid": "u"}}')
    assert _sh("drive_hostname drive", tmp_path) == "web-1"
    agent._write_drive(drive, "")  # cleaning empties it
    assert _sh("drive_hostname drive", tmp_path) == ""


def test_the_cache_keeps_what_other_checkouts_use_and_prunes_the_long_unused(
    tmp_path: Path,
) -> None:
    cache = builder.Builder(tmp_path, say=lambda _line: None)
    day_old = os.path.getmtime(tmp_path) - builder.PRUNE_AFTER - 60
    for name in ("ramdisk-current", "ramdisk-other", "ramdisk-stale"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    os.utime(tmp_path / "ramdisk-stale" / "manifest.json", (day_old, day_old))
    (tmp_path / "ramdisk-broken").mkdir()  # a build that died before its manifest
    os.utime(tmp_path / "ramdisk-broken", (day_old, day_old))
    (tmp_path / "debs").mkdir()
    for deb in ("used.deb", "old.deb"):
        (tmp_path / "debs" / deb).write_bytes(b"")
        os.utime(tmp_path / "debs" / deb, (day_old, day_old))
    cache._prune({"ramdisk-current"}, {"used.deb"})
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ramdisk-"))
    assert left == ["ramdisk-current", "ramdisk-other"]
    assert [p.name for p in (tmp_path / "debs").iterdir()] == ["used.deb"]
