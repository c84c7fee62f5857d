"""The statuses of a week's thread on Mastodon: a head status, then one per paper, each within the instance's limit.

Pure apart from reading templates (`mastodon_head.txt`, `mastodon_paper.txt`, found like the email's). Every value
from the digest is cleaned (`safetext.clean`) and made inert (`text.inert`) before a template sees it; the only
links in a status are the ones chosen here (the paper's link, its arXiv abstract page when it has one, and the
edition on the web in the head) and the only hashtags `[mastodon] hashtags`.

A status that is too long loses the end of the summary (cut at a word boundary, "…"), then the end of the
title; a paper always gets exactly one status.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bot.channels.email.render import Edition, templates_path
from bot.channels.mastodon.settings import normalize_hashtags
from bot.channels.mastodon.text import inert, length, one_line, shorten
from bot.channels.x.compose import paper_links
from bot.edition.excerpt import week_heading
from bot.edition.safetext import clean, date_range, keep_lines, safe_url
from bot.track.model import Paper

HEAD_TEMPLATE = "mastodon_head.txt"
PAPER_TEMPLATE = "mastodon_paper.txt"
MIN_SUMMARY = 40  # a summary cut shorter than this says nothing: leave it out instead
_BLANK_LINES = re.compile(r"\n{3,}")


class ComposeError(RuntimeError):
    """A status cannot be made to fit, or a template failed; the message names the template and the problem."""


@dataclass(frozen=True)
class Limits:
    """What the instance allows (GET /api/v2/instance: configuration.statuses)."""

    max_characters: int = 500
    reserved_per_url: int = 23
    source: str = "the Mastodon default"  # where the numbers came from, for preview and the trial's thread.txt


@dataclass(frozen=True)
class Status:
    """One status of the thread: `index` 0 is the head, then 1..n in paper order."""

    index: int
    kind: str  # head | paper
    text: str
    length: int  # as Mastodon counts it (an upper bound)
    links: tuple[str, ...]  # the URLs paperbot put in it, in order


class _Templates:
    def __init__(self, templates_dir: Path | None, head: str | None):
        self.dirs = tuple(templates_path(templates_dir))
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs]), autoescape=False,
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
            finalize=keep_lines)
        self.head = head
        self.cache: dict[str, jinja2.Template] = {}

    def render(self, name: str, ctx: dict) -> str:
        try:
            if name not in self.cache:
                override = self.head if name == HEAD_TEMPLATE else None
                self.cache[name] = self.env.from_string(override) if override else self.env.get_template(name)
            text = self.cache[name].render(ctx)
        except jinja2.TemplateNotFound as e:
            raise ComposeError(f"template {name} not found in {', '.join(map(str, self.dirs))}") from e
        except jinja2.TemplateError as e:
            where = f"{e.filename}:{e.lineno}" if getattr(e, "lineno", None) else name
            raise ComposeError(f"{where}: {e}") from e
        lines = "\n".join(line.rstrip() for line in text.strip().split("\n"))
        return _BLANK_LINES.sub("\n\n", lines)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """The largest k in [lo, hi] with ok(k) (ok monotone), None if not even ok(lo)."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _summary_cut(summary: str, k: int) -> str:
    s = shorten(summary, k)
    return "" if s != summary and len(s) < MIN_SUMMARY else s


def paper_status(paper: Paper, index: int, total: int, limits: Limits, *, added_to: str | None = None,
                 post_index: int | None = None, _tpl: _Templates | None = None) -> Status:
    """The status for the `index`-th of `total` papers (1-based), fitted into `limits`."""
    tpl = _tpl or _Templates(None, None)
    title = one_line(clean(paper.title)) or "(untitled)"
    summary = one_line(clean(paper.summary))
    url, _ = paper_links(paper)
    links = (url,) if url else ()

    def text(title_k: int, summary_k: int) -> str:
        return tpl.render(PAPER_TEMPLATE, {
            "index": index, "total": total, "number": paper.number, "title": inert(shorten(title, title_k)),
            "summary": inert(_summary_cut(summary, summary_k)), "url": url, "added_to": added_to})

    def fits(t: str) -> bool:
        return length(t, links, limits.reserved_per_url) <= limits.max_characters

    at = index if post_index is None else post_index
    k = _largest(0, len(summary), lambda k: fits(text(len(title), k)))
    if k is not None:
        t = text(len(title), k)
    else:
        k = _largest(1, len(title), lambda k: fits(text(k, 0)))
        if k is None:
            raise ComposeError(f"{PAPER_TEMPLATE}: paper {index} is over the instance's {limits.max_characters} "
                               "characters with its title and summary cut to nothing")
        t = text(k, 0)
    return Status(at, "paper", t, length(t, links, limits.reserved_per_url), links)


def head_status(edition: Edition, limits: Limits, *, web_url: str | None, hashtags: Sequence[str] = (),
                credit: str | None = None, _tpl: _Templates | None = None) -> Status:
    """The thread's first status: the week's title and dates, how many papers, who curated them (left out before
    the title is cut), the web edition, the configured hashtags."""
    tpl = _tpl or _Templates(None, None)
    curator = inert(one_line(clean(credit))) if credit else ""
    dated = bool(date_range(edition.first_day, edition.last_day))
    title = one_line(week_heading(edition.title) if dated else clean(edition.title)) or edition.key
    link = safe_url(web_url) if web_url else None
    links = (link,) if link else ()
    tags = list(normalize_hashtags(list(hashtags)))

    @functools.cache
    def text(title_k: int, with_credit: bool = False) -> str:
        return tpl.render(HEAD_TEMPLATE, {
            "title": inert(shorten(title, title_k)), "dates": date_range(edition.first_day, edition.last_day),
            "count": len(edition.papers), "late_count": edition.late_papers, "web_url": link, "hashtags": tags,
            "source": inert(clean(edition.source)), "key": inert(clean(edition.key)),
            "credit": curator if with_credit else ""})

    def fits(t: str) -> bool:
        return length(t, links, limits.reserved_per_url) <= limits.max_characters

    if curator and fits(text(len(title), True)):
        t = text(len(title), True)
    else:
        k = _largest(1, len(title), lambda k: fits(text(k)))
        if k is None:
            raise ComposeError(f"{HEAD_TEMPLATE}: the head status is over the instance's {limits.max_characters} "
                               "characters with the title cut to nothing (fewer hashtags or a shorter template)")
        t = text(k)
    return Status(0, "head", t, length(t, links, limits.reserved_per_url), links)


def compose_thread(edition: Edition, limits: Limits, *, web_url: str | None, hashtags: Sequence[str] = (),
                   credit: str | None = None, head_template: str | None = None,
                   templates_dir: Path | None = None) -> list[Status]:
    """The whole thread of `edition`: the head, one status per paper in the digest's order, then one per paper
    added to an earlier week ("Added to …")."""
    tpl = _Templates(templates_dir, head_template)
    total = len(edition.papers)
    out = [head_status(edition, limits, web_url=web_url, hashtags=hashtags, credit=credit, _tpl=tpl)]
    out += [paper_status(p, i, total, limits, _tpl=tpl) for i, p in enumerate(edition.papers, start=1)]
    late = [(g, p) for g in edition.late for p in g.papers]
    for i, (group, paper) in enumerate(late, start=1):
        added_to = one_line(clean(date_range(group.first_day, group.last_day) or group.title)) or group.key
        out.append(paper_status(paper, i, len(late), limits, added_to=inert(added_to), post_index=len(out),
                                _tpl=tpl))
    return out
