"""What the deploy interfaces that write an image share: the checks on
``instance_info`` before anything is touched, and the config drive's bytes."""

from __future__ import annotations

from metalnic.baremetal.drivers.base import DriverConfigError, DriverError, NodeContext
from metalnic.contract import configdrive


def validate_image_info(ctx: NodeContext, interface: str) -> None:
    info = ctx.instance_info
    missing = [k for k in ("image_source", "image_os_hash_value") if not info.get(k)]
    if missing:
        raise DriverConfigError(
            f"{interface} deploy needs instance_info {', '.join(missing)} "
            "(image URL and its sha256)"
        )
    if info.get("image_os_hash_algo", "sha256") != "sha256":
        raise DriverConfigError(f"{interface} deploy supports image_os_hash_algo sha256 only")


def configdrive_bytes(drive: object) -> bytes | None:
    """The block-device form of ``instance_info.configdrive`` (None: no drive)."""
    if drive is None:
        return None
    try:
        return configdrive.block(configdrive.text(drive))
    except configdrive.InvalidDrive as exc:
        raise DriverError(str(exc)) from exc
