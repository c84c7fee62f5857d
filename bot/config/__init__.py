"""The TOML config: where it is found, what each key means, and errors that name the file and the key.

Lookup order: `--config PATH`, else `$PAPERBOT_CONFIG`, else `./paperbot.toml`, else the built-in defaults.
Relative paths are relative to the config file's folder (the working directory when there is no file).
Secrets never live here: they come from environment variables only.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.track.model import FORMATS

# Every pattern here is used with fullmatch: `$` would also match before a trailing newline ("evil\n").
_DURATION = re.compile(r"\s*([0-9]+)\s*([smhd])\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SOURCE_KINDS = ("github", "git", "url", "feed")
# A source name becomes a folder, a lock file and a word in log lines: a short, safe set only.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GITHUB = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_HTTP_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
_LISTEN = re.compile(r"([A-Za-z0-9_.:\[\]-]*):([0-9]{1,5})")

# Allowed ranges: wide enough for any real use, narrow enough that a slip (a missing unit, an extra digit)
# is caught here instead of overflowing a date or polling in a tight loop.
EVERY_RANGE = (1, 30 * 86400)  # seconds: a source is checked at most once a second, at least once a month
WAIT_RANGE = (0, 3650 * 86400)  # seconds, settle and max_wait: up to ten years
LATE_WAIT_RANGE = (0, 365 * 86400)  # seconds, late_max_wait: late papers never wait more than a year
BACKFILL_MAX = 10_000
CREDIT_MAX = 120  # characters of a source's credit name


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


@dataclass(frozen=True)
class CheckResult:
    """One line of `paperbot check`: what was checked, whether it passed, and what was found."""

    what: str  # "config email.from", "source dair-ai", "email smtp"
    ok: bool
    detail: str
    note: bool = False  # informative only: counts neither as passed nor as failed

    def line(self) -> str:
        mark = "note" if self.note else "ok" if self.ok else "FAIL"
        return f"{mark:4s}  {self.what}: {self.detail}"


@dataclass(frozen=True)
class PublishSettings:
    settle: timedelta = timedelta(hours=2)
    max_wait: timedelta = timedelta(hours=48)
    backfill: int = 1
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # the top-level key: the default clock
    # A week clearly short of its source's usual count waits this long past its last day for the rest (0: never)
    wait_for_papers: timedelta = timedelta(hours=48)
    late_max_wait: timedelta = timedelta(days=7)  # papers added to a week already out wait this long for the next
    approve: bool = False  # hold every ready week as awaiting-approval until `paperbot approve WEEK`
    editor: str = ""  # who gets the test copy of a week awaiting approval ("" = the [email] from address)


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str  # github | git | url | feed
    location: str  # owner/repo, git URL or path, or HTTP URL
    paths: tuple[str, ...] = ("README.md",)
    branch: str = "main"
    format: str = "auto"
    every: timedelta = timedelta(minutes=30)
    timezone: ZoneInfo | None = None  # where the maintainer's week ends; None: learned from commits, or the default
    expect_papers: int | None = None  # papers in a complete week; None: learned from the weeks already released
    credit: str | None = None  # who curated it, as editions credit them; None: the repository or feed title
    credit_url: str | None = None  # where the credit links; None: the original (bot/edition/credit.py)


@dataclass(frozen=True)
class WebSettings:
    """`[web]`: the small web app (unsubscribe, view in browser)."""

    base_url: str = "http://localhost:8080"
    listen: str = "127.0.0.1:8080"
    header_timeout: float = 10.0  # seconds a client has to send its request headers (and a POST its body)
    title: str = "ML Papers of the Week"
    description: str = "The week's most talked-about machine-learning papers, once a week by email."
    confirm_ttl: float = 48 * 3600.0  # seconds a confirmation link works
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    subscribe_limit: tuple[int, float] = (5, 600.0)  # subscribe attempts per client per window (seconds)
    confirm_per_day: int = 3  # confirmation emails per address per 24 hours

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


@dataclass(frozen=True)
class FetchSettings:
    """`[fetch]`: what reading one file of a source may cost, HTTP and git alike."""

    timeout: float = 30.0  # seconds for one HTTP attempt, all of it: connect, status line, headers and body
    max_size: int = 50 * 2**20  # bytes per file (an HTTP body, a git blob)


@dataclass(frozen=True)
class AlertsSettings:
    """`[alerts]`: problems the operator hears about (bot/alerts.py), at most once per problem per `every`.
    The Discord webhook URL is a secret: it comes from $PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL, never from here."""

    email: tuple[str, ...] = ()  # who gets alerts by email (over [email] smtp_url; else into the outbox)
    every: timedelta = timedelta(hours=6)  # one alert per problem per this, however often it is seen
    failures: int = 3  # a source failing this many polls in a row
    quiet: timedelta = timedelta(days=14)  # a source with no new week for this long
    layout_drop: float = 0.5  # a version parsing to fewer than this share of the weeks of the one before
    failed_after: timedelta = timedelta(hours=24)  # a delivery still failed this long after its week was planned
    bounce_rate: float = 0.05  # an edition whose bounces pass this share of what it sent


@dataclass(frozen=True)
class Config:
    """What config.py reads: the top level, [publish], [github], [fetch], the sources, [web], [alerts], [health].
    Each channel's table (`cfg.email`, `cfg.x`, `cfg.discord`) is its own package's (bot/channels/<name>/
    settings.py); the channel registry (bot/channels/__init__.py) joins them onto this class and loads the file."""

    path: Path | None  # the file it came from; None for built-in defaults
    base_dir: Path
    state_dir: Path
    publish: PublishSettings
    sources: tuple[SourceConfig, ...]
    github_base_url: str = "https://raw.githubusercontent.com"
    web: WebSettings = field(default_factory=WebSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    health: HealthSettings = field(default_factory=lambda: HealthSettings())

    @property
    def db_path(self) -> Path:
        return self.state_dir / "paperbot.db"

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"{self.path or 'config'}: no source named {name!r}")


# templates/config.toml: `paperbot init` writes it; without a config file, its values are the config.
DEFAULT_TOML = resources.files("bot.templates").joinpath("config.toml").read_text(encoding="utf-8")

_TOP_KEYS = {"state_dir", "timezone", "publish", "sources", "github", "web", "fetch", "alerts", "health"}
_WEB_KEYS = {"base_url", "listen", "header_timeout", "title", "description", "confirm_ttl", "trusted_proxies",
             "subscribe_limit", "confirm_per_day"}
_LIMIT = re.compile(r"\s*(\d{1,6})\s*/\s*(\S+)\s*")
CONFIRM_PER_DAY_MAX = 100
_FETCH_KEYS = {"timeout", "max_size"}
_ALERTS_KEYS = {"email", "every", "failures", "quiet", "layout_drop", "failed_after", "bounce_rate"}
_PUBLISH_KEYS = {"settle", "max_wait", "backfill", "wait_for_papers", "late_max_wait", "approve", "editor"}
_SOURCE_KEYS = {"name", "path", "branch", "format", "every", "timezone", "expect_papers", "credit",
                *SOURCE_KINDS}
EXPECT_MAX = 10_000


def find_config_path(explicit: str | os.PathLike | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("PAPERBOT_CONFIG")
    if env:
        return Path(env)
    local = Path("paperbot.toml")
    return local if local.exists() else None


def config_name(path: Path | None) -> str:
    """How errors name the config: its file, or the built-in defaults."""
    return str(path) if path else "built-in config"


def read_config(explicit: str | os.PathLike | None = None) -> tuple[dict, Path | None, Path]:
    """The config's TOML as data, the file it came from (None: the built-in defaults) and the folder relative paths
    are relative to. The channel registry's `load_config` parses it with every channel's table."""
    path = find_config_path(explicit)
    if path is None:
        return tomllib.loads(DEFAULT_TOML), None, Path.cwd()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return data, path, path.resolve().parent


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


def parse_config(data: dict, path: Path | None, base_dir: Path, sections: Collection[str] = ()) -> Config:
    """Everything but the channels' tables, whose names (`sections`) the top level allows: the registry parses
    those."""
    f = config_name(path)
    unknown(f, data, _TOP_KEYS | set(sections))
    tz = parse_zone(data.get("timezone", "UTC"), f"{f}: timezone")
    pub = data.get("publish", {})
    if not isinstance(pub, dict):
        raise ConfigError(f"{f}: publish: must be a table")
    unknown(f"{f}: [publish]", pub, _PUBLISH_KEYS)
    backfill = whole(pub.get("backfill", 1), f"{f}: publish.backfill", 0, BACKFILL_MAX)
    settings = PublishSettings(
        settle=parse_duration(pub.get("settle", "2h"), f"{f}: publish.settle", WAIT_RANGE),
        max_wait=parse_duration(pub.get("max_wait", "48h"), f"{f}: publish.max_wait", WAIT_RANGE),
        backfill=backfill,
        late_max_wait=parse_duration(pub.get("late_max_wait", "7d"), f"{f}: publish.late_max_wait",
                                     LATE_WAIT_RANGE),
        timezone=tz,
        wait_for_papers=parse_duration(pub.get("wait_for_papers", "48h"), f"{f}: publish.wait_for_papers",
                                       WAIT_RANGE),
        approve=flag(pub.get("approve", False), f"{f}: publish.approve"),
        editor=line(pub.get("editor", ""), f"{f}: publish.editor", "an email address"),
    )
    gh = data.get("github", {})
    if not isinstance(gh, dict):
        raise ConfigError(f"{f}: github: must be a table")
    unknown(f"{f}: [github]", gh, {"base_url"})
    github_base_url = http_url(gh.get("base_url", "https://raw.githubusercontent.com"), f"{f}: github.base_url")
    sources = []
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{f}: sources: write each source as a [[sources]] table")
    names: set[str] = set()
    for i, s in enumerate(raw_sources):
        where = f"{f}: sources[{i}]"
        sources.append(_parse_source(s, where, base_dir))
        if sources[-1].name.casefold() in names:  # casefold: folder names on macOS and Windows ignore case
            raise ConfigError(f"{where}.name: {sources[-1].name!r} is used by another source")
        names.add(sources[-1].name.casefold())
    state_dir = line(data.get("state_dir", "state"), f"{f}: state_dir", "a path")
    if not state_dir:
        raise ConfigError(f"{f}: state_dir: must be a path")
    return Config(
        path=path, base_dir=base_dir, state_dir=(base_dir / state_dir).resolve() if path else Path(state_dir),
        publish=settings, sources=tuple(sources),
        github_base_url=github_base_url.rstrip("/"),
        web=_parse_web(data.get("web", {}), f), fetch=_parse_fetch(data.get("fetch", {}), f),
        alerts=_parse_alerts(data.get("alerts", {}), f), health=_parse_health(data.get("health", {}), f),
    )


def table(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")
    return value


def _parse_web(w: object, f: str) -> WebSettings:
    w = table(w, f"{f}: web")
    unknown(f"{f}: [web]", w, _WEB_KEYS)
    d = WebSettings()
    base_url = http_url(w.get("base_url", d.base_url), f"{f}: web.base_url")
    listen = w.get("listen", d.listen)
    m = _LISTEN.fullmatch(listen) if isinstance(listen, str) else None
    if m is None:
        raise ConfigError(f"{f}: web.listen: {listen!r} must be host:port, e.g. 127.0.0.1:8080")
    if not 0 <= int(m.group(2)) <= 65535:  # 0: any free port (the daemon's tests use it)
        raise ConfigError(f"{f}: web.listen: port {int(m.group(2))} is out of range; allowed: 0 to 65535 "
                          "(0: any free port)")
    header_timeout = parse_duration(w.get("header_timeout", "10s"), f"{f}: web.header_timeout").total_seconds()
    if not 1 <= header_timeout <= 3600:
        raise ConfigError(f"{f}: web.header_timeout: must be from 1s to 1h")
    title = line(w.get("title", d.title), f"{f}: web.title").strip()
    if not title or len(title) > 200:
        raise ConfigError(f"{f}: web.title: must be 1 to 200 characters")
    description = line(w.get("description", d.description), f"{f}: web.description").strip()
    if len(description) > 500:
        raise ConfigError(f"{f}: web.description: must be at most 500 characters")
    confirm_ttl = parse_duration(w.get("confirm_ttl", "48h"), f"{f}: web.confirm_ttl",
                                 (60, 30 * 86400)).total_seconds()
    proxies = w.get("trusted_proxies", [])
    if not isinstance(proxies, list):
        raise ConfigError(f"{f}: web.trusted_proxies: must be a list of IP addresses or networks, "
                          'e.g. ["127.0.0.1", "10.0.0.0/8"]')
    networks = []
    for p in proxies:
        try:
            networks.append(ipaddress.ip_network(p.strip(), strict=False))
        except (ValueError, AttributeError):
            raise ConfigError(f"{f}: web.trusted_proxies: {short(p)} is not an IP address or network "
                              "(e.g. 10.0.0.0/8)") from None
    limit = w.get("subscribe_limit", "5/10m")
    m = _LIMIT.fullmatch(limit) if isinstance(limit, str) else None
    if m is None or not 1 <= int(m.group(1)) <= 10_000:
        raise ConfigError(f"{f}: web.subscribe_limit: {short(limit)} must be attempts per time, from 1 to "
                          '10000 per 1s to 1d, e.g. "5/10m"')
    window = parse_duration(m.group(2), f"{f}: web.subscribe_limit", (1, 86400)).total_seconds()
    per_day = whole(w.get("confirm_per_day", d.confirm_per_day), f"{f}: web.confirm_per_day", 1,
                     CONFIRM_PER_DAY_MAX)
    return WebSettings(base_url=base_url.rstrip("/"), listen=listen, header_timeout=header_timeout, title=title,
                       description=description, confirm_ttl=confirm_ttl, trusted_proxies=tuple(networks),
                       subscribe_limit=(int(m.group(1)), window), confirm_per_day=per_day)


_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB)?")


def _parse_fetch(t: object, f: str) -> FetchSettings:
    t = table(t, f"{f}: fetch")
    unknown(f"{f}: [fetch]", t, _FETCH_KEYS)
    d = FetchSettings()
    timeout = parse_duration(t.get("timeout", "30s"), f"{f}: fetch.timeout").total_seconds()
    if not 1 <= timeout <= 3600:
        raise ConfigError(f"{f}: fetch.timeout: {t['timeout']!r} must be from 1s to 1h")
    size = t.get("max_size", d.max_size)
    m = _SIZE.fullmatch(size.strip()) if isinstance(size, str) else None
    if m:
        size = int(m.group(1)) * 2 ** (10 * ("B", "KiB", "MiB", "GiB").index(m.group(2) or "B"))
    if not isinstance(size, int) or isinstance(size, bool) or not 2**10 <= size <= 2**30:
        raise ConfigError(f"{f}: fetch.max_size: {t['max_size']!r} must be a size from 1KiB to 1GiB, "
                          "e.g. \"50MiB\" or a number of bytes")
    return FetchSettings(timeout=timeout, max_size=size)


def flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {short(value)} must be true or false")
    return value


_ALERT_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\".]+")


def _parse_alerts(t: object, f: str) -> AlertsSettings:
    t = table(t, f"{f}: alerts")
    unknown(f"{f}: [alerts]", t, _ALERTS_KEYS)
    d = AlertsSettings()
    emails = t.get("email", [])
    emails = [emails] if isinstance(emails, str) else emails
    if not isinstance(emails, list) or not all(isinstance(a, str) for a in emails):
        raise ConfigError(f"{f}: alerts.email: must be an address or a list of addresses")
    for a in emails:
        line(a, f"{f}: alerts.email")
        if not _ALERT_ADDRESS.fullmatch(parseaddr(a)[1]) or not a.strip():
            raise ConfigError(f"{f}: alerts.email: {short(a)} is not an email address (e.g. you@your.domain)")
    return AlertsSettings(
        email=tuple(a.strip() for a in emails),
        every=parse_duration(t.get("every", "6h"), f"{f}: alerts.every", (60, 30 * 86400)),
        failures=whole(t.get("failures", d.failures), f"{f}: alerts.failures", 1, 10_000),
        quiet=parse_duration(t.get("quiet", "14d"), f"{f}: alerts.quiet", (3600, 3650 * 86400)),
        layout_drop=number(t.get("layout_drop", d.layout_drop), f"{f}: alerts.layout_drop", 0, 1,
                            " (0: never alert)"),
        failed_after=parse_duration(t.get("failed_after", "24h"), f"{f}: alerts.failed_after", (60, 365 * 86400)),
        bounce_rate=number(t.get("bounce_rate", d.bounce_rate), f"{f}: alerts.bounce_rate", 0, 1,
                            " (a share: 0.05 is 5%)"),
    )


def _parse_source(s: object, where: str, base_dir: Path) -> SourceConfig:
    if not isinstance(s, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown(where, s, _SOURCE_KEYS)
    name = s.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: {name!r} must be 1 to 64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    kinds = [k for k in SOURCE_KINDS if k in s]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(SOURCE_KINDS)} (found {len(kinds)})")
    kind = kinds[0]
    location = s[kind]
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(f"{where}.{kind}: must be a non-empty string")
    if has_control(location):
        raise ConfigError(f"{where}.{kind}: contains a line break or another control character")
    if kind == "github" and not _GITHUB.fullmatch(location):
        raise ConfigError(f"{where}.github: {location!r} must look like owner/repo")
    if kind in ("url", "feed"):
        http_url(location, f"{where}.{kind}", show=False)
    if kind == "git" and location.strip().startswith("-"):  # git would read it as an option
        raise ConfigError(f"{where}.git: must be a URL or a path, not start with '-'")
    if kind == "git" and "://" not in location and not location.startswith(("git@", "/")):
        location = str((base_dir / location).resolve())
    paths = s.get("path", "README.md")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{where}.path: must be a file name or a list of file names")
    for p in paths:
        line(p, f"{where}.path")
    fmt = s.get("format", "feed" if kind == "feed" else "auto")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ConfigError(f"{where}.format: {fmt!r} must be one of {', '.join(FORMATS)}")
    branch = s.get("branch", "main")
    if not isinstance(branch, str) or not branch or branch.startswith("-") or re.search(r"\s", branch):
        raise ConfigError(f"{where}.branch: {branch!r} must be a branch name")
    line(branch, f"{where}.branch")
    tz = parse_zone(s["timezone"], f"{where}.timezone") if "timezone" in s else None
    expect = whole(s["expect_papers"], f"{where}.expect_papers", 0, EXPECT_MAX) if "expect_papers" in s else None
    credit, credit_url = _parse_credit(s["credit"], f"{where}.credit") if "credit" in s else (None, None)
    return SourceConfig(
        name=name, kind=kind, location=location.strip(), paths=tuple(paths), branch=branch, format=fmt,
        every=parse_duration(s.get("every", "30m"), f"{where}.every", EVERY_RANGE),
        timezone=tz, expect_papers=expect, credit=credit, credit_url=credit_url,
    )


def _parse_credit(value: object, where: str) -> tuple[str | None, str | None]:
    """`credit = "DAIR.AI"` or `credit = { name = "DAIR.AI", url = "https://…" }` (either key may be left out)."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: must be a name or a table like {{ name = "…", url = "https://…" }}')
    unknown(where, value, {"name", "url"})
    name = None
    if "name" in value:
        name = line(value["name"], f"{where}.name").strip()
        if not name or len(name) > CREDIT_MAX:
            raise ConfigError(f"{where}.name: must be 1 to {CREDIT_MAX} characters")
    url = http_url(value["url"], f"{where}.url") if "url" in value else None
    return name, url


# -- [health] (issue #15) ----------------------------------------------------------------------------------------
_HEALTH_KEYS = {"max_heartbeat_age", "max_failing_age"}


@dataclass(frozen=True)
class HealthSettings:
    """`[health]`: when `GET /healthz` answers 503 (bot/web/health.py)."""

    max_heartbeat_age: float = 120.0  # seconds: an older daemon heartbeat means its loop is stuck or it is gone
    max_failing_age: float = 6 * 3600.0  # seconds every source may fail in a row before the daemon is unhealthy


def _parse_health(t: object, f: str) -> HealthSettings:
    t = table(t, f"{f}: health")
    unknown(f"{f}: [health]", t, _HEALTH_KEYS)
    beat = parse_duration(t.get("max_heartbeat_age", "2m"), f"{f}: health.max_heartbeat_age", (1, 86400))
    failing = parse_duration(t.get("max_failing_age", "6h"), f"{f}: health.max_failing_age", (1, 365 * 86400))
    return HealthSettings(max_heartbeat_age=beat.total_seconds(), max_failing_age=failing.total_seconds())
