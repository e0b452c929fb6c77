"""Start-up checks of how the server is reached: TLS key, TLS version, plain HTTP.

* A TLS private key that group or others may read is refused: whoever reads it
  can impersonate the server (and read every password sent to it).
* ``tls_min_version`` (default TLS 1.2) is the oldest protocol the server
  speaks; older clients fail the handshake.
* ``http_basic`` over plain HTTP on an address other than loopback sends every
  password in the clear: allowed (a lab, a trusted segment) but warned about.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import stat

from metalnic.errors import InvalidInput
from metalnic.settings import Settings

log = logging.getLogger(__name__)

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check(settings: Settings) -> None:
    """Refuse an exposed TLS key; warn about passwords sent in the clear."""
    key = settings.tls_key_file
    if key is not None:
        try:
            mode = key.stat().st_mode
        except OSError as exc:
            raise InvalidInput(f"Cannot read the TLS key file {key}: {exc.strerror}.") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInput(
                f"The TLS key file {key} is accessible by group or others (mode "
                f"{stat.S_IMODE(mode):04o}); make it readable by its owner only (chmod 600)."
            )
    elif settings.auth == "http_basic" and not is_loopback(settings.host):
        log.warning(
            "Serving http_basic without TLS on %s: passwords cross the network in the clear; "
            "set --tls-cert-file and --tls-key-file.",
            settings.host,
        )


def harden(context: ssl.SSLContext, settings: Settings) -> ssl.SSLContext:
    context.minimum_version = TLS_VERSIONS[settings.tls_min_version]
    return context
