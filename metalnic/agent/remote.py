"""Remote mode: programming a NIC over OVSDB-SSL and OpenFlow-SSL, after proving who it is.

The identity to trust comes from the server, not from the agent's config: the
bare-metal port of a remote NIC stores the certificate the NIC's OVSDB server
presents (``ovsdb_cert``), optionally the CA that issued it (``ovsdb_ca_cert``)
and the NIC's SSH host key (``ssh_public_key``); all arrive in the binding's
``local_link_information``.

Every pass first reads the NIC over SSH (``sshchannel.py``): its SSH server must
present exactly the stored host key — otherwise the NIC is untrusted, nothing is
changed on it and its ports are reported DOWN with both keys' fingerprints
(``Untrusted``).  The SSH reading gives the NIC's boot id (a new one: the NIC
rebooted, so it is proven and programmed anew, as after an OVS restart) and its
netdevs (the planner refuses a binding whose port B the NIC does not have; the
heartbeat reports them).

Before changing a NIC the agent also opens a TLS connection to its OVSDB with its
own client certificate and requires that the NIC presents exactly the stored
certificate, issued by the stored CA (again whenever the stored certificate
changes, after an OVS failure or a reboot, and every ``REPROVE_AFTER`` seconds;
every tool run in between verifies the NIC against the same CA).  Otherwise the
NIC is not touched and every port on it is reported ERROR with the reason.

The OVS tools then run with that CA as their trust (``-C``), so the OpenFlow
connections are verified too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from metalnic.agent.nic import Nic, NicConfig, Pass
from metalnic.agent.ovs import Ovs, OvsError, Tls
from metalnic.agent.sshchannel import ChannelError, HostKeyMismatch, SshChannel, SshTarget
from metalnic.contract.agent import DesiredState, PortStatusName

if TYPE_CHECKING:
    from metalnic.agent.service import AgentConfig

log = logging.getLogger(__name__)

# The NIC's identity is proven with a TLS handshake before the first change, whenever
# the stored certificate changes, after any OVS failure, and at least this often.
REPROVE_AFTER = 60.0


class IdentityError(Exception):
    """The NIC is not the one its bare-metal port describes (or cannot be checked)."""

    status: PortStatusName = "ERROR"  # what its ports are reported as


class Untrusted(IdentityError):
    """The NIC's SSH host key is not the stored one: its ports stay DOWN, untouched."""

    status = "DOWN"


class RemoteNic(Nic):
    def __init__(
        self, ovs: Ovs, config: NicConfig, agent: AgentConfig, ssh: SshTarget | None = None
    ) -> None:
        super().__init__(ovs, config)
        self.agent = agent
        self.endpoint = ovs.endpoint
        self.verified: str | None = None  # fingerprint of the identity last proven
        self.proven_at = 0.0
        self.channel = SshChannel(ssh, agent.ssh_private_key or "") if ssh else None
        self.host_key: str | None = None  # the stored SSH host key last proven
        self.boot_id: str | None = None
        self.inventory: dict[str, str] = {}  # netdev → MAC, as last read over SSH

    def reconcile(self, desired: DesiredState) -> Pass:
        pinned, ca = stored_identity(desired)
        if pinned is None and self.verified is None:
            return Pass()  # nothing bound here yet and nothing known to trust: hands off
        self._read_over_ssh(stored_host_key(desired) or self.host_key)
        if pinned is not None and (
            self.verified != _fingerprint(pinned, ca)
            or time.monotonic() - self.proven_at > REPROVE_AFTER
        ):
            self._prove(pinned, ca)
        try:
            return super().reconcile(desired)
        except OvsError:
            self.verified = None  # a NIC that fails may have been replaced: prove it again
            raise

    def _read_over_ssh(self, host_key: str | None) -> None:
        """The NIC's boot id and netdevs, from an SSH server with the stored host key."""
        if host_key is None:
            raise IdentityError("the bare-metal port stores no ssh_public_key for this NIC")
        if self.channel is None or not self.agent.ssh_private_key:
            raise IdentityError("remote mode needs nics.<host>.ssh and the agent's ssh_private_key")
        try:
            facts = self.channel.read(host_key)
        except HostKeyMismatch as exc:
            self.verified = None  # untrusted now: prove everything again once it matches
            raise Untrusted(str(exc)) from None
        except ChannelError as exc:
            raise IdentityError(str(exc)) from None
        if self.boot_id is not None and facts.boot_id != self.boot_id:
            log.warning(
                "NIC %s rebooted (boot id %s, was %s): proving and programming it anew",
                self.config.host,
                facts.boot_id,
                self.boot_id,
            )
            self.verified = None
            self.forget()
        self.host_key, self.boot_id = host_key, facts.boot_id
        self.inventory = facts.netdevs
        self.netdevs = frozenset(facts.netdevs)

    def _prove(self, pinned: str, ca: str | None) -> None:
        if not (self.agent.private_key and self.agent.certificate):
            raise IdentityError("remote mode needs the agent's private_key and certificate")
        cert = x509.load_pem_x509_certificate(pinned.encode())
        trust = ca or pinned
        fingerprint = _fingerprint(pinned, ca)
        directory = Path(self.agent.state_dir) / self.config.host
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_file = directory / f"trust-{fingerprint}.pem"
        if not ca_file.exists():
            tmp = ca_file.with_suffix(".tmp")
            tmp.write_text(trust)
            os.replace(tmp, ca_file)
        presented = _presented_certificate(
            self.endpoint.db, str(ca_file), self.agent.certificate, self.agent.private_key
        )
        if presented != cert.public_bytes(Encoding.DER):
            raise IdentityError(
                f"the OVSDB server at {self.endpoint.db} presents a certificate other than "
                "the one stored on the bare-metal port (ovsdb_cert)"
            )
        tls = Tls(self.agent.private_key, self.agent.certificate, str(ca_file))
        self.ovs = Ovs(replace(self.endpoint, tls=tls))
        self.verified = fingerprint
        self.proven_at = time.monotonic()


def _fingerprint(pinned: str, ca: str | None) -> str:
    return hashlib.sha256((ca or pinned).encode() + pinned.encode()).hexdigest()[:16]


def stored_identity(desired: DesiredState) -> tuple[str | None, str | None]:
    """The ``ovsdb_cert`` (and CA) the bare-metal ports of this NIC store; they must agree."""
    found: set[tuple[str, str | None]] = set()
    for port in desired.ports:
        for link in port.local_link_information:
            if link.ovsdb_cert:
                found.add((link.ovsdb_cert.strip(), link.ovsdb_ca_cert))
    if len(found) > 1:
        raise IdentityError("the bare-metal ports of this NIC store different OVSDB certificates")
    if not found:
        return None, None
    cert, ca = found.pop()
    return cert + "\n", (str(ca).strip() + "\n") if ca else None


def stored_host_key(desired: DesiredState) -> str | None:
    """The ``ssh_public_key`` the bare-metal ports of this NIC store; they must agree."""
    found = {
        " ".join(link.ssh_public_key.split()[:2])
        for port in desired.ports
        for link in port.local_link_information
        if link.ssh_public_key
    }
    if len(found) > 1:
        raise IdentityError("the bare-metal ports of this NIC store different ssh_public_keys")
    return found.pop() if found else None


def _presented_certificate(target: str, ca_file: str, cert: str, key: str) -> bytes:
    """Handshake with ``ssl:HOST:PORT`` as the agent; the DER certificate the server showed."""
    kind, _, rest = target.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "ssl" or not host or not port.isdigit():
        raise IdentityError(f"remote NICs need an ssl:HOST:PORT OVSDB target, not {target!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # NICs are addressed by IP; the certificate is pinned instead
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(ca_file)
        context.load_cert_chain(cert, key)
        with (
            socket.create_connection((host.strip("[]"), int(port)), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise IdentityError(
            f"the OVSDB server at {target} presents a certificate not issued by the CA "
            f"stored on the bare-metal port ({exc.verify_message})"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise IdentityError(f"cannot reach the OVSDB server at {target}: {exc}") from None
    if not der:
        raise IdentityError(f"the OVSDB server at {target} presented no certificate")
    return der
