"""The posts of a week's thread on Bluesky: a head post, then one post per paper, each within 300 graphemes and
3000 bytes, its links as facets over short anchor text.

Pure. Every value from the digest is cleaned (`safetext.clean`: one line, no control or format characters) and
otherwise left as written: on Bluesky only facets make a link, a mention or a tag, and the only facets here are
paperbot's (the edition's link in the head post, each paper's link, the configured tags). A URL the digest
typed into a title stays plain text and counts as the graphemes it has.

A paper post that is too long loses the end of its summary (cut at a word boundary, with "…"; a summary cut
below 40 characters is left out), then the end of its title: a paper always gets exactly one post.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.channels.bluesky.text import (
    MAX_GRAPHEMES,
    Rich,
    Span,
    anchor,
    fits,
    grapheme_count,
    one_line,
    rich,
    shorten,
)
from bot.edition.edition import Edition
from bot.edition.excerpt import week_heading
from bot.edition.safetext import clean, date_range, safe_url
from bot.track.model import Paper

log = logging.getLogger(__name__)

MIN_SUMMARY = 40  # a summary cut shorter than this says nothing: leave it out instead
_ARXIV = re.compile(
    r"^https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?(?:\.pdf)?/?(?:[?#].*)?$",
    re.IGNORECASE,
)


class ComposeError(RuntimeError):
    """A post cannot be made to fit; the message names the post."""


@dataclass(frozen=True)
class Post:
    """One post of the thread: `index` 0 is the head, then 1..n in paper order."""

    index: int
    kind: str  # head | paper
    text: str
    facets: tuple[dict, ...]
    graphemes: int
    bytes: int
    links: tuple[str, ...]  # the URLs paperbot put in its facets, in order


def arxiv_abs(url: str) -> str | None:
    """`https://arxiv.org/abs/<id>` for an arXiv abs/pdf/html link (any version: the page shows them all)."""
    m = _ARXIV.match(url.strip())
    return f"https://arxiv.org/abs/{m.group('id')}" if m else None


def paper_link(paper: Paper) -> str | None:
    """The paper's link: its arXiv abstract page if any link is arXiv, else its first plain http(s) link."""
    usable = [u for lk in paper.links if (u := safe_url(lk.url))]
    return next((a for u in usable if (a := arxiv_abs(u))), None) or (usable[0] if usable else None)


def _post(index: int, kind: str, r: Rich) -> Post:
    links = tuple(f["features"][0]["uri"] for f in r.facets if "uri" in f["features"][0])
    return Post(index, kind, r.text, r.facets, r.graphemes, r.bytes, links)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest k in [lo, hi] with ok(k), given ok(lo); ok is monotone."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _summary_cut(summary: str, k: int) -> str:
    s = shorten(summary, k)
    return "" if s != summary and len(s) < MIN_SUMMARY else s


def paper_spans(index: int, total: int, title: str, summary: str, url: str | None,
                added_to: str | None = None) -> list[Span]:
    first = (f"Added to {added_to} ({index}/{total}): {title}" if added_to else f"{index}/{total} {title}")
    spans = [Span(first)]
    if summary:
        spans.append(Span("\n\n" + summary))
    if url:
        spans += [Span("\n\n"), Span(anchor(url), link=url)]
    return spans


def paper_post(paper: Paper, index: int, total: int, *, added_to: str | None = None,
               post_index: int | None = None) -> Post:
    """The post for the `index`-th of `total` papers (1-based), within 300 graphemes and 3000 bytes."""
    title = one_line(clean(paper.title)) or "(untitled)"
    summary = one_line(clean(paper.summary))
    url = paper_link(paper)
    at = index if post_index is None else post_index

    def make(title_k: int, summary_k: int) -> Rich:
        return rich(paper_spans(index, total, shorten(title, title_k), _summary_cut(summary, summary_k), url,
                                added_to))

    full = grapheme_count(title)
    if fits(make(full, 0).text):
        k = _largest(0, grapheme_count(summary), lambda k: fits(make(full, k).text))
        return _post(at, "paper", make(full, k))
    if not fits(make(1, 0).text):
        raise ComposeError(f"paper {index}: {make(1, 0).graphemes} graphemes with its title and summary cut to "
                           f"nothing; Bluesky allows {MAX_GRAPHEMES}")
    log.info("bluesky: the title of paper %d is shortened to fit one post", index)
    return _post(at, "paper", make(_largest(1, full, lambda k: fits(make(k, 0).text)), 0))


def head_post(edition: Edition, *, web_url: str | None, tags: Sequence[str] = (), credit: str | None = None) -> Post:
    """The thread's first post: the week's title and dates, how many papers, who curated them (`credit`, left out
    before the title is cut), a link to the edition on the web, the configured tags."""
    dates = date_range(edition.first_day, edition.last_day)
    title = one_line(week_heading(edition.title) if dates else clean(edition.title)) or edition.key
    curator = one_line(clean(credit)) if credit else ""
    link = safe_url(web_url) if web_url else None
    count, late = len(edition.papers), edition.late_papers

    def make(title_k: int, with_credit: bool) -> Rich:
        spans = [Span(shorten(title, title_k) + (f"\n{dates}" if dates else "") + "\n")]
        if count:
            spans.append(Span(f"\n{count} paper{'' if count == 1 else 's'} this week, one per reply 🧵"))
        if late:
            spans.append(Span(f"\n{late} paper{'' if late == 1 else 's'} added to earlier weeks"
                              + ("" if count else ", one per reply 🧵")))
        if with_credit and curator:
            spans.append(Span(f"\nCurated by {curator}"))
        if link:
            spans += [Span("\nThe edition: "), Span(anchor(link), link=link)]
        if tags:
            spans.append(Span("\n\n"))
            for i, tag in enumerate(tags):
                spans += [Span(" " if i else ""), Span("#" + tag, tag=tag)]
        return rich(spans)

    full = grapheme_count(title)
    if curator and fits(make(full, True).text):
        return _post(0, "head", make(full, True))
    if not fits(make(1, False).text):
        raise ComposeError(f"the head post is {make(1, False).graphemes} graphemes with the title cut to "
                           f"nothing; Bluesky allows {MAX_GRAPHEMES} (fewer tags)")
    return _post(0, "head", make(_largest(1, full, lambda k: fits(make(k, False).text)), False))


def compose_thread(edition: Edition, *, web_url: str | None, tags: Sequence[str] = (),
                   credit: str | None = None) -> list[Post]:
    """The whole thread of `edition`: the head post, one post per paper in the digest's order, then one per paper
    added to an earlier week ("Added to …"), as X's thread carries them."""
    total = len(edition.papers)
    posts = [head_post(edition, web_url=web_url, tags=tags, credit=credit)]
    posts += [paper_post(p, i, total) for i, p in enumerate(edition.papers, start=1)]
    late = [(g, p) for g in edition.late for p in g.papers]
    for i, (group, paper) in enumerate(late, start=1):
        added_to = one_line(clean(date_range(group.first_day, group.last_day) or group.title)) or group.key
        posts.append(paper_post(paper, i, len(late), added_to=added_to, post_index=len(posts)))
    return posts


def readable(posts: Sequence[Post]) -> str:
    """The thread as a person reads it, each post with its counts and its links after it."""
    parts = []
    for post in posts:
        kind = "head" if post.index == 0 else "reply"
        links = "".join(f"\n    [link] {u}" for u in post.links)
        parts.append(f"--- {post.index}: {kind}, {post.graphemes}/{MAX_GRAPHEMES} graphemes, {post.bytes} bytes\n"
                     f"{post.text}{links}\n")
    return "\n".join(parts)
