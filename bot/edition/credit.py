"""Who curated an edition, and where the original is: the credit line every channel shows (issue #16).

paperbot republishes someone else's curation, so every edition names it and links to it. Pure and
channel-neutral: the email, the web edition and X show the same `Credit` (Discord will too). The name is the
source's `credit` setting, else the repository (`owner/repo`; for a local clone, its GitHub `origin`), else the
feed's own title, else the site's
host name. The link is the source's `credit` URL, else the original on the web: for a GitHub README, the
week's section, through the anchor GitHub gives the week's heading (see `github_anchor`). A link never carries
the credentials or the query (where a token may be) of the URL paperbot reads the source from.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from bot.config import SourceConfig
from bot.edition.edition import Edition
from bot.edition.safetext import clean, safe_url

_DATE_KEY = re.compile(r"\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}")  # a digest week, from a dated heading
_ISO_KEY = re.compile(r"\d{4}-W\d{2}")  # a feed's or notes page's week
_GITHUB_GIT = re.compile(r"(?:https?://(?:[^@/]+@)?(?:www\.)?github\.com/|git@github\.com:|ssh://git@github\.com/)"
                         r"([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?", re.IGNORECASE)
_FEED_FILE = re.compile(r"(?:feed|rss|atom|index)(?:\.\w+)?|.+\.(?:xml|rss|atom)", re.IGNORECASE)
_ISO_SUFFIX = ", week "  # the tracker titles feed and notes weeks "<feed title>, week 2026-W47"
_GENERIC = {"feed", "notes", "edition", ""}  # the parsers' stand-ins for a missing title
MAX_NAME = 120


@dataclass(frozen=True)
class Credit:
    name: str  # one clean line; plain text (channels escape it, or make it inert on X)
    url: str | None  # a plain http(s) URL, or None when the original has no public address


class WeekLike(Protocol):
    """What the credit needs of a week: a `Week`, a `WeekRow`, an `Edition` or a `LateGroup`."""

    key: str
    title: str


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading (github-slugger): lower case, every character that is not a
    letter, digit, mark, space, hyphen or underscore dropped, each space a hyphen. "Top ML Papers of the Week
    (May 20 - May 26) - 2024" → "top-ml-papers-of-the-week-may-20---may-26---2024"."""
    text = heading.strip().lower()
    return "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM").replace(" ", "-")


def _github(owner: str, repo: str, branch: str, path: str, anchor: str) -> str:
    """The file on github.com; the repository's front page for README.md on main (GitHub shows it there)."""
    url = f"https://github.com/{quote(owner)}/{quote(repo)}"
    if not (path == "README.md" and branch == "main"):
        url += f"/blob/{quote(branch)}/{quote(path)}"
    return url + (f"#{anchor}" if anchor else "")


def _raw_github(url: str) -> tuple[str, str, str, str] | None:
    """(owner, repo, branch, path) of a raw.githubusercontent.com URL."""
    u = urlsplit(url)
    if (u.hostname or "").lower() != "raw.githubusercontent.com":
        return None
    parts = [p for p in u.path.split("/") if p]
    if len(parts) >= 5 and parts[2:4] == ["refs", "heads"]:
        parts = parts[:2] + [parts[4]] + parts[5:]
    return (parts[0], parts[1], parts[2], "/".join(parts[3:])) if len(parts) >= 4 else None


def public_url(url: str) -> str:
    """`url` without credentials, query and fragment: what may be shown to readers of a source's address."""
    u = urlsplit(url)
    host = u.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{u.port}" if u.port else ""
    except ValueError:
        port = ""
    return urlunsplit((u.scheme.lower(), host + port, u.path or "/", "", ""))


def _site_of_feed(url: str) -> str:
    """The page a feed belongs to, guessed from its URL: `…/blog/feed.xml` → `…/blog/`."""
    u = urlsplit(public_url(url))
    segments = u.path.rstrip("/").split("/")
    path = "/".join(segments[:-1]) + "/" if _FEED_FILE.fullmatch(segments[-1]) else u.path
    return urlunsplit((u.scheme, u.netloc, path, "", ""))


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _repo(source: SourceConfig) -> tuple[str, str] | None:
    if source.kind == "github":
        owner, _, repo = source.location.partition("/")
        return owner, repo
    if source.kind == "git":  # a remote on GitHub, or a local clone of one (its origin, issue #25)
        for where in (source.location, getattr(source, "origin", None) or ""):
            if m := _GITHUB_GIT.fullmatch(where):
                return m.group(1), m.group(2)
    if source.kind == "url" and (raw := _raw_github(source.location)):
        return raw[0], raw[1]
    return None


def _feed_title(week: WeekLike) -> str:
    """The feed's (or notes page's) own title, which the tracker put before ", week <key>"."""
    title, sep, key = clean(week.title).rpartition(_ISO_SUFFIX)
    return title if sep and _ISO_KEY.fullmatch(key) and title.lower() not in _GENERIC else ""


def default_name(source: SourceConfig, week: WeekLike) -> str:
    if repo := _repo(source):
        return f"{repo[0]}/{repo[1]}"
    if source.kind == "git":
        if re.match(r"https?://", source.location, re.IGNORECASE):
            return "/".join(urlsplit(source.location).path.strip("/").split("/")[-2:]).removesuffix(".git")
        return PurePosixPath(source.location.rstrip("/")).name.removesuffix(".git") or source.name
    return _feed_title(week) or _host(source.location) or source.name


def default_url(source: SourceConfig, week: WeekLike) -> str | None:
    anchor = github_anchor(week.title) if _DATE_KEY.fullmatch(week.key) and len(source.paths) == 1 else ""
    if source.kind == "url" and (raw := _raw_github(source.location)):
        return _github(*raw, anchor)
    if repo := _repo(source):
        path = source.paths[0] if len(source.paths) == 1 else "README.md"
        return _github(repo[0], repo[1], source.branch, path, anchor)
    if source.kind == "feed":
        return _site_of_feed(source.location)
    if re.match(r"https?://", source.location, re.IGNORECASE):  # a url source, or a git remote over http(s)
        return public_url(source.location).removesuffix(".git")
    return None  # a local git repository or an ssh remote: nothing readers can open


def credit_for(source: SourceConfig | None, week: WeekLike, source_name: str = "") -> Credit:
    """The credit of `week` of `source` (None: a source no longer in the config, known by `source_name`)."""
    if source is None:
        return Credit(clean(source_name, max_len=MAX_NAME) or "the original digest", None)
    name = source.credit or default_name(source, week)
    url = source.credit_url or default_url(source, week)
    return Credit(clean(name, max_len=MAX_NAME) or source.name, safe_url(url))


def edition_credit(sources: Sequence[SourceConfig], edition: Edition) -> Credit:
    """The credit of an `Edition`: an edition of papers added to one earlier week credits that week."""
    source = next((s for s in sources if s.name == edition.source), None)
    week = edition.late[0] if edition.late_only and len(edition.late) == 1 else edition
    return credit_for(source, week, edition.source)
