"""The ``ipxe`` boot interface, and the boot interfaces that configure nothing.

``ipxe`` does what Ironic's ``ipxe`` boot interface does with a Neutron DHCP
server, for the phases that boot a ramdisk (deploy and clean on the
provisioning and cleaning networks, rescue on the rescuing network):

* ``prepare_ramdisk`` writes the node's iPXE script (``<http_root>/<node>/config``)
  and links each PXE-enabled port's MAC to it (``pxelinux.cfg/<mac-with-hyphens>``),
  then sets the DHCP options of ``scripts.dhcp_options`` on the phase's network
  ports through the network client (Neutron ``extra_dhcp_opts``): per port, the
  IPv4 set when it has an IPv4 address (or none), the DHCPv6 set (option 59,
  ``ip_version`` 6) when it has an IPv6 one, as Ironic does for an IPv6
  provisioning subnet;
* ``clean_up_ramdisk`` removes the options from those ports (a port deleted
  meanwhile has none left) and the script and its links — also when the node
  never got that far, so that failure paths can call it for every phase.

The server's ``/boot`` route (``baremetal/api/httpboot.py``) serves the
generic ``boot.ipxe``, what ``BootTree`` holds, and the configured ramdisk
images; drivers never serve HTTP themselves.  ``fake`` and ``pxe`` configure
nothing: the host's network boot is set up outside metalnic (the lab's host
simulator, an operator's own DHCP/TFTP service).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metalnic.baremetal.drivers.base import (
    BootInterface,
    DriverConfigError,
    DriverError,
    NetworkPhase,
    NodeContext,
)
from metalnic.baremetal.drivers.boot import scripts
from metalnic.baremetal.drivers.network.client import (
    DhcpOption,
    NetworkClient,
    NetworkObjectNotFound,
)
from metalnic.ids import parse_uuid


@dataclass(frozen=True)
class IpxeConfig:
    files: scripts.BootFiles
    http_root: Path  # where the per-node scripts and MAC links are written
    default_boot_mode: str = "uefi"
    # ramdisk ("deploy", "rescue") -> (kernel, initramfs) files served under images/
    images: dict[str, tuple[Path | None, Path | None]] = field(default_factory=dict)

    def image(self, ramdisk: str, part: str) -> Path | None:
        kernel, initramfs = self.images.get(ramdisk, (None, None))
        return {scripts.KERNEL: kernel, scripts.INITRAMFS: initramfs}.get(part)


class BootTree:
    """The files under ``http_root``: ``<node>/config`` and ``pxelinux.cfg/<mac>``
    links to it (relative, as Ironic lays them out).  Written atomically: a host
    fetching a script never reads half of one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def node_dir(self, node: str) -> Path:
        return self.root / str(parse_uuid(node, "node"))

    def script(self, node: str) -> Path:
        return self.node_dir(node) / scripts.NODE_SCRIPT

    def mac_link(self, mac: str) -> Path:
        return self.root / scripts.MAC_DIR / scripts.mac_file(mac)

    def write(self, node: str, macs: Sequence[str], text: str) -> None:
        path = self.script(node)
        path.parent.mkdir(parents=True, exist_ok=True)
        (self.root / scripts.MAC_DIR).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        target = Path("..") / path.parent.name / path.name
        for mac in macs:
            link = self.mac_link(mac)
            staged = link.with_name(f".{link.name}.new")
            staged.unlink(missing_ok=True)
            staged.symlink_to(target)
            os.replace(staged, link)

    def remove(self, node: str, macs: Sequence[str]) -> None:
        """The node's script and every MAC link to it (also links of MACs the node no
        longer has), then its directory."""
        target = str(Path("..") / self.node_dir(node).name / scripts.NODE_SCRIPT)
        for mac in macs:
            self.mac_link(mac).unlink(missing_ok=True)
        links = self.root / scripts.MAC_DIR
        if links.is_dir():
            for entry in os.scandir(links):
                if entry.is_symlink() and os.readlink(entry.path) == target:
                    Path(entry.path).unlink(missing_ok=True)
        directory = self.node_dir(node)
        if directory.is_dir():
            for leftover in directory.iterdir():
                leftover.unlink(missing_ok=True)
            directory.rmdir()

    def read(self, relative: Path) -> bytes | None:
        """The content behind ``relative`` (a node script or a MAC link), or None.
        Only paths inside the tree are followed."""
        path = self.root / relative
        try:
            resolved = path.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.root.resolve()) or not resolved.is_file():
            return None
        return resolved.read_bytes()


class IpxeBoot(BootInterface):
    def __init__(self, client: NetworkClient | None, config: IpxeConfig | None) -> None:
        self._client = client
        self._config = config

    def config(self) -> IpxeConfig:
        if self._config is None or not self._config.files.http_url:
            raise DriverConfigError(
                "the ipxe boot interface needs http_boot_url (where hosts reach /boot)"
            )
        return self._config

    def client(self) -> NetworkClient:
        if self._client is None:
            raise DriverConfigError("no network service is configured for the ipxe boot interface")
        return self._client

    def validate(self, ctx: NodeContext) -> None:
        config = self.config()
        self.client()
        for ramdisk in sorted(set(scripts.RAMDISK_OF.values())):
            for part in (scripts.KERNEL, scripts.INITRAMFS):
                if config.image(ramdisk, part) is None:
                    raise DriverConfigError(
                        f"the ipxe boot interface needs the {ramdisk} ramdisk's {part} "
                        f"(setting {ramdisk}_{part})"
                    )
        if not _macs(ctx):
            raise DriverConfigError(f"node {ctx.uuid} has no PXE-enabled port to boot from")
        self._options(ctx)

    def _options(self, ctx: NodeContext, ip_versions: Sequence[int] = ()) -> list[DhcpOption]:
        """The options for a port whose fixed IPs have ``ip_versions`` (none: IPv4's)."""
        config = self.config()
        try:
            mode = scripts.boot_mode(ctx.instance_info, ctx.properties, config.default_boot_mode)
        except ValueError as exc:
            raise DriverConfigError(f"node {ctx.uuid}: {exc}") from None
        options: list[DhcpOption] = []
        for version in sorted(set(ip_versions)) or [4]:
            options += scripts.dhcp_options(config.files, mode, version)
        return options

    def prepare_ramdisk(
        self,
        ctx: NodeContext,
        phase: NetworkPhase,
        ports: Sequence[str],
        params: Sequence[str] = (),
    ) -> None:
        config, client = self.config(), self.client()
        if not ports:
            raise DriverError(
                f"the ipxe boot interface found no network port of node {ctx.uuid} on the "
                f"{phase} network to carry its DHCP options (network interface smartnic)"
            )
        self._options(ctx)  # a bad boot mode fails before anything is written
        versions = {p.id: p.ip_versions for p in client.ports(ids=tuple(ports))}
        try:
            script = scripts.node_script(config.files, ctx.uuid, phase, params)
        except ValueError as exc:
            raise DriverError(f"node {ctx.uuid}: {exc}") from exc
        tree = BootTree(config.http_root)
        try:
            tree.write(ctx.uuid, _macs(ctx), script)
        except OSError as exc:
            raise DriverError(f"could not write the iPXE script of node {ctx.uuid}: {exc}") from exc
        done: list[str] = []
        try:
            for port in ports:
                client.set_dhcp_options(port, self._options(ctx, versions.get(port, ())))
                done.append(port)
        except DriverError:
            self._remove(client, tree, ctx, done, _any_options(config.files))
            raise

    def clean_up_ramdisk(self, ctx: NodeContext, phase: NetworkPhase, ports: Sequence[str]) -> None:
        config = self._config
        if config is None:
            return  # nothing can have been written
        tree = BootTree(config.http_root)
        self._remove(self.client(), tree, ctx, ports, _any_options(config.files))

    @staticmethod
    def _remove(
        client: NetworkClient,
        tree: BootTree,
        ctx: NodeContext,
        ports: Sequence[str],
        options: list[DhcpOption],
    ) -> None:
        """Options off the ports first (no host is sent to a script that is gone), then
        the files — those also when a port could not be updated (then raise)."""
        errors: list[str] = []
        for port in ports:
            try:
                client.set_dhcp_options(port, scripts.removal(options))
            except NetworkObjectNotFound:
                continue  # the port is gone, and its options with it
            except DriverError as exc:
                errors.append(f"port {port}: {exc.message}")
        try:
            tree.remove(ctx.uuid, _macs(ctx))
        except OSError as exc:
            errors.append(f"the iPXE script: {exc}")
        if errors:
            raise DriverError("could not remove the PXE boot configuration: " + "; ".join(errors))


class PassiveBoot(BootInterface):
    """``fake`` and ``pxe``: the host's network boot is configured outside metalnic."""

    configures = False

    def validate(self, ctx: NodeContext) -> None:
        return None

    def prepare_ramdisk(
        self,
        ctx: NodeContext,
        phase: NetworkPhase,
        ports: Sequence[str],
        params: Sequence[str] = (),
    ) -> None:
        return None

    def clean_up_ramdisk(self, ctx: NodeContext, phase: NetworkPhase, ports: Sequence[str]) -> None:
        return None


def _any_options(files: scripts.BootFiles) -> list[DhcpOption]:
    """Every option ``prepare_ramdisk`` may have set (for either boot mode): removing
    one a port does not carry changes nothing."""
    names = {
        (o.name, o.ip_version): o
        for mode in scripts.BOOT_MODES
        for version in (4, 6)
        for o in scripts.dhcp_options(files, mode, version)
    }
    return list(names.values())


def _macs(ctx: NodeContext) -> list[str]:
    """The MACs a host may network-boot from: its PXE-enabled ports'."""
    return [p.address for p in ctx.ports if p.pxe_enabled]
