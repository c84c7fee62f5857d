"""Email addresses a subscriber may have: validation, the stored form and the mailbox key.

An address is stored normalised (surrounding space stripped, domain lower-cased; the local part keeps its
case, as RFC 5321 lets the receiving server decide, and it is the spelling mail goes to). One mailbox is one
subscription (issue #24): `mailbox_key` (the local part case-folded) is unique in the database, and
`cap_key` (the same without a `+tag`) is what the confirmation cap counts. The grammar admits only ASCII in
the local part and IDNA in the domain, so the key equals SQLite's `lower(address)` of the stored form, which
the unique index uses. Anything that reads as an RFC 2047 encoded word (`=?...?=`) is refused: written raw
into `To:`, a relay that decodes it would see whatever it encodes (a CRLF and a `Bcc:`). Pure: no store, no
clock.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr

MAX_ADDRESS = 254  # RFC 5321 path limit less the angle brackets
MAX_LOCAL = 64
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_TLD = re.compile(r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})")
_NAMED = re.compile(r"[^<>]*<([^<>]*)>")  # fullmatch: `$` would allow a "\n"
_ENCODED_WORD = re.compile(r"=\?.*\?=", re.DOTALL)  # RFC 2047's `=?charset?enc?text?=`, or anything like one


class InvalidAddress(ValueError):
    """An address paperbot will not store; the message says what is wrong with it."""


def _has_control(s: str) -> bool:
    if s.isascii():  # the common case, checked in C
        return not s.isprintable()
    return any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in s)


def normalize_address(s: str) -> str:
    """The stored form of `s` (`addr` or `Name <addr>`), or InvalidAddress saying why not."""
    if not isinstance(s, str):
        raise InvalidAddress("not a string")
    raw = s.strip()
    if not raw:
        raise InvalidAddress("empty address")
    if len(raw) > 1000:
        raise InvalidAddress("too long")
    if _has_control(raw):
        raise InvalidAddress("contains control characters")
    if _ENCODED_WORD.search(raw):
        raise InvalidAddress(f"{raw[:80]!r}: holds an encoded word (=?...?=), which a mail program would decode")
    m = _NAMED.fullmatch(raw)
    if m is None:
        return _check(raw)
    addr = m.group(1).strip()
    if parseaddr(raw)[1] != addr:
        raise InvalidAddress(f"{raw!r}: cannot read the name and <address> form")
    return _check(addr)


MAX_NAME = 200


def display_name(s: str) -> str | None:
    """The name in `Name <addr>` (quotes taken off), or None for a bare address. Call after normalize_address
    has accepted `s`, so it holds no control character."""
    if not isinstance(s, str) or _NAMED.fullmatch(s.strip()) is None:
        return None
    name = " ".join(parseaddr(s.strip())[0].split())
    return name[:MAX_NAME] or None


def _check(addr: str) -> str:
    if addr.count("@") != 1:
        raise InvalidAddress(f"{addr!r}: " + ("no @" if "@" not in addr else "more than one @"))
    local, domain = addr.split("@")
    if not local:
        raise InvalidAddress(f"{addr!r}: nothing before the @")
    if len(local) > MAX_LOCAL:
        raise InvalidAddress(f"{addr!r}: the part before @ is longer than {MAX_LOCAL} characters")
    if not _LOCAL.fullmatch(local):
        raise InvalidAddress(f"{addr!r}: the part before @ has spaces, two dots in a row or a character "
                             "not allowed")
    try:
        domain = domain.rstrip(".")
        domain = domain.lower() if domain.isascii() else domain.encode("idna").decode("ascii").lower()
    except UnicodeError as e:
        raise InvalidAddress(f"{addr!r}: the domain is not a valid name") from e
    labels = domain.split(".")
    if len(labels) < 2:
        raise InvalidAddress(f"{addr!r}: the domain needs a dot (e.g. example.org)")
    if not all(_LABEL.fullmatch(lb) for lb in labels) or not _TLD.fullmatch(labels[-1]):
        raise InvalidAddress(f"{addr!r}: the domain is not a valid name")
    out = f"{local}@{domain}"
    if len(out) > MAX_ADDRESS:
        raise InvalidAddress(f"{addr!r}: longer than {MAX_ADDRESS} characters")
    return out


def clean_name(name: str) -> str | None:
    """A name from a CSV cell or an option: one line, spaces collapsed, at most MAX_NAME characters."""
    if _has_control(name):
        raise InvalidAddress(f"the name {name[:40]!r} contains control characters")
    if _ENCODED_WORD.search(name):
        raise InvalidAddress(f"the name {name[:40]!r} holds an encoded word (=?...?=)")
    return " ".join(name.split())[:MAX_NAME] or None


def mailbox_key(address: str) -> str:
    """The mailbox behind `address`: its stored form with the local part case-folded (issue #24), so
    `Alice@Example.org` and `alice@example.org` are one subscription. InvalidAddress if it is not valid."""
    local, domain = normalize_address(address).rsplit("@", 1)
    return f"{local.casefold()}@{domain}"


def cap_key(address: str) -> str:
    """The mailbox key without a `+tag` (`alice+ml@x` -> `alice@x`): a +tag is its own subscription, but the
    confirmation cap counts every tag of one mailbox together (issue #24)."""
    local, domain = mailbox_key(address).rsplit("@", 1)
    return f"{local.split('+', 1)[0] or local}@{domain}"
