"""The rules for a port's ``local_link_connection``, stricter than Ironic's.

A smart NIC port names the host of the NIC's OVS agent (``hostname``) and the
port on the NIC's integration bridge that faces the server (``port_id``, port
B).  A remotely managed NIC also carries the NIC's SSH public key and the
certificate its OVSDB server presents (and optionally the CA that issued it):
their presence is what marks the NIC as remote, so they must really parse.
Any other port describes a switch port the way Ironic does.

Private key material is refused in every value (the key stays on the NIC; a
stored key would be shown to every reader of the port), and a certificate
field holds PEM ``CERTIFICATE`` blocks and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from metalnic import redact
from metalnic.errors import InvalidInput
from metalnic.ids import normalize_mac

SWITCH_KEYS = frozenset({"switch_id", "port_id", "switch_info", "hostname"})
REMOTE_KEYS = frozenset({"ssh_public_key", "ovsdb_ca_cert", "ovsdb_cert"})
MAX_VALUE_LENGTH = 16_384

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_PORT_NAME_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_DATAPATH_ID_RE = re.compile(r"(0x)?[0-9a-fA-F]{16}")
_CERTIFICATE_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*-----END CERTIFICATE-----"
)


def is_remote(llc: Mapping[str, object]) -> bool:
    return bool(REMOTE_KEYS & llc.keys())


def validate(llc: Any, is_smartnic: bool) -> dict[str, str]:
    """Return the normalised connection or raise ``InvalidInput`` saying what is wrong."""
    if llc is None:
        llc = {}
    if not isinstance(llc, dict):
        raise InvalidInput(f"local_link_connection must be a JSON object, got {llc!r}.")
    for key, value in llc.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"local_link_connection.{key} must be a non-empty string.")
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidInput(f"local_link_connection.{key} is too long.")
        if redact.holds_private_key(value):
            raise InvalidInput(
                f"local_link_connection.{key} contains a private key; store only the "
                "certificate (the private key stays on the NIC)."
            )
    allowed = SWITCH_KEYS | REMOTE_KEYS if is_smartnic else SWITCH_KEYS
    unknown = sorted(set(llc) - allowed)
    if unknown:
        hint = (
            " (ssh_public_key and ovsdb certificates belong to smart NIC ports only)"
            if REMOTE_KEYS & set(unknown)
            else ""
        )
        raise InvalidInput(
            f"Unknown key(s) in local_link_connection: {', '.join(unknown)}; "
            f"allowed are {', '.join(sorted(allowed))}{hint}."
        )
    result = dict(llc)
    if "switch_id" in result:
        result["switch_id"] = _switch_id(result["switch_id"])
    if is_smartnic:
        _validate_smartnic(result)
    elif result and not {"switch_id", "port_id"} <= result.keys():
        raise InvalidInput("local_link_connection needs both switch_id and port_id.")
    return result


def _switch_id(value: str) -> str:
    if _DATAPATH_ID_RE.fullmatch(value):
        return value.lower()
    try:
        return normalize_mac(value)
    except InvalidInput:
        raise InvalidInput(
            f"local_link_connection.switch_id {value!r} is neither a MAC address "
            "nor an OpenFlow datapath ID."
        ) from None


def _validate_smartnic(llc: dict[str, str]) -> None:
    missing = [key for key in ("hostname", "port_id") if key not in llc]
    if missing:
        raise InvalidInput(
            "A smart NIC port's local_link_connection needs hostname (the NIC's agent host) "
            f"and port_id (the NIC port facing the server); missing: {', '.join(missing)}."
        )
    if not _HOSTNAME_RE.fullmatch(llc["hostname"]):
        raise InvalidInput(
            f"local_link_connection.hostname {llc['hostname']!r} is not a valid hostname."
        )
    if not _PORT_NAME_RE.fullmatch(llc["port_id"]):
        raise InvalidInput(
            f"local_link_connection.port_id {llc['port_id']!r} is not a valid port name "
            "(1-64 letters, digits or _ . : @ -)."
        )
    if is_remote(llc):
        _validate_remote(llc)


def _validate_remote(llc: dict[str, str]) -> None:
    missing = [key for key in ("ssh_public_key", "ovsdb_cert") if key not in llc]
    if missing:
        raise InvalidInput(
            "A remotely managed smart NIC needs both ssh_public_key and ovsdb_cert; "
            f"missing: {', '.join(missing)}."
        )
    try:
        load_ssh_public_key(llc["ssh_public_key"].strip().encode())
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput(
            "local_link_connection.ssh_public_key is not a valid OpenSSH public key."
        ) from None
    cert = _certificates("ovsdb_cert", llc["ovsdb_cert"])[0]
    if "ovsdb_ca_cert" in llc:
        authorities = _certificates("ovsdb_ca_cert", llc["ovsdb_ca_cert"])
        if not any(_issued_by(cert, ca) for ca in authorities):
            raise InvalidInput("local_link_connection.ovsdb_cert was not issued by ovsdb_ca_cert.")


def _certificates(key: str, pem: str) -> list[x509.Certificate]:
    # The loader skips blocks it does not know: only certificates and blank lines may remain.
    leftover = _CERTIFICATE_BLOCK.sub("", pem).strip()
    try:
        certs = [] if leftover else x509.load_pem_x509_certificates(pem.strip().encode())
    except ValueError:
        certs = []
    if not certs:
        raise InvalidInput(
            f"local_link_connection.{key} is not a PEM X.509 certificate "
            "(only CERTIFICATE blocks are accepted)."
        )
    return certs


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
