"""Email addresses a subscriber may have: validation and the stored form.

An address is stored normalised (surrounding space stripped, domain lower-cased; the local part keeps its
case, as RFC 5321 lets the receiving server decide). Pure: no store, no clock.
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
    return " ".join(name.split())[:MAX_NAME] or None
