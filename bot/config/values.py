"""The value checks every config table uses (durations, one-line strings, numbers, URLs, time zones), each error
naming the file and the key. The channels' settings (bot/channels/<name>/settings.py) use them too.
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Every pattern here is used with fullmatch: `$` would also match before a trailing newline ("evil\n").
_DURATION = re.compile(r"\s*([0-9]+)\s*([smhd])\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HTTP_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")

WAIT_RANGE = (0, 3650 * 86400)  # seconds, settle and max_wait: up to ten years


class ConfigError(Exception):
    """A config problem, already phrased for the operator: file, key, what is wrong."""


def _seconds_text(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def short(value: object) -> str:
    """repr, cut short: an error message quotes the value, not a page of it."""
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "…" + text[-8:]


def parse_duration(value: object, where: str = "duration", allowed: tuple[int, int] = WAIT_RANGE) -> timedelta:
    """`30s`, `30m`, `2h`, `1d`: a whole number and a unit, within `allowed` (seconds, inclusive)."""
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"{where}: {short(value)} is not a duration; "
                          "write a whole number and a unit, e.g. 30m, 2h, 1d")
    lo, hi = allowed
    digits = m.group(1).lstrip("0") or "0"
    seconds = int(digits) * _UNIT_SECONDS[m.group(2)] if len(digits) <= 15 else hi + 1
    if not lo <= seconds <= hi:
        raise ConfigError(f"{where}: {short(value)} is out of range; "
                          f"allowed: {_seconds_text(lo)} to {_seconds_text(hi)}")
    return timedelta(seconds=seconds)


def has_control(text: str) -> bool:
    """Control characters and line separators (not Cf: an emoji's zero-width joiner is fine in a subject)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def line(value: object, where: str, what: str = "a string") -> str:
    """A one-line string: no newline, NUL or other control character (they split log lines and headers)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be {what}")
    if has_control(value):
        raise ConfigError(f"{where}: {value!r} contains a line break or another control character")
    return value


def whole(value: object, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where}: {value!r} must be a whole number from {lo} to {hi}")
    return value


def number(value: object, where: str, lo: float, hi: float, note: str = "") -> float:
    """A finite number in [lo, hi] (TOML allows nan and inf, which no setting means)."""
    if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
            or not lo <= value <= hi):
        raise ConfigError(f"{where}: {value!r} must be a number from {lo:g} to {hi:g}{note}")
    return float(value)


def host_and_port(url: str, where: str, shown: str, what: str) -> None:
    """A host name, and a port from 1 to 65535 if any: urlsplit only fails on `.port`, which would be
    mid-run (a traceback when the first message is sent), so check it here."""
    try:
        u = urlsplit(url)
        host = u.hostname
    except ValueError:  # an unclosed [IPv6 bracket
        host = None
    if not host:
        raise ConfigError(f"{where}: {shown} must be {what}")
    try:
        port = u.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{where}: the port in {shown} is out of range; allowed: 1 to 65535")


def http_url(value: object, where: str, *, show: bool = True) -> str:
    """An http(s) URL with a host, no white space or control characters and a valid port.
    `show=False` keeps the value out of the message (a source URL may carry a token)."""
    shown = repr(value) if show else "the URL"
    if not isinstance(value, str) or not _HTTP_URL.fullmatch(value) or has_control(value):
        raise ConfigError(f"{where}: {shown} must be an http(s) URL")
    host_and_port(value, where, shown, "an http(s) URL")
    return value


def flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {short(value)} must be true or false")
    return value


def table(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")
    return value


def parse_zone(name: object, where: str) -> ZoneInfo:
    """An IANA time zone name (`America/New_York`, `UTC`)."""
    try:
        return ZoneInfo(line(name, where, "a time zone name, e.g. UTC"))
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: a folder of zones, e.g. "America"
        raise ConfigError(f"{where}: {name!r} is not a known time zone (e.g. UTC, Europe/Berlin)") from e


def unknown(where: str, table: dict, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def on_this_machine(host: str | None) -> bool:
    """`localhost` (or a name under it), or a loopback address (127.0.0.1, ::1): only this machine answers it."""
    host = (host or "").strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
