"""The store's queries about arXiv's records (#32): the cache keyed by arXiv id, which papers still need a record,
and when the API last answered. Enrichment (bot/sources/enrich.py) writes them; editions, search and status read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from bot.store.rows import iso
from bot.track.arxiv_ids import first_arxiv_id
from bot.track.model import ArxivRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArxivCounts:
    """What `paperbot status` says about enrichment."""

    papers: int  # stored papers that link an arXiv paper
    enriched: int  # of those, how many have arXiv's record
    last_answer_at: str | None
    last_error: str | None
    last_error_at: str | None


def _record(r: tuple) -> ArxivRecord:
    arxiv_id, title, authors, abstract, primary, categories, published, updated = r
    return ArxivRecord(arxiv_id, title, tuple(json.loads(authors)), abstract, primary, tuple(json.loads(categories)),
                       published, updated)


_COLUMNS = "arxiv_id, title, authors, abstract, primary_category, categories, published, updated"


class ArxivQueries:
    db: sqlite_utils.Database

    def arxiv_records(self, ids: Iterable[str], known_by: datetime | None = None) -> dict[str, ArxivRecord]:
        """The cached records of `ids` that arXiv knows; with `known_by`, only those first fetched by then (what
        an edition planned at that time carried, so later enrichment never changes what a channel sent)."""
        wanted = sorted(set(ids))
        out: dict[str, ArxivRecord] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            sql = f"SELECT {_COLUMNS} FROM arxiv_papers WHERE found = 1 AND arxiv_id IN ({','.join('?' * len(chunk))})"
            args: list = list(chunk)
            if known_by is not None:
                sql += " AND first_fetched_at <= ?"
                args.append(iso(known_by))
            out.update((r[0], _record(r)) for r in self.db.execute(sql, args).fetchall())
        return out

    def arxiv_wanted(self, stale_before: datetime, source: str | None = None, week_key: str | None = None,
                     limit: int = 10_000) -> list[str]:
        """arXiv ids of stored papers with no cached record, or one fetched before `stale_before`; newest weeks
        first, so a new week's papers are enriched before the archive's backlog."""
        where, args = ["p.arxiv_id IS NOT NULL", "(a.arxiv_id IS NULL OR a.fetched_at < ?)"], [iso(stale_before)]
        if source is not None:
            where.append("p.source = ?")
            args.append(source)
        if week_key is not None:
            where.append("p.week_key = ?")
            args.append(week_key)
        rows = self.db.execute(
            "SELECT p.arxiv_id, max(p.week_key) AS newest FROM papers p "
            "LEFT JOIN arxiv_papers a ON a.arxiv_id = p.arxiv_id "
            f"WHERE {' AND '.join(where)} GROUP BY p.arxiv_id ORDER BY newest DESC, p.arxiv_id LIMIT ?",
            [*args, limit]).fetchall()
        return [r[0] for r in rows]

    def save_arxiv(self, records: Iterable[ArxivRecord], missing: Iterable[str], now: datetime) -> None:
        """Cache what one answer held: each record (its first fetch time kept on a refresh) and the ids arXiv
        knows nothing of (asked again only when stale)."""
        stamp = iso(now)
        with self.atomic():  # type: ignore[attr-defined]
            for r in records:
                self.db.execute(
                    "INSERT INTO arxiv_papers (arxiv_id, found, title, authors, abstract, primary_category, "
                    "categories, published, updated, first_fetched_at, fetched_at) "
                    "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (arxiv_id) DO UPDATE SET found = 1, "
                    "title = excluded.title, authors = excluded.authors, abstract = excluded.abstract, "
                    "primary_category = excluded.primary_category, categories = excluded.categories, "
                    "published = excluded.published, updated = excluded.updated, fetched_at = excluded.fetched_at",
                    [r.arxiv_id, r.title, json.dumps(list(r.authors), ensure_ascii=False), r.abstract,
                     r.primary_category, json.dumps(list(r.categories)), r.published, r.updated, stamp, stamp])
            for arxiv_id in missing:
                self.db.execute(
                    "INSERT INTO arxiv_papers (arxiv_id, found, first_fetched_at, fetched_at) VALUES (?, 0, ?, ?) "
                    "ON CONFLICT (arxiv_id) DO UPDATE SET fetched_at = excluded.fetched_at", [arxiv_id, stamp, stamp])
            self._arxiv_state(last_answer_at=stamp)

    def arxiv_failed(self, error: str, now: datetime) -> None:
        with self.atomic():  # type: ignore[attr-defined]
            self._arxiv_state(last_error=error, last_error_at=iso(now))

    def _arxiv_state(self, **values: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO arxiv_state (id) VALUES (1)")
        sets = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE arxiv_state SET {sets} WHERE id = 1", list(values.values()))

    def arxiv_counts(self) -> ArxivCounts:
        papers, enriched = self.db.execute(
            "SELECT count(DISTINCT p.arxiv_id), count(DISTINCT a.arxiv_id) FROM papers p "
            "LEFT JOIN arxiv_papers a ON a.arxiv_id = p.arxiv_id AND a.found = 1 "
            "WHERE p.arxiv_id IS NOT NULL").fetchone()
        row = self.db.execute("SELECT last_answer_at, last_error, last_error_at FROM arxiv_state").fetchone()
        return ArxivCounts(papers, enriched, *(row or (None, None, None)))


def arxiv_tables(db: sqlite_utils.Database) -> None:
    """Migration m021_arxiv's body (bot/store/schema.py says what it makes)."""
    db["papers"].add_column("arxiv_id", str)
    db["papers"].add_column("title_marked", int)
    rows = db.execute("SELECT rowid, links FROM papers").fetchall()
    for rowid, links in rows:
        try:
            urls = [u for _, u in json.loads(links or "[]")]
        except (ValueError, TypeError):
            continue
        if found := first_arxiv_id(urls):
            db.execute("UPDATE papers SET arxiv_id = ? WHERE rowid = ?", [found, rowid])
    db.execute("CREATE INDEX idx_papers_arxiv ON papers (arxiv_id)")
    db.execute("""
        CREATE TABLE arxiv_papers (
            arxiv_id TEXT PRIMARY KEY,
            found INTEGER NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            authors TEXT NOT NULL DEFAULT '[]',
            abstract TEXT NOT NULL DEFAULT '',
            primary_category TEXT NOT NULL DEFAULT '',
            categories TEXT NOT NULL DEFAULT '[]',
            published TEXT NOT NULL DEFAULT '',
            updated TEXT NOT NULL DEFAULT '',
            first_fetched_at TEXT NOT NULL,
            fetched_at TEXT NOT NULL
        )""")
    db["arxiv_papers"].enable_fts(["title", "authors", "abstract"], create_triggers=True,
                                  tokenize="unicode61 remove_diacritics 2")
    db.execute("""
        CREATE TABLE arxiv_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_answer_at TEXT,
            last_error TEXT,
            last_error_at TEXT
        )""")
    n = db.execute("SELECT count(*) FROM papers WHERE arxiv_id IS NOT NULL").fetchone()[0]
    if n:
        log.info("papers known by their arXiv id: %d", n)
