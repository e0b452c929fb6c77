"""Remote mode's SSH channel to a NIC: what OVSDB cannot tell — its netdevs and its boot id.

One SSH connection per remote NIC, kept across passes and opened again after any
failure, with one shell in it (``/bin/sh``: a new session per pass would start
the user's login shell every time).  Each pass runs one command in it (``cat
/proc/sys/kernel/random/boot_id && ip -j link show``, its answer ended by a
marker line with its exit status): the boot id tells the agent that the NIC
rebooted since the last pass (``remote.py`` then proves and programs it anew),
the netdevs (representors: names and MACs) which port B names a binding may use
at all.

The NIC is trusted only if its SSH server presents **exactly** the host key its
bare-metal port stores (``local_link_connection.ssh_public_key``): the transport
offers the server only that key's algorithm, and the key presented must be that
key, byte for byte.  No known_hosts file, no trust on first use: the stored key
is checked on every pass (the connection is kept only while the stored key is
the one it was proven against), and a mismatch (``HostKeyMismatch``) names both
fingerprints, never key material.  The agent logs in with its own key (config
``ssh_private_key``), which the NIC authorises.

paramiko, not asyncssh: the agent is threads — one worker per NIC whose OVS tool
runs block — and paramiko's ``Transport`` is a blocking client that fits one
such thread, where asyncssh would need an event loop in each worker (or one
shared loop and hand-offs into it) for a single command per pass.  paramiko's
errors are translated here, in one place (``ChannelError``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import socket
import uuid
from dataclasses import dataclass

import paramiko

# paramiko's debug log is a packet-level trace: keep it to its warnings.
logging.getLogger("paramiko").setLevel(logging.WARNING)

# What the NIC is asked each pass: its boot id, then its netdevs as JSON.
FACTS_COMMAND = "cat /proc/sys/kernel/random/boot_id && ip -j link show"

MAX_ANSWER = 4 << 20  # bytes: a NIC with thousands of representors stays well below

# Host key algorithms that present a key of each stored type (RSA keys sign with SHA-2).
ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


@dataclass(frozen=True)
class SshTarget:
    """Where a NIC's SSH server listens and whom the agent logs in as."""

    host: str
    port: int = 22
    user: str = "root"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


@dataclass(frozen=True)
class NicFacts:
    """One pass's reading of a NIC."""

    boot_id: str
    netdevs: dict[str, str]  # netdev name → MAC address ("" when it has none)


class ChannelError(Exception):
    """The NIC cannot be read over SSH (unreachable, login refused, bad answer)."""


class HostKeyMismatch(ChannelError):
    """The NIC's SSH server is not the one its bare-metal port describes."""


@dataclass(frozen=True)
class HostKey:
    """An OpenSSH public key as stored on a port: its type and its wire blob."""

    kind: str
    blob: bytes

    @classmethod
    def parse(cls, text: str) -> HostKey:
        words = text.split()
        if len(words) < 2:
            raise ChannelError("the stored ssh_public_key is not an OpenSSH public key")
        try:
            blob = base64.b64decode(words[1], validate=True)
        except binascii.Error:
            raise ChannelError("the stored ssh_public_key is not an OpenSSH public key") from None
        return cls(words[0], blob)

    @property
    def fingerprint(self) -> str:
        """As ``ssh-keygen -l`` shows it: SHA256:<base64, unpadded>."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def __str__(self) -> str:
        return f"{self.kind} {self.fingerprint}"


def parse_facts(output: str) -> NicFacts:
    """The boot id (first line) and the netdevs (``ip -j link show``) of ``FACTS_COMMAND``."""
    first, _, rest = output.partition("\n")
    try:
        boot_id = str(uuid.UUID(first.strip()))
        links = json.loads(rest)
    except ValueError:
        why = f"the NIC's answer is not a boot id and netdevs: {output[:80]!r}"
        raise ChannelError(why) from None
    if not isinstance(links, list):
        raise ChannelError("the NIC's netdevs (ip -j link show) are not a list")
    netdevs: dict[str, str] = {}
    for link in links:
        if isinstance(link, dict) and isinstance(link.get("ifname"), str):
            if link.get("link_type") == "loopback":
                continue
            netdevs[link["ifname"]] = str(link.get("address") or "")
    return NicFacts(boot_id, netdevs)


def host_key_algorithms(kind: str) -> tuple[str, ...]:
    """The host key algorithms that make a server present its key of type ``kind``."""
    wanted = ALGORITHMS.get(kind, (kind,))
    with socket.socket() as unconnected:  # paramiko's defaults, without any connection
        known = paramiko.Transport(unconnected).get_security_options().key_types
    usable = tuple(a for a in wanted if a in known)
    if not usable:
        raise ChannelError(
            f"the stored ssh_public_key is of a type this agent cannot check ({kind})"
        )
    return usable


class SshChannel:
    """One NIC's SSH connection (not thread-safe: one NIC worker uses it)."""

    def __init__(self, target: SshTarget, private_key: str, timeout: float = 5.0) -> None:
        self.target = target
        self.private_key = private_key
        self.timeout = timeout
        self._transport: paramiko.Transport | None = None
        self._presented: HostKey | None = None
        self._shell: paramiko.Channel | None = None
        self._marker = ""  # ends each answer of the shell (random per shell)

    def read(self, stored: str) -> NicFacts:
        """The NIC's facts, from a server that presents exactly the ``stored`` key."""
        expected = HostKey.parse(stored)
        if self._presented != expected or self._transport is None:
            self.close()  # new, broken, or proven against another stored key: anew
        elif not self._transport.is_active():
            self.close()
        if self._transport is None:
            self._connect(expected)
        try:
            return parse_facts(self._run(FACTS_COMMAND))
        except ChannelError:
            self.close()  # a NIC that answers oddly may be another one: connect anew
            raise

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport, self._presented, self._shell = None, None, None

    def _connect(self, expected: HostKey) -> None:
        where = str(self.target)
        try:
            sock = socket.create_connection((self.target.host, self.target.port), self.timeout)
        except OSError as exc:
            raise ChannelError(f"cannot reach the SSH server at {where}: {exc}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.get_security_options().key_types = host_key_algorithms(expected.kind)
            try:
                transport.start_client(timeout=self.timeout)
            except paramiko.ssh_exception.IncompatiblePeer:
                raise HostKeyMismatch(
                    f"the SSH server at {where} presents no {expected.kind} host key; "
                    f"the bare-metal port stores {expected} (ssh_public_key)"
                ) from None
            key = transport.get_remote_server_key()
            presented = HostKey(key.get_name(), key.asbytes())
            if presented != expected:  # never log in to (nor keep) a server not proven
                raise HostKeyMismatch(
                    f"the SSH server at {where} presents host key {presented}, "
                    f"the bare-metal port stores {expected} (ssh_public_key)"
                )
            transport.auth_publickey(self.target.user, self._key())
            self._transport, self._presented = transport, presented
        except paramiko.AuthenticationException:
            transport.close()
            raise ChannelError(
                f"the SSH server at {where} refused the agent's key (ssh_private_key)"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise ChannelError(f"SSH to {where} failed: {str(exc) or type(exc).__name__}") from None
        except BaseException:
            transport.close()
            raise

    def _key(self) -> paramiko.PKey:
        try:
            return paramiko.PKey.from_path(self.private_key)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ChannelError(
                f"cannot load the agent's ssh_private_key: {type(exc).__name__}"
            ) from None

    def _run(self, command: str) -> str:
        """``command``'s output (stdout and stderr) in the connection's shell."""
        where = str(self.target)
        try:
            shell = self._shell or self._open_shell()
            end = f"\n{self._marker} ".encode()
            shell.sendall(f"{{ {command}; }} 2>&1; printf '\\n{self._marker} %s\\n' $?\n".encode())
            buf = b""
            while (at := buf.find(end)) < 0 or not buf.endswith(b"\n"):
                chunk = shell.recv(1 << 16)
                if not chunk:
                    raise EOFError("the NIC's shell ended")
                buf += chunk
                if len(buf) > MAX_ANSWER:
                    raise ChannelError(f"the NIC at {where} answers more than {MAX_ANSWER} bytes")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise ChannelError(f"SSH to {where} failed: {str(exc) or type(exc).__name__}") from None
        out = buf[:at].decode(errors="replace")
        status = buf[at + len(end) :].strip()
        if status != b"0":
            why = (out.strip().splitlines() or [f"exit {status.decode(errors='replace')}"])[-1]
            raise ChannelError(f"{command!r} failed on the NIC ({where}): {why[:200]}")
        return out

    def _open_shell(self) -> paramiko.Channel:
        """One shell for the connection's life: a command per pass costs no new session
        (a session starts the user's login shell: ~0.3 s with bash and a .bashrc)."""
        assert self._transport is not None
        shell = self._transport.open_session(timeout=self.timeout)
        shell.settimeout(self.timeout)
        shell.exec_command("exec /bin/sh")
        self._shell, self._marker = shell, f"metalnic-{uuid.uuid4().hex}"
        return shell
