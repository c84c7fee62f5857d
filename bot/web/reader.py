"""What the reader's pages show, read from the store: the archive, neighbours, search and the Atom feed.

Plain functions of a Store (the web app runs them on its worker threads; `paperbot search` calls them too)
plus the Jinja2 environment of templates/web/ (overridable through $PAPERBOT_TEMPLATES_DIR like the email's).
Which weeks are public here is decided in one place, `PUBLISHED`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

import jinja2
from markupsafe import Markup

from bot.channels.email.render import _paper_view, edition_from_store, edition_url, templates_path
from bot.config import Config
from bot.edition.arxiv import author_line
from bot.edition.safetext import clean, date_range
from bot.store import Store
from bot.track.model import ArxivRecord, Paper
from bot.web import highlight

PUBLISHED = "w.state = 'published'"  # the weeks the feed and the home page show (SQL on `weeks w`)
# The archive, an edition's neighbours and search also show the weeks the age guard held (issue #21), marked
# held, under their own dates; they enter the feed only once approved and published.
ARCHIVE = "w.state IN ('published', 'held')"
PER_PAGE = 20
MAX_QUERY = 200
MAX_TERMS = 16
SEARCH_LIMIT = 50
_TERM = re.compile(r'"([^"]*)"?|([^\s"]+)')
_WORD = re.compile(r"\w", re.UNICODE)


def published_filter(held: bool = False) -> str:
    """The SQL condition (on `weeks w`) for a week readers may find in the feed (and, with `held`, in the
    archive and search, which also show the weeks the age guard held)."""
    return ARCHIVE if held else PUBLISHED


@dataclass(frozen=True)
class EditionRow:
    source: str
    key: str
    title: str
    dates: str
    n: int
    url: str
    updated: str
    held: bool = False  # held by the age guard (issue #21): shown in the archive, marked, never in the feed


def _row(cfg: Config, r: tuple) -> EditionRow:
    source, key, title, first, last, n, changed, published, state = r
    from datetime import date
    dates = date_range(date.fromisoformat(first) if first else None, date.fromisoformat(last) if last else None)
    return EditionRow(source, key, clean(title) or key, dates, n or 0, edition_url(cfg, source, key),
                      published or changed or "", state == "held")


_SELECT = ("SELECT w.source, w.key, w.title, w.first_day, w.last_day, w.n_papers, w.last_changed, "
           "(SELECT max(p.published_at) FROM publications p WHERE p.source = w.source AND p.week_key = w.key), "
           "w.state FROM weeks w")
_ORDER = "ORDER BY coalesce(w.last_day, w.key) DESC, w.source DESC, w.key DESC"


def editions(store: Store, cfg: Config, page: int = 1, per_page: int = PER_PAGE,
             held: bool = False) -> tuple[list[EditionRow], int]:
    """One page of published editions (with `held`, the archive's: held ones too), newest first, and the number
    of pages (at least 1)."""
    where = published_filter(held)
    total = store.db.execute(f"SELECT count(*) FROM weeks w WHERE {where}").fetchone()[0]
    rows = store.db.execute(f"{_SELECT} WHERE {where} {_ORDER} LIMIT ? OFFSET ?",
                            [per_page, (page - 1) * per_page]).fetchall()
    return [_row(cfg, r) for r in rows], max(1, math.ceil(total / per_page))


def latest(store: Store, cfg: Config) -> tuple[EditionRow, object] | None:
    """The newest published edition (row, Edition), or None."""
    rows, _ = editions(store, cfg, 1, 1)
    if not rows:
        return None
    return rows[0], edition_from_store(store, rows[0].source, rows[0].key)


def neighbours(store: Store, cfg: Config, source: str, key: str) -> tuple[EditionRow | None, EditionRow | None]:
    """(newer, older) editions around `source`/`key` in archive order (held ones included, as the archive)."""
    everyone = [(r[0], r[1]) for r in store.db.execute(
        f"SELECT w.source, w.key FROM weeks w WHERE {published_filter(held=True)} {_ORDER}").fetchall()]
    try:
        i = everyone.index((source, key))
    except ValueError:
        return None, None

    def one(j: int) -> EditionRow | None:
        if not 0 <= j < len(everyone):
            return None
        s, k = everyone[j]
        return _row(cfg, store.db.execute(f"{_SELECT} WHERE w.source = ? AND w.key = ?", [s, k]).fetchone())

    return one(i - 1), one(i + 1)


def fts_query(q: str) -> str | None:
    """The user's words as an FTS5 query that cannot be misread as syntax: every "quoted" part an exact
    phrase, every other word a quoted prefix term (`GPT-4o` becomes `"GPT-4o"*`, the phrase gpt 4o*).
    All terms must match. None when nothing searchable is left."""
    terms = []
    for phrase, word in _TERM.findall(q[:MAX_QUERY]):
        text = (phrase if phrase else word).replace('"', "")
        if not _WORD.search(text):
            continue
        if phrase:
            terms.append(f'"{text.strip()}"')
        else:
            terms.append(f'"{text.rstrip("*")}"*')
        if len(terms) == MAX_TERMS:
            break
    return " ".join(terms) or None


def is_held(store: Store, source: str, key: str) -> bool:
    """Whether the week is held by the age guard (its page says so)."""
    row = store.db.execute("SELECT state FROM weeks WHERE source = ? AND key = ?", [source, key]).fetchone()
    return bool(row and row[0] == "held")


# The full-text statements have the same text every time (sqlite3 keeps each prepared per connection: planned
# once); highlights are made in Python on one page of hits (bot/web/highlight.py), never by FTS5 markers.
def _groups_sql() -> str:
    """One row per paper that matches: its own words, or its arXiv record's (title, authors, abstract: #32), in
    a released edition; one arXiv id is one paper however many editions hold it. `k` names it, `best` ranks it
    (bm25), `rids` lists its rows. Grouped and ranked by SQLite, so a word in thousands of papers costs one page."""
    where = published_filter(held=True)
    return (
        "WITH m(rid, aid, rank) AS ("
        "SELECT p.rowid, p.arxiv_id, papers_fts.rank FROM papers_fts JOIN papers p ON p.rowid = papers_fts.rowid "
        f"JOIN weeks w ON w.source = p.source AND w.key = p.week_key WHERE papers_fts MATCH :q AND {where} "
        "UNION ALL "
        "SELECT p.rowid, p.arxiv_id, arxiv_papers_fts.rank FROM arxiv_papers_fts "
        "JOIN arxiv_papers a ON a.rowid = arxiv_papers_fts.rowid JOIN papers p ON p.arxiv_id = a.arxiv_id "
        "JOIN weeks w ON w.source = p.source AND w.key = p.week_key "
        f"WHERE arxiv_papers_fts MATCH :q AND a.found = 1 AND {where}), "
        "g(k, best, rids) AS (SELECT coalesce(aid, '#' || rid), min(rank), group_concat(rid) FROM m "
        "GROUP BY coalesce(aid, '#' || rid)) ")


_GROUPS = _groups_sql()


def search(store: Store, cfg: Config, q: str, limit: int = SEARCH_LIMIT, offset: int = 0) -> tuple[int, list[dict]]:
    """(how many papers match, the `limit` best from `offset` on) over the papers of published editions and held
    ones (marked `held`), ranked by bm25; title and authors come highlighted, the summary as a highlighted
    snippet (escaped text with <mark>, placed by position: bot/web/highlight.py), each as plain text under `plain`.
    One paper is one hit however many editions, digests or weeks it was in (its arXiv id, #32): the hit shows
    its newest edition and lists them all (`editions`).

    Three statements whatever the page holds (issue #29): the page with the total beside it (one full-text
    pass), the page's rows, their arXiv records."""
    match = fts_query(q)
    if match is None:
        return 0, []
    page = store.db.execute(_GROUPS + "SELECT k, rids, count(*) OVER () FROM g ORDER BY best, k "
                            "LIMIT :limit OFFSET :offset", {"q": match, "limit": limit, "offset": offset}).fetchall()
    if not page:  # nothing matches, or a page past the last: the total alone
        return store.db.execute(_GROUPS + "SELECT count(*) FROM g", {"q": match}).fetchone()[0], []
    total = page[0][2]
    groups = [(k, {int(r) for r in rids.split(",")}) for k, rids, _ in page]
    wanted = sorted(set().union(*(rows for _, rows in groups)))
    found: dict[int, tuple] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        found.update((r[0], r) for r in store.db.execute(
            "SELECT p.rowid, p.source, p.week_key, w.title, p.number, p.title, p.summary, p.authors, w.state, "
            "coalesce(w.last_day, w.key) FROM papers p JOIN weeks w ON w.source = p.source AND "
            f"w.key = p.week_key WHERE p.rowid IN ({','.join('?' * len(chunk))})", chunk).fetchall())
    records = store.arxiv_records([k for k, _ in groups if not k.startswith("#")])
    query = highlight.terms(q[:MAX_QUERY], MAX_TERMS)
    hits = [(k, _newest_first([found[r] for r in rows if r in found])) for k, rows in groups]
    return total, [_hit(cfg, query, k, rows, records.get(k)) for k, rows in hits if rows]  # gone meanwhile: left out


def _newest_first(rows: list[tuple]) -> list[tuple]:
    """A hit's rows as the archive lists them: newest week first (`day` descending), then source, then week."""
    return sorted(sorted(rows, key=lambda r: (r[1], r[2])), key=lambda r: r[9], reverse=True)


def _hit(cfg: Config, query: tuple[highlight.Term, ...], key: str, found: list[tuple],
         record: ArxivRecord | None) -> dict:
    rowid, source, week_key, wtitle, number, title, summary, authors, state, _ = found[0]
    if not authors and record is not None and record.authors:
        authors = author_line(Paper(title or ""), record)  # the row names none: arXiv's
    if not clean(title) and record is not None:
        title = record.title
    title, summary, authors = clean(title), clean(summary), clean(authors)
    editions = [{"source": s, "key": k, "edition": clean(t) or k, "url": edition_url(cfg, s, k), "held": st == "held"}
                for _, s, k, t, _, _, _, _, st, _ in found]
    return {"source": source, "key": week_key, "edition": clean(wtitle) or week_key, "number": number,
            "held": state == "held",
            "title": highlight.mark(title, query) if title else Markup("(untitled)"),
            "summary": highlight.snippet(summary, query),
            "authors": highlight.mark(authors, query),
            "plain": {"title": title, "summary": summary, "authors": authors},
            "url": edition_url(cfg, source, week_key), "editions": editions,
            "arxiv_id": None if key.startswith("#") else key}


class Templates:
    """templates/web/*.html rendered with autoescape; a missing override falls back to the built-in one."""

    def __init__(self, templates_dir: Path | None = None):
        self.dirs = templates_path(templates_dir)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in self.dirs]),
                                      autoescape=True, undefined=jinja2.StrictUndefined,
                                      auto_reload=False)  # read once: no stat of every template per page

    def render(self, name: str, ctx: dict) -> bytes:
        return self.env.get_template(name).render(ctx).encode("utf-8")

    def static(self, name: str) -> bytes:
        for d in self.dirs:
            path = d / "web" / name
            if path.is_file():
                return path.read_bytes()
        raise FileNotFoundError(name)


def feed(store: Store, cfg: Config, templates: Templates) -> bytes:
    """An Atom feed of the newest `[web] feed_entries` published editions, newest first, each with its papers as
    content (issue #24: its size is bounded, whatever the archive holds). Entry ids are the editions' URLs, so a
    reader never sees an edition twice."""
    rows, _ = editions(store, cfg, 1, cfg.web.feed_entries)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    base = cfg.web.base_url
    title = clean(cfg.web.title)
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<feed xmlns="http://www.w3.org/2005/Atom">',
           f"<title>{xml_escape(title)}</title>", f"<subtitle>{xml_escape(clean(cfg.web.description))}</subtitle>",
           f"<id>{xml_escape(base)}/feed.xml</id>", f"<link rel=\"self\" href={quoteattr(base + '/feed.xml')}/>",
           f"<link rel=\"alternate\" type=\"text/html\" href={quoteattr(base + '/')}/>",
           f"<updated>{xml_escape(_atom_time(rows[0].updated) if rows else now)}</updated>",
           f"<author><name>{xml_escape(title)}</name></author>"]
    for r in rows:
        edition = edition_from_store(store, r.source, r.key)
        content = templates.render("web/feed_entry.html", {"papers": [_paper_view(p, record=edition.record(p))
                                                                     for p in edition.papers]})
        out += ["<entry>", f"<title>{xml_escape(r.title)}</title>", f"<id>{xml_escape(r.url)}</id>",
                f"<link rel=\"alternate\" type=\"text/html\" href={quoteattr(r.url)}/>",
                f"<updated>{xml_escape(_atom_time(r.updated) or now)}</updated>",
                f"<summary>{xml_escape(r.dates + ' · ' if r.dates else '')}{r.n} papers</summary>",
                f"<content type=\"html\">{xml_escape(content.decode('utf-8'))}</content>", "</entry>"]
    out.append("</feed>")
    return ("\n".join(out) + "\n").encode("utf-8")


def _atom_time(stamp: str) -> str:
    """RFC 3339 with a zone, as Atom requires."""
    if not stamp:
        return ""
    t = datetime.fromisoformat(stamp)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")
