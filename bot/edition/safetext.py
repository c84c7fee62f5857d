"""Making untrusted text (titles, summaries, labels and URLs from a digest) safe to show anywhere.

Pure functions. They remove what could change how a message *reads* rather than what it says: control and
format characters (ANSI escapes, bidi overrides, zero-width marks), line breaks that would forge lines in a
plain-text email or headers in a subject, and link targets that are not plain http(s) URLs.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from datetime import date

log = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")
_URL = re.compile(r"^https?://[^\s<>\"'`\\]+$", re.IGNORECASE)
_DROP = {"Cc", "Cf", "Co", "Cs", "Cn"}


def clean(text: object, *, max_len: int = 0) -> str:
    """One line of plain text: control/format characters dropped, any run of whitespace one space."""
    s = "" if text is None else str(text)
    if not (s.isascii() and s.isprintable()):  # printable ASCII (most text) has nothing to drop: skip the scan
        s = "".join(" " if c in "\t\r\n\v\f\x85\u2028\u2029" else c for c in s
                    if c in "\t\r\n\v\f\x85\u2028\u2029" or unicodedata.category(c) not in _DROP)
        s = _SPACE.sub(" ", s)
    elif "  " in s:  # printable ASCII: its only whitespace is " " (search pages clean every hit: issue #29)
        s = _SPACE.sub(" ", s)
    s = s.strip()
    if max_len and len(s) > max_len:
        s = s[: max_len - 1].rstrip() + "…"
    return s


def keep_lines(text: object) -> str:
    """Like `clean` but keeps line breaks: for output the operator's own template has laid out."""
    s = "" if text is None else str(text)
    return "".join(c for c in s if c == "\n" or unicodedata.category(c) not in _DROP)


def safe_url(url: object) -> str | None:
    """`url` if it is a plain http(s) URL, else None (no javascript:, data:, spaces or quotes)."""
    if not isinstance(url, str):
        return None
    u = url.strip()
    if len(u) > 4000 or not _URL.match(u) or any(unicodedata.category(c) in _DROP for c in u):
        return None
    return u


def date_range(first: date | None, last: date | None) -> str:
    """`20–26 February 2023`, `27 February – 5 March 2023`, `29 December 2025 – 4 January 2026`."""
    if first is None or last is None:
        d = first or last
        return f"{d.day} {d:%B %Y}" if d else ""
    if first == last:
        return f"{first.day} {first:%B %Y}"
    if first.year != last.year:
        return f"{first.day} {first:%B %Y} – {last.day} {last:%B %Y}"
    if first.month != last.month:
        return f"{first.day} {first:%B} – {last.day} {last:%B %Y}"
    return f"{first.day}–{last.day} {last:%B %Y}"


def format_subject(pattern: str, fields: dict[str, object], fallback: str) -> str:
    """`pattern` with `{name}` fields filled in; unknown or fancy fields stay as written, logged once.

    Only plain `{name}` / `{name:spec}` of known names are filled, so a config value cannot reach into
    attributes (`{title.__class__}`). The result is one clean line: it becomes a mail header.
    """
    out = []
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as e:
        log.warning("email.subject %r is not a valid pattern (%s); using the title", pattern, e)
        return clean(fallback, max_len=200)
    for literal, name, spec, conv in parts:
        out.append(literal)
        if name is None:
            continue
        if name not in fields or conv:
            log.warning("email.subject: unknown field {%s}; known: %s", name, ", ".join(sorted(fields)))
            out.append("{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
            continue
        try:
            out.append(format(fields[name], spec or ""))
        except (ValueError, TypeError):
            log.warning("email.subject: format {%s:%s} does not apply to %r", name, spec, fields[name])
            out.append(str(fields[name]))
    return clean("".join(out), max_len=200) or clean(fallback, max_len=200)
