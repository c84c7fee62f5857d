"""The TOML config: where it is found, what each key means, and errors that name the file and the key.

Lookup order: `--config PATH`, else `$PAPERBOT_CONFIG`, else `./paperbot.toml`, else the built-in defaults.
Relative paths are relative to the config file's folder (the working directory when there is no file).
Secrets never live here: they come from environment variables only.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .parsing import FORMATS

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
SOURCE_KINDS = ("github", "git", "url", "feed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(Exception):
    """A config problem, already phrased for the operator: file, key, what is wrong."""


def parse_duration(value: object, where: str = "duration") -> timedelta:
    """`30s`, `30m`, `2h`, `1d`: a whole number and a unit."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"{where}: {value!r} is not a duration; write a whole number and a unit, e.g. 30m, 2h, 1d")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


@dataclass(frozen=True)
class PublishSettings:
    settle: timedelta = timedelta(hours=2)
    max_wait: timedelta = timedelta(hours=48)
    backfill: int = 1
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str  # github | git | url | feed
    location: str  # owner/repo, git URL or path, or HTTP URL
    paths: tuple[str, ...] = ("README.md",)
    branch: str = "main"
    format: str = "auto"
    every: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class EmailSettings:
    """`[email]`. The SMTP password is never here: it comes from $PAPERBOT_SMTP_PASSWORD."""

    smtp_url: str | None = None  # None: messages go to state/outbox/email/ instead
    starttls: bool = True
    sender: str = "ML Papers of the Week <papers@example.org>"  # the `from` key
    subject: str = "{title}"
    contact: str = ""
    list_id: str = "papers.example.org"
    connections: int = 2
    rate: float = 0.0  # messages per second at most; 0 = no cap


@dataclass(frozen=True)
class WebSettings:
    """`[web]`: the small web app (unsubscribe, view in browser)."""

    base_url: str = "http://localhost:8080"
    listen: str = "127.0.0.1:8080"

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
class Config:
    path: Path | None  # the file it came from; None for built-in defaults
    base_dir: Path
    state_dir: Path
    publish: PublishSettings
    sources: tuple[SourceConfig, ...]
    github_base_url: str = "https://raw.githubusercontent.com"
    email: EmailSettings = field(default_factory=EmailSettings)
    web: WebSettings = field(default_factory=WebSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "paperbot.db"

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"{self.path or 'config'}: no source named {name!r}")


DEFAULT_TOML = """\
# paperbot configuration. Secrets (SMTP password, API tokens) never go here: they are read from
# environment variables. Relative paths are relative to this file's folder.

state_dir = "state"          # SQLite database, outbox, lock
timezone = "UTC"             # a week is over at midnight in this zone

[publish]
settle = "2h"                # a new week's papers must be unchanged this long before it is ready
max_wait = "48h"             # counted from first sight: then ready even with unfinished rows (flagged)
backfill = 1                 # on a source's very first poll, the newest N weeks become ready; the rest is baseline

[github]
base_url = "https://raw.githubusercontent.com"   # where github = "owner/repo" files are fetched from

[fetch]
timeout = "30s"              # one HTTP attempt (connect, status line, headers, body) must end within this
max_size = "50MiB"           # the largest file read from a source (an HTTP body or a git blob)

[[sources]]
name = "dair-ai"
github = "dair-ai/ML-Papers-of-the-Week"   # exactly one of: github, git, url, feed
path = "README.md"           # or a list of files, e.g. ["README.md", "2026.md"]
branch = "main"
format = "auto"              # auto | digest | notes | feed
every = "30m"                # how often to check
"""

_TOP_KEYS = {"state_dir", "timezone", "publish", "sources", "github", "email", "web", "fetch"}
_EMAIL_KEYS = {"smtp_url", "starttls", "from", "subject", "contact", "list_id", "connections", "rate"}
_WEB_KEYS = {"base_url", "listen"}
_FETCH_KEYS = {"timeout", "max_size"}
_PUBLISH_KEYS = {"settle", "max_wait", "backfill"}
_SOURCE_KEYS = {"name", "path", "branch", "format", "every", *SOURCE_KINDS}


def find_config_path(explicit: str | os.PathLike | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("PAPERBOT_CONFIG")
    if env:
        return Path(env)
    local = Path("paperbot.toml")
    return local if local.exists() else None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    path = find_config_path(explicit)
    if path is None:
        return parse_config(tomllib.loads(DEFAULT_TOML), None, Path.cwd())
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return parse_config(data, path, path.resolve().parent)


def _unknown(where: str, table: dict, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def parse_config(data: dict, path: Path | None, base_dir: Path) -> Config:
    f = str(path) if path else "built-in config"
    _unknown(f, data, _TOP_KEYS)
    tz_name = data.get("timezone", "UTC")
    try:
        tz = ZoneInfo(str(tz_name))
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"{f}: timezone: {tz_name!r} is not a known time zone (e.g. UTC, Europe/Berlin)") from e
    pub = data.get("publish", {})
    if not isinstance(pub, dict):
        raise ConfigError(f"{f}: publish: must be a table")
    _unknown(f"{f}: [publish]", pub, _PUBLISH_KEYS)
    backfill = pub.get("backfill", 1)
    if not isinstance(backfill, int) or isinstance(backfill, bool) or backfill < 0:
        raise ConfigError(f"{f}: publish.backfill: {backfill!r} must be a whole number >= 0")
    settings = PublishSettings(
        settle=parse_duration(pub.get("settle", "2h"), f"{f}: publish.settle"),
        max_wait=parse_duration(pub.get("max_wait", "48h"), f"{f}: publish.max_wait"),
        backfill=backfill,
        timezone=tz,
    )
    gh = data.get("github", {})
    if not isinstance(gh, dict):
        raise ConfigError(f"{f}: github: must be a table")
    _unknown(f"{f}: [github]", gh, {"base_url"})
    sources = []
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{f}: sources: write each source as a [[sources]] table")
    names: set[str] = set()
    for i, s in enumerate(raw_sources):
        where = f"{f}: sources[{i}]"
        sources.append(_parse_source(s, where, base_dir))
        if sources[-1].name in names:
            raise ConfigError(f"{where}.name: {sources[-1].name!r} is used by another source")
        names.add(sources[-1].name)
    state_dir = data.get("state_dir", "state")
    if not isinstance(state_dir, str) or not state_dir:
        raise ConfigError(f"{f}: state_dir: must be a path")
    return Config(
        path=path, base_dir=base_dir, state_dir=(base_dir / state_dir).resolve() if path else Path(state_dir),
        publish=settings, sources=tuple(sources),
        github_base_url=str(gh.get("base_url", "https://raw.githubusercontent.com")).rstrip("/"),
        email=_parse_email(data.get("email", {}), f), web=_parse_web(data.get("web", {}), f),
        fetch=_parse_fetch(data.get("fetch", {}), f),
    )


def _table(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table")
    return value


def _parse_email(e: object, f: str) -> EmailSettings:
    e = _table(e, f"{f}: email")
    _unknown(f"{f}: [email]", e, _EMAIL_KEYS)
    d = EmailSettings()
    smtp_url = e.get("smtp_url")
    if smtp_url is not None and not (isinstance(smtp_url, str) and re.match(r"^smtps?://[^/\s]+", smtp_url)):
        raise ConfigError(f"{f}: email.smtp_url: {smtp_url!r} must look like smtp://user@host:587 or smtps://host:465")
    if isinstance(smtp_url, str) and re.match(r"^smtps?://[^/@]*:[^/@]*@", smtp_url):
        raise ConfigError(f"{f}: email.smtp_url: put no password in the URL; set PAPERBOT_SMTP_PASSWORD instead")
    for key in ("starttls",):
        if key in e and not isinstance(e[key], bool):
            raise ConfigError(f"{f}: email.{key}: must be true or false")
    for key in ("from", "subject", "contact", "list_id"):
        if key in e and not isinstance(e[key], str):
            raise ConfigError(f"{f}: email.{key}: must be a string")
    connections = e.get("connections", d.connections)
    if not isinstance(connections, int) or isinstance(connections, bool) or not 1 <= connections <= 64:
        raise ConfigError(f"{f}: email.connections: {connections!r} must be a whole number from 1 to 64")
    rate = e.get("rate", d.rate)
    if not isinstance(rate, int | float) or isinstance(rate, bool) or rate < 0:
        raise ConfigError(f"{f}: email.rate: {rate!r} must be a number >= 0 (0 = no cap)")
    return EmailSettings(
        smtp_url=smtp_url, starttls=e.get("starttls", d.starttls), sender=e.get("from", d.sender),
        subject=e.get("subject", d.subject), contact=e.get("contact", d.contact),
        list_id=e.get("list_id", d.list_id), connections=connections, rate=float(rate),
    )


def _parse_web(w: object, f: str) -> WebSettings:
    w = _table(w, f"{f}: web")
    _unknown(f"{f}: [web]", w, _WEB_KEYS)
    d = WebSettings()
    base_url = w.get("base_url", d.base_url)
    if not isinstance(base_url, str) or not re.match(r"^https?://\S+$", base_url):
        raise ConfigError(f"{f}: web.base_url: {base_url!r} must be an http(s) URL")
    listen = w.get("listen", d.listen)
    if not isinstance(listen, str) or not re.match(r"^[\w.:\[\]-]*:\d{1,5}$", listen):
        raise ConfigError(f"{f}: web.listen: {listen!r} must be host:port, e.g. 127.0.0.1:8080")
    return WebSettings(base_url=base_url.rstrip("/"), listen=listen)


_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB)?")


def _parse_fetch(t: object, f: str) -> FetchSettings:
    t = _table(t, f"{f}: fetch")
    _unknown(f"{f}: [fetch]", t, _FETCH_KEYS)
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


def _parse_source(s: object, where: str, base_dir: Path) -> SourceConfig:
    if not isinstance(s, dict):
        raise ConfigError(f"{where}: must be a table")
    _unknown(where, s, _SOURCE_KEYS)
    name = s.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}.name: {name!r} must be letters, digits, '.', '_' or '-'")
    kinds = [k for k in SOURCE_KINDS if k in s]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(SOURCE_KINDS)} (found {len(kinds)})")
    kind = kinds[0]
    location = s[kind]
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(f"{where}.{kind}: must be a non-empty string")
    if kind == "github" and not re.match(r"^[\w.-]+/[\w.-]+$", location):
        raise ConfigError(f"{where}.github: {location!r} must look like owner/repo")
    if kind in ("url", "feed") and not re.match(r"^https?://", location):
        raise ConfigError(f"{where}.{kind}: {location!r} must be an http(s) URL")
    if kind == "git" and "://" not in location and not location.startswith(("git@", "/")):
        location = str((base_dir / location).resolve())
    paths = s.get("path", "README.md")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{where}.path: must be a file name or a list of file names")
    fmt = s.get("format", "feed" if kind == "feed" else "auto")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format: {fmt!r} must be one of {', '.join(FORMATS)}")
    branch = s.get("branch", "main")
    if not isinstance(branch, str) or not branch:
        raise ConfigError(f"{where}.branch: must be a branch name")
    return SourceConfig(
        name=name, kind=kind, location=location.strip(), paths=tuple(paths), branch=branch, format=fmt,
        every=parse_duration(s.get("every", "30m"), f"{where}.every"),
    )
