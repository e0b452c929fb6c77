"""Checks on what a ramdisk reports, before the conductor hands it to another program.

The ramdisk runs on the host, which the smart NIC model does not trust.  Its
callback URL and its command answers end up in other programs' option strings:
Ansible's inventory and variables (which Ansible *templates*: a
``{{ lookup('pipe', …) }}`` there runs on the conductor), qemu-img's
``--image-opts`` (where a ``,`` starts a new option).  Every such value passes one
of these plain shapes first — no braces, quotes, ``%``, commas, spaces or newlines —
or the step fails saying what was wrong.  Written here rather than borrowed: the
rules are the shapes these few values have, nothing more general.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from metalnic.baremetal.drivers.base import DriverError

# An IPv4/IPv6 address or a DNS name; never a leading "-" (ssh would read an option).
HOST = re.compile(r"[A-Za-z0-9:][A-Za-z0-9.:-]{0,252}")
PATH = re.compile(r"/[A-Za-z0-9_./-]{1,254}")  # a device or file on the host
HOST_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}")


def plain(value: object, pattern: re.Pattern[str], what: str) -> str:
    """``value`` when it is a string of ``pattern``'s shape, else DriverError."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DriverError(f"the ramdisk agent reported an unusable {what}: {value!r}")
    return value


def port(value: object, what: str) -> int:
    """A TCP port number (an integer, or its digits)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DriverError(f"the ramdisk agent reported an unusable {what}: {value!r}")
    text = str(value)
    if not re.fullmatch(r"[1-9][0-9]{0,4}", text) or int(text) > 65535:
        raise DriverError(f"the ramdisk agent reported an unusable {what}: {value!r}")
    return int(text)


def agent_host(agent_url: str) -> str:
    """The host of the ramdisk agent's callback URL, checked plain."""
    return plain(urlsplit(agent_url).hostname, HOST, "host in its callback URL")


def callback_url(url: object) -> str:
    """A ramdisk's callback URL: http or https, a plain host, a valid port if any."""
    if (
        not isinstance(url, str)
        or not url.startswith(("http://", "https://"))
        or any(ord(c) < 0x20 or c == "\x7f" for c in url)  # urlsplit drops some silently
    ):
        raise DriverError(f"the ramdisk agent reported an unusable callback URL: {url!r}")
    agent_host(url)
    try:
        given = urlsplit(url).port  # raises on a port that is not a number in range
    except ValueError:
        given = -1
    if given is not None and not 0 < given < 65536:
        raise DriverError(f"the ramdisk agent reported an unusable callback URL: {url!r}")
    return url
