"""Certificates for the lab (and the tests): a CA, and certificates it issues.

EC P-256 keys, SHA-256 signatures; a server certificate can carry its IP as a
subject alternative name.  SSH keys (ed25519) for the remote NICs' sshd and the
agent that logs in to them.  Private keys come back as unencrypted PKCS#8 PEM:
write them with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def make_ca(cn: str, days: int = 365) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(cn, _name(cn), key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca: CA, cn: str, ip: str | None = None, days: int = 365) -> tuple[x509.Certificate, str]:
    """A certificate for ``cn`` (and ``ip`` as SAN) signed by ``ca``, with its key (PEM)."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(cn, ca_cert.subject, key, days).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert, key_pem


def issue_pem(ca: CA, cn: str) -> tuple[str, str]:
    """PEM certificate and key, as the lab writes them to files."""
    cert, key = issue(ca, cn)
    return pem(cert), key


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ssh_keypair(comment: str) -> tuple[str, str]:
    """An ed25519 SSH key: (private half in OpenSSH format — write it with mode 0600 —,
    public half as an OpenSSH line with ``comment``).  A remote NIC's host key (its public
    half is what its bare-metal port stores) or the agent's login key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"
