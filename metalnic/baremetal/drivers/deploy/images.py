"""What the deploy interfaces that write an image share: the checks on
``instance_info`` before anything is touched, and the config drive's bytes."""

from __future__ import annotations

import re

from metalnic.baremetal.drivers.base import DriverConfigError, DriverError, NodeContext
from metalnic.contract import configdrive

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    sha256(ctx)


def sha256(ctx: NodeContext) -> str:
    """``instance_info.image_os_hash_value`` as 64 lowercase hex digits, else refused:
    it is the node owner's text, and the ansible deploy hands it to Ansible, whose
    templating would run any ``{{ … }}`` in it on the conductor."""
    value = ctx.instance_info.get("image_os_hash_value")
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise DriverConfigError(
            "instance_info image_os_hash_value must be a sha256: 64 hexadecimal digits"
        )
    return value.lower()


def configdrive_bytes(drive: object) -> bytes | None:
    """The block-device form of ``instance_info.configdrive`` (None: no drive)."""
    if drive is None:
        return None
    try:
        return configdrive.block(configdrive.text(drive))
    except configdrive.InvalidDrive as exc:
        raise DriverError(str(exc)) from exc
