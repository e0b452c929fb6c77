"""What a secret looks like, and how it is hidden: the one redaction rule of metalnic.

Both APIs' views (every free-form object and text field they render), the
JSON response class (a safety net for URL credentials in any answer), every
error message (``metalnic.errors``), a node's ``last_error`` and history (the
model), the JSON patch ``test`` operation and every log record of the server,
the NIC agent and the ramdisk go through this module, so a secret is
recognised the same way everywhere:

- the value of any key whose name looks secret (``password``, ``token``,
  ``configdrive`` … case-insensitive, at any depth) becomes ``******``;
- in any string: credentials inside URLs (``https://user:pass@bmc`` and the
  scheme-less ``user:pass@bmc``, up to the last ``@`` of the word), PEM
  private key blocks, ``Basic``/``Bearer`` credentials and ``key=value`` or
  ``'key': 'value'`` pairs whose key looks secret.

The patterns depend on nothing stored, so redaction answers the same whatever
the secret is: it cannot be used as an oracle.  Log records additionally lose
*known* secret values (the NIC agent's password, BMC passwords the conductor
has used): :func:`remember` registers them.  That list is process-wide because
logging is; it is never applied to API answers, where matching a tenant's text
against other tenants' secrets would tell the tenant whether a guess is right.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "******"
_SECRET_MARKERS = (
    "password",
    "passwd",
    "pswd",
    "secret",
    "token",
    "private_key",
    "privatekey",
    "passphrase",
    "credential",
    "api_key",
    "apikey",
    "kg_key",
    "configdrive",
)
_MARKERS = "|".join(_SECRET_MARKERS)

# scheme://userinfo@ — greedy up to the last '@' of the word: a password may hold '@' or '/'.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s<>`]*@")
# user:password@host without a scheme (how redfish_address may be written).
_BARE_USERINFO = re.compile(r"(?<![\w:/@.\-])[^\s\"'<>`/@:]+:(?!//)[^\s<>`]*@(?=[\w\[])")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END (?P=label)-----|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"(?i)\b(?P<scheme>basic|bearer)\s+[A-Za-z0-9+/=._~\-]{6,}")
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>[\w.\-]*(?:" + _MARKERS + r")[\w.\-]*['\"]?\s*[:=]\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;&'\"}\])]+)"
)
_HAS_MARKER = re.compile(r"(?i)" + _MARKERS + r"|basic\s|bearer\s")


@functools.lru_cache(maxsize=8192)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``ipmi_password``, ``X-Auth-Token`` …)."""
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def _quoted_mask(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "'\"" else ""
    return f"{match['key']}{quote}{MASK}{quote}"


def redact_text(text: str) -> str:
    """``text`` with every credential-shaped part replaced by ``******``.

    Percent-encoded credentials (a URL quoted into a request path, as access
    logs show it) are found in the decoded text, which is then what is shown.
    """
    if len(text) <= _CACHED_LENGTH:
        return _redact_short(text)
    return _redact_text(text)


_CACHED_LENGTH = 256  # names, addresses, states: the same few strings in every answer


@functools.lru_cache(maxsize=16384)
def _redact_short(text: str) -> str:
    return _redact_text(text)


def _redact_text(text: str) -> str:
    if "%" not in text:
        return _redact_plain(text)
    clean = _redact_plain(text)
    decoded = text
    for _ in range(3):  # nested quoting: %2540 is a quoted %40
        decoded = urllib.parse.unquote(decoded)
        redacted = _redact_plain(decoded)
        if redacted != decoded:
            return redacted
        if "%" not in decoded:
            break
    return clean


def _redact_plain(text: str) -> str:
    # Cheap membership tests first: most strings (names, UUIDs, states) need none of this.
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
        text = _BARE_USERINFO.sub(f"{MASK}@", text)
    if "-----" in text:
        text = _PRIVATE_KEY.sub(
            lambda m: f"-----BEGIN {m['label']}-----{MASK}-----END {m['label']}-----", text
        )
    separated = ":" in text or "=" in text  # a key=value needs one, a header a blank
    if (separated or " " in text) and _HAS_MARKER.search(text):
        text = _AUTH_HEADER.sub(lambda m: f"{m['scheme']} {MASK}", text)
        if separated:
            text = _KEY_VALUE.sub(_quoted_mask, text)
    return text


def redact(data: Any, mask_keys: bool = True) -> Any:
    """A copy of JSON-like ``data``: secret keys' values masked, every string redacted.

    ``mask_keys=False`` keeps the values of secret-named keys (for the rare
    answer that must carry one to its rightful caller) but still redacts strings.
    """
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if isinstance(k, str):
                if mask_keys and v is not None and is_secret_key(k):
                    v = MASK
                k = redact_text(k)
            if isinstance(v, str):
                v = redact_text(v)
            elif isinstance(v, dict | list | tuple):
                v = redact(v, mask_keys)
            out[k] = v
        return out
    if isinstance(data, list | tuple):
        return [redact(v, mask_keys) for v in data]
    return data


def might_hold_credentials(serialised: bytes) -> bool:
    """False only when serialised JSON certainly holds no URL credentials (none quoted either).

    Two ``memchr`` scans: the answer-wide safety net stays cheap enough for
    every answer; secret-named keys are masked where free-form objects are
    rendered (the views), which is where they can occur.
    """
    return b"@" in serialised or b"%" in serialised


# Anything ``redact`` changes needs one of these in the text (case-insensitive):
# a secret marker (a key's name or key=value), "@" (URL credentials), "%" (quoted
# ones), "-----" (PEM) or an authorisation scheme.  "\\u" (a JSON escape) and
# non-ASCII text go the full way: an escaped or case-folded letter could spell one.
_NEEDS_A_LOOK = (*_SECRET_MARKERS, "@", "%", "-----", "basic", "bearer", "\\u")


def json_is_clean(serialised: str) -> bool:
    """True only when ``redact`` would leave every value of this serialised JSON as it
    is (no secret-named key, no credential-shaped string): a few substring scans
    instead of a walk over the decoded value.  Several texts joined by a newline can
    be checked at once (a match across two of them only costs the full walk)."""
    if not serialised.isascii():
        return False
    lowered = serialised.lower()
    return all(needle not in lowered for needle in _NEEDS_A_LOOK)


def holds_private_key(data: Any) -> bool:
    """Whether any string in ``data`` (at any depth) carries a PEM private key block."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _PRIVATE_KEY_BEGIN.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def secret_values(data: Any) -> list[str]:
    """The string values held under secret-named keys in ``data``, at any depth."""
    found: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and is_secret_key(k) and isinstance(v, str):
                    found.append(v)
                else:
                    stack.append(v)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


# --- logs ---------------------------------------------------------------------------------

_MIN_KNOWN = 6  # shorter values would mask ordinary words in every line
_MAX_KNOWN_LENGTH = 4096  # a config drive is not quoted whole in a log line
_MAX_KNOWN = 2048
_known: OrderedDict[str, None] = OrderedDict()
_known_longest_first: tuple[str, ...] = ()
_known_lock = threading.Lock()


def remember(*values: str | None) -> None:
    """Hide these exact values from every later log record (the latest 2048 are kept)."""
    global _known_longest_first
    with _known_lock:
        fresh = False
        for value in values:
            if isinstance(value, str) and _MIN_KNOWN <= len(value) <= _MAX_KNOWN_LENGTH:
                fresh = fresh or value not in _known
                _known[value] = None
                _known.move_to_end(value)
        while len(_known) > _MAX_KNOWN:
            _known.popitem(last=False)
            fresh = True
        if fresh:
            _known_longest_first = tuple(sorted(_known, key=len, reverse=True))


def scrub_values(text: str, values: Iterable[str]) -> str:
    """``text`` without these exact values; give them longest first (no partial leftovers)."""
    for value in values:
        if value and value in text:
            text = text.replace(value, MASK)
    return text


def redact_log(text: str) -> str:
    """:func:`redact_text` plus the values registered with :func:`remember`."""
    return scrub_values(redact_text(text), _known_longest_first)


class _Shown:
    """A log argument replaced by its redacted ``str`` and ``repr``."""

    def __init__(self, text: str, representation: str) -> None:
        self.text, self.representation = text, representation

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.representation


def _scrub_arg(arg: Any) -> Any:
    if arg is None or isinstance(arg, bool | int | float):
        return arg
    if isinstance(arg, str):
        return redact_log(arg)
    text, representation = str(arg), repr(arg)
    clean_text, clean_repr = redact_log(text), redact_log(representation)
    if clean_text == text and clean_repr == representation:
        return arg
    return _Shown(clean_text, clean_repr)


_formatter = logging.Formatter()


def scrub_record(record: logging.LogRecord) -> None:
    """Redact a log record in place: message, arguments, traceback and stack."""
    if isinstance(record.msg, str):
        record.msg = redact_log(record.msg)
    elif record.msg is not None:
        record.msg = _scrub_arg(record.msg)
    if isinstance(record.args, Mapping):
        record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_scrub_arg(a) for a in record.args)
    if record.exc_info and not record.exc_text:
        # Formatters print exc_text when it is set: the traceback is redacted once, here.
        record.exc_text = redact_log(_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_log(record.stack_info)


def install_logging() -> None:
    """Redact every log record this process creates, whatever handler writes it.

    A record factory rather than a handler filter: uvicorn and ``basicConfig``
    replace handlers, but every record of every logger is made by the factory.
    Installing twice is harmless.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "metalnic_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub_record(record)
        return record

    factory.metalnic_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
