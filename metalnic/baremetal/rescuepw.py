"""The rescue password: hashed where the API takes it, never kept in clear.

Ironic's rescue verb carries ``rescue_password``; the conductor hands the rescue
ramdisk's agent a salted crypt(3) hash of it (``rescue.finalize_rescue`` with
``hashed: true``), which the ramdisk writes into its ``/etc/shadow``.  metalnic
hashes at the API, inside the transaction that accepts the verb, and stores only
the hash (``instance_info.hashed_rescue_password``; Ironic also keeps the
plaintext for agents older than the hashed protocol — metalnic's agent is not).
Like every key named "password", it reads ``******`` in API answers, history and
logs (``metalnic.redact``).  The hash lives while the node rescues: the state
machine drops it on every move into any other state (``conductor/task.advance``),
which covers Ironic's ``remove_rescue_password`` cases — the agent took it, the
rescue failed, timed out or was aborted, unrescue, delete.

The scheme is SHA-512 crypt (``$6$``), 16 random salt characters, 5000 rounds:
what Ironic's ``rescue_password_hash_algorithm = sha512`` produces (Python's
crypt with its default rounds) and what glibc/libxcrypt (the ramdisk's dropbear)
verify.  More rounds would cost every SSH login seconds on the lab's emulated
CPUs; the hash only ever travels to the rescued host.

Library: ``libpass`` (the maintained fork of passlib, imported as ``passlib``).
The standard library's ``crypt`` was deprecated by PEP 594 and removed in 3.13;
``crypt-r`` is a frozen copy of it and needs the system's libcrypt; ``bcrypt``
(already a dependency, for API credentials) makes ``$2b$`` hashes, which
Ironic's agent protocol does not use.  libpass implements SHA-512 crypt in
Python, so hashing works the same wherever the server runs.
"""

from __future__ import annotations

from passlib.hash import sha512_crypt

from metalnic.errors import InvalidInput

HASH_KEY = "hashed_rescue_password"  # Ironic's instance_info key
# Ironic's API message for a rescue without a usable password.
REQUIRED = 'A non-empty "rescue_password" is required when setting target provision state to rescue'
ONLY_RESCUE = '"rescue_password" is only valid when setting target provision state to rescue'
ROUNDS = 5000


def hash_password(password: object) -> str:
    """The password's SHA-512 crypt hash; refuses what Ironic refuses (empty, blank)."""
    if not isinstance(password, str) or not password.strip():
        raise InvalidInput(REQUIRED)
    return str(sha512_crypt.using(rounds=ROUNDS).hash(password))


def verify(password: str, hashed: str) -> bool:
    return bool(sha512_crypt.verify(password, hashed))
