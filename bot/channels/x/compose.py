"""The texts of a week's thread on X: a head post, then one post per paper, each within 280 weighted characters.

Pure apart from reading templates. The texts come from two Jinja2 text templates, `x_head.txt` and
`x_paper.txt`, found like the email's (`$PAPERBOT_TEMPLATES_DIR` or the `templates_dir` argument first, then
the built-in `bot.templates`). Every value from the digest is cleaned (`safetext.clean`) and made inert
(`text.inert`: no link, @mention, hashtag or cashtag; issue #21) before a template sees it; the only links in a
post are the ones chosen here (the paper's link, its arXiv abstract page when it has an arXiv link, optionally
one more of its links, and the edition on the web in the head post) and the only hashtags `[x] hashtags`.

A post that is too long loses, in this order: the end of the summary (cut at a word boundary, with "…"), the
extra link, then the end of the title. A paper always gets exactly one post: a long title is shortened, never
split over two posts.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from bot.channels.email.render import Edition, templates_path
from bot.channels.x.settings import normalize_hashtags
from bot.channels.x.text import (
    MAX_CHARS,
    MAX_WEIGHT,
    URL_WEIGHT,
    fits,
    inert,
    one_line,
    shorten,
    upper_weight,
    weighted_length,
)
from bot.edition.arxiv import author_line
from bot.edition.excerpt import week_heading
from bot.edition.safetext import clean, date_range, keep_lines, safe_url
from bot.track.model import Paper

log = logging.getLogger(__name__)

HEAD_TEMPLATE = "x_head.txt"
PAPER_TEMPLATE = "x_paper.txt"
MIN_SUMMARY = 40  # a summary cut shorter than this says nothing: leave it out instead
# Links to posts on X are never chosen: a status URL in a post quotes that post, an interaction with
# another account that an automated digest has no business making.
X_HOSTS = {"x.com", "twitter.com", "t.co", "mobile.twitter.com", "www.x.com", "www.twitter.com"}

_ARXIV = re.compile(
    r"^https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?(?:\.pdf)?/?(?:[?#].*)?$",
    re.IGNORECASE,
)
_BLANK_LINES = re.compile(r"\n{3,}")


class ComposeError(RuntimeError):
    """A post cannot be made to fit, or a template failed; the message names the template and the problem."""


@dataclass(frozen=True)
class Post:
    """One post of the thread: `index` 0 is the head, then 1..n in paper order."""

    index: int
    kind: str  # head | paper
    text: str
    weight: int  # weighted length as X counts it
    links: tuple[str, ...]  # the URLs paperbot put in it, in order


def arxiv_abs(url: str) -> str | None:
    """`https://arxiv.org/abs/<id>` for an arXiv abs/pdf/html link (any version: the page shows them all)."""
    m = _ARXIV.match(url.strip())
    return f"https://arxiv.org/abs/{m.group('id')}" if m else None


def _on_x(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in X_HOSTS


def paper_links(paper: Paper) -> tuple[str | None, str | None]:
    """(the paper's link, one more link): the arXiv abstract page if any link is arXiv, else the first
    plain http(s) link; the second is the next usable link that is not the same paper. Never a link to X."""
    usable = [u for lk in paper.links if (u := safe_url(lk.url)) and not _on_x(u)]
    arxiv = next((a for u in usable if (a := arxiv_abs(u))), None)
    main = arxiv or (usable[0] if usable else None)
    extra = next((u for u in usable if u != main and arxiv_abs(u) != main), None)
    return main, extra


def _env(dirs: tuple[Path, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]), autoescape=False,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        finalize=keep_lines,  # no control characters from any value, whatever the template does
    )


class _Templates:
    """The two templates, loaded once per thread; `render` turns a context into a tidy post text."""

    def __init__(self, templates_dir: Path | None, overrides: dict[str, str] | None = None):
        self.dirs = tuple(templates_path(templates_dir))
        self.env = _env(self.dirs)
        self.cache: dict[str, jinja2.Template] = {}
        self.overrides = overrides or {}  # a template's text from the config (`[x] head`), by name

    def render(self, name: str, ctx: dict) -> str:
        try:
            if name not in self.cache:
                source = self.overrides.get(name)
                self.cache[name] = self.env.from_string(source) if source else self.env.get_template(name)
            text = self.cache[name].render(ctx)
        except jinja2.TemplateNotFound as e:
            raise ComposeError(f"template {name} not found in {', '.join(map(str, self.dirs))}") from e
        except jinja2.TemplateError as e:
            where = f"{e.filename}:{e.lineno}" if getattr(e, "lineno", None) else name
            raise ComposeError(f"{where}: {e}") from e
        lines = "\n".join(line.rstrip() for line in text.strip().split("\n"))
        return _BLANK_LINES.sub("\n\n", lines)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest k in [lo, hi] with ok(k), given ok(lo); ok is (close enough to) monotone."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _upper(text: str, links: Sequence[str | None]) -> tuple[int, bool]:
    """`upper_weight` of a rendered post, each of paperbot's links counted as X counts a URL (23)."""
    for link in links:
        if link:
            text = text.replace(link, "x" * URL_WEIGHT)
    return upper_weight(text)


def _fit(lo: int, n: int, render: Callable[[int], str], piece: Callable[[int], str],
         links: Sequence[str | None]) -> int | None:
    """The largest k in [lo, n] whose `render(k)` fits in a post, None if not even `render(lo)` does;
    `piece(k)` is the part of the post that k changes (the cut title or summary).

    X's count (twitter-text) takes milliseconds for a post-sized text, so the search runs on a cheap upper
    bound, counted code point by code point without rendering (exact unless the post holds emoji sequences,
    which X counts 2 each), and X's count checks the result: one count for most posts, a search with
    X's count only when the bound was loose (emoji sequences) or wrong (a template quirk)."""
    n = max(lo, min(n, MAX_CHARS))
    (base_upper, base_exact), (top_upper, top_exact) = _upper(render(lo), links), _upper(render(n), links)
    lo_upper, n_upper = upper_weight(piece(lo))[0], upper_weight(piece(n))[0]
    around = top_upper - base_upper - (n_upper - lo_upper)  # what the template adds around a non-empty piece

    def bound(k: int) -> tuple[int, bool]:
        upper, exact = upper_weight(piece(k))
        return base_upper + upper - lo_upper + (around if k > lo else 0), exact and base_exact and top_exact

    def real(k: int) -> bool:
        return fits(render(k))

    whole, whole_exact = bound(n)
    if (whole <= MAX_WEIGHT or not whole_exact) and real(n):
        return n
    k = _largest(lo, n - 1, lambda k: bound(k)[0] <= MAX_WEIGHT)
    if not real(k):  # not a bound after all (a character X counts as an emoji, a template quirk)
        return _largest(lo, k - 1, real) if k > lo and real(lo) else None
    if k + 1 < n and not bound(k + 1)[1] and real(k + 1):  # a loose bound (emoji sequences): look further
        k = _largest(k + 1, n - 1, real)
    return k


def _summary_cut(summary: str, k: int) -> str:
    s = shorten(summary, k)
    return "" if s != summary and len(s) < MIN_SUMMARY else s


def _post(index: int, kind: str, text: str, links: Sequence[str | None]) -> Post:
    return Post(index=index, kind=kind, text=text, weight=weighted_length(text),
                links=tuple(u for u in links if u))


def paper_post(paper: Paper, index: int, total: int, *, extra_link: bool = False, added_to: str | None = None,
               head_url: str | None = None, post_index: int | None = None, authors: str = "",
               templates_dir: Path | None = None, _templates: _Templates | None = None) -> Post:
    """The post for the `index`-th of `total` papers (1-based), fitted into 280 weighted characters.
    `added_to` names the earlier week a late paper was added to; `head_url` links the thread's head post
    (for an account that cannot reply: `[x] replies = false`); `post_index` is its place in the thread.
    `authors` (arXiv's, #32) go in only if the post fits whole with them; otherwise the post is as without."""
    tpl = _templates or _Templates(templates_dir)
    if authors:
        without = paper_post(paper, index, total, extra_link=extra_link, added_to=added_to, head_url=head_url,
                             post_index=post_index, _templates=tpl)
        url, extra = paper_links(paper)
        links = (url, extra if extra_link else None, head_url)
        whole = tpl.render(PAPER_TEMPLATE, {
            "index": index, "total": total, "number": paper.number,
            "title": inert(one_line(clean(paper.title)) or "(untitled)"),
            "summary": inert(one_line(clean(paper.summary))), "url": url, "extra_url": links[1],
            "added_to": added_to, "head_url": head_url, "authors": inert(one_line(clean(authors)))})
        if whole != without.text and fits(whole):
            return _post(index if post_index is None else post_index, "paper", whole, links)
        return without
    title = one_line(clean(paper.title)) or "(untitled)"
    summary = one_line(clean(paper.summary))
    url, extra = paper_links(paper)

    @functools.cache
    def title_at(k: int) -> str:
        return inert(shorten(title, k))

    @functools.cache
    def summary_at(k: int) -> str:
        return inert(_summary_cut(summary, k))

    def text(title_k: int, summary_k: int, with_extra: bool) -> str:
        return tpl.render(PAPER_TEMPLATE, {
            "index": index, "total": total, "number": paper.number, "title": title_at(title_k),
            "summary": summary_at(summary_k), "url": url, "extra_url": extra if with_extra else None,
            "added_to": added_to, "head_url": head_url, "authors": "",
        })

    at = index if post_index is None else post_index
    full = min(len(title), MAX_CHARS)
    for with_extra in ((True, False) if extra_link and extra else (False,)):
        k = _fit(0, len(summary), lambda k, w=with_extra: text(full, k, w), summary_at, (url, extra, head_url))
        if k is not None:
            return _post(at, "paper", text(full, k, with_extra), (url, extra if with_extra else None, head_url))
    k = _fit(1, full, lambda k: text(k, 0, False), title_at, (url, head_url))
    if k is None:
        raise ComposeError(f"{PAPER_TEMPLATE}: paper {index} is {weighted_length(text(1, 0, False))} weighted "
                           "characters with its title and summary cut to nothing; X allows 280")
    log.info("x: the title of paper %d is shortened to fit one post", index)
    return _post(at, "paper", text(k, 0, False), (url, head_url))


def head_post(edition: Edition, *, web_url: str | None, hashtags: Sequence[str] = (), credit: str | None = None,
              templates_dir: Path | None = None, _templates: _Templates | None = None) -> Post:
    """The thread's first post: the week's title and dates, how many papers, who curated them (`credit`, plain
    text: issue #16; left out before the title is cut), the web edition, 🧵."""
    tpl = _templates or _Templates(templates_dir)
    curator = inert(one_line(clean(credit))) if credit else ""
    dated = bool(date_range(edition.first_day, edition.last_day))  # the dates get their own line: not twice
    title = one_line(week_heading(edition.title) if dated else clean(edition.title)) or edition.key
    link = safe_url(web_url) if web_url else None
    tags = list(normalize_hashtags(hashtags))

    @functools.cache
    def title_at(k: int) -> str:
        return inert(shorten(title, k))

    def text(title_k: int, with_credit: bool = False) -> str:
        return tpl.render(HEAD_TEMPLATE, {
            "title": title_at(title_k), "dates": date_range(edition.first_day, edition.last_day),
            "count": len(edition.papers), "late_count": edition.late_papers, "web_url": link, "hashtags": tags,
            "source": inert(clean(edition.source)), "key": inert(clean(edition.key)),
            "credit": curator if with_credit else "",
        })

    if curator and fits(text(len(title), True)):
        return _post(0, "head", text(len(title), True), (link,))
    k = _fit(1, len(title), text, title_at, (link,))
    if k is None:
        raise ComposeError(f"{HEAD_TEMPLATE}: the head post is {weighted_length(text(1))} weighted characters "
                           "with the title cut to nothing; X allows 280 (fewer hashtags or a shorter template)")
    return _post(0, "head", text(k), (link,))


def _arxiv_authors(edition: Edition, paper: Paper) -> str:
    """arXiv's authors of a paper whose row names none (#32): the first three, then "et al."."""
    record = edition.record(paper)
    if paper.authors or record is None:
        return ""
    return author_line(paper, record, max_names=3)


def compose_thread(edition: Edition, *, web_url: str | None, hashtags: Sequence[str] = (),
                   extra_link: bool = False, templates_dir: Path | None = None, head_template: str | None = None,
                   head_url: str | None = None, credit: str | None = None) -> list[Post]:
    """The whole thread of `edition`: the head post, one post per paper in the digest's order, then one per paper
    added to an earlier week ("Added to …"). `head_template` replaces x_head.txt's text (`[x] head`);
    `head_url` goes into every paper post (a placeholder the sender fills in when posts cannot be replies);
    `credit` names the curators in the head post (issue #16)."""
    tpl = _Templates(templates_dir, {HEAD_TEMPLATE: head_template} if head_template else None)
    total = len(edition.papers)
    posts = [head_post(edition, web_url=web_url, hashtags=hashtags, credit=credit, _templates=tpl)]
    posts += [paper_post(p, i, total, extra_link=extra_link, head_url=head_url, _templates=tpl,
                         authors=_arxiv_authors(edition, p))
              for i, p in enumerate(edition.papers, start=1)]
    late = [(g, p) for g in edition.late for p in g.papers]
    for i, (group, paper) in enumerate(late, start=1):
        added_to = one_line(clean(date_range(group.first_day, group.last_day) or group.title)) or group.key
        posts.append(paper_post(paper, i, len(late), extra_link=extra_link, added_to=inert(added_to),
                                head_url=head_url, post_index=len(posts), _templates=tpl,
                                authors=_arxiv_authors(edition, paper)))
    return posts
