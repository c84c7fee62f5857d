"""The TOML config: where it is found, the file's format, its top level and its sources; errors name the file
and the key. The value checks are values.py's; `[web]`, `[fetch]`, `[alerts]` and `[health]` are sections.py's;
each channel's table is its own (bot/channels/<name>/settings.py), joined on by the channel registry.

Lookup order: `--config PATH`, else `$PAPERBOT_CONFIG`, else `./paperbot.toml`, else the built-in defaults.
Relative paths are relative to the config file's folder (the working directory when there is no file).
Secrets never live here: they come from environment variables only.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.config.arxiv import _ARXIV_KEYS, ArxivSettings, _parse_arxiv  # noqa: F401 (tests read them)
from bot.config.sections import (  # noqa: F401 (tests read them)
    _ALERTS_KEYS,
    _FETCH_KEYS,
    _HEALTH_KEYS,
    _WEB_KEYS,
    AlertsSettings,
    FetchSettings,
    HealthSettings,
    WebSettings,
    _parse_alerts,
    _parse_fetch,
    _parse_health,
    _parse_web,
)
from bot.config.values import (
    WAIT_RANGE,
    ConfigError,
    flag,
    has_control,
    http_url,
    line,
    parse_duration,
    parse_zone,
    unknown,
    whole,
)
from bot.track.model import FORMATS

# Every pattern here is used with fullmatch: `$` would also match before a trailing newline ("evil\n").
SOURCE_KINDS = ("github", "git", "url", "feed")
# A source name becomes a folder, a lock file and a word in log lines: a short, safe set only.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GITHUB = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")

# Allowed ranges: wide enough for any real use, narrow enough that a slip (a missing unit, an extra digit)
# is caught here instead of overflowing a date or polling in a tight loop.
EVERY_RANGE = (1, 30 * 86400)  # seconds: a source is checked at most once a second, at least once a month
LATE_WAIT_RANGE = (0, 365 * 86400)  # seconds, late_max_wait: late papers never wait more than a year
BACKFILL_MAX = 10_000
MAX_AGE_RANGE = (86400, 3650 * 86400)  # seconds, [publish] max_age: a day to ten years (issue #21)
MAX_PER_DAY = 1_000  # [publish] max_per_day: editions of one source on one channel in any 24 hours
CREDIT_MAX = 120  # characters of a source's credit name


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
    # issue #21: a week first seen after its source's first poll whose last day is older than this when it
    # becomes ready is held (bot/publish/guard.py); and at most this many editions per source and channel a day
    max_age: timedelta = timedelta(days=90)
    max_per_day: int = 2


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
    origin: str | None = None  # a local git repository's `origin` remote, read at load (issue #25: its credit)


@dataclass(frozen=True)
class Config:
    """What bot.config reads: the top level, [publish], [github], [fetch], the sources, [web], [alerts], [health],
    [arxiv].
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
    arxiv: ArxivSettings = field(default_factory=ArxivSettings)  # #32

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

_TOP_KEYS = {"state_dir", "timezone", "publish", "sources", "github", "web", "fetch", "alerts", "health", "arxiv"}
_PUBLISH_KEYS = {"settle", "max_wait", "backfill", "wait_for_papers", "late_max_wait", "approve", "editor",
                 "max_age", "max_per_day"}
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
        max_age=parse_duration(pub.get("max_age", "90d"), f"{f}: publish.max_age", MAX_AGE_RANGE),
        max_per_day=whole(pub.get("max_per_day", 2), f"{f}: publish.max_per_day", 1, MAX_PER_DAY),
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
        arxiv=_parse_arxiv(data.get("arxiv", {}), f),
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
        origin=local_origin(location) if kind == "git" and location.startswith("/") else None,
    )


def local_origin(path: str) -> str | None:
    """The `origin` remote URL of the local git repository at `path` (its .git/config, or config when bare),
    else None: a clone of github.com/owner/name is credited as owner/name, not by its folder's name (issue #25)."""
    for file in (Path(path) / ".git" / "config", Path(path) / "config"):
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        section = re.search(r'^\s*\[remote "origin"\]\s*$(.*?)(?=^\s*\[|\Z)', text, re.M | re.S)
        url = re.search(r"^\s*url\s*=\s*(\S+)\s*$", section.group(1), re.M) if section else None
        return url.group(1) if url and not has_control(url.group(1)) else None
    return None


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


