"""The config drive as the ramdisk writes it and the instance reads it back.

Both writers use it: the ramdisk agent (``standby.prepare_image``) and the
conductor's iscsi deploy, which writes the drive through the ramdisk's export.
The drive holds text — the OpenStack metadata object (``meta_data``,
``network_data``, ``user_data``) as JSON, or a string given as is — and, on a
block device (which keeps an older, longer drive behind it), NUL bytes after it:
a reader stops at the first NUL.  Standard library only: the ramdisk ships it.
"""

from __future__ import annotations

import json

PAD = 4096  # NUL bytes after the text on a block device


class InvalidDrive(ValueError):
    pass


def text(drive: object) -> str:
    """The drive's text: a string as is, an object as JSON."""
    if isinstance(drive, str):
        return drive
    if isinstance(drive, dict):
        return json.dumps(drive)
    raise InvalidDrive("configdrive must be an object or a string")


def block(drive_text: str) -> bytes:
    """What goes on a block device: the text, then the NUL pad."""
    return drive_text.encode() + b"\0" * PAD
