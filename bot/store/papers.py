"""The store's queries about a week's contents: its papers, in order, and the editor's note."""

from __future__ import annotations

import json
from datetime import datetime

import sqlite_utils

from bot.store.rows import iso, paper_from_row
from bot.track.arxiv_ids import first_arxiv_id
from bot.track.model import Paper


class PaperQueries:
    db: sqlite_utils.Database

    def replace_papers(self, source: str, week_key: str, papers: tuple[Paper, ...] | list[Paper]) -> None:
        self.db.execute("delete from papers where source = ? and week_key = ?", [source, week_key])
        self.db["papers"].insert_all(
            ({
                "source": source, "week_key": week_key, "position": i, "number": p.number, "title": p.title,
                "summary": p.summary, "links": json.dumps([[lk.label, lk.url] for lk in p.links], ensure_ascii=False),
                "release_date": p.release_date.isoformat() if p.release_date else None,
                "authors": p.authors, "published": p.published, "uid": p.uid,
                "arxiv_id": first_arxiv_id(lk.url for lk in p.links), "title_marked": int(p.title_marked),
            } for i, p in enumerate(papers)),
            pk=("source", "week_key", "position"),
        )

    # -- editor's notes ------------------------------------------------------------------------------------
    def note(self, source: str, week_key: str) -> str:
        """The editor's note of a week, "" if none."""
        row = self.db.execute("SELECT note FROM editor_notes WHERE source = ? AND week_key = ?",
                              [source, week_key]).fetchone()
        return row[0] if row else ""

    def set_note(self, source: str, week_key: str, note: str, now: datetime) -> None:
        """Set (or, with "", remove) the editor's note of a week."""
        with self.atomic():
            self.db.execute("DELETE FROM editor_notes WHERE source = ? AND week_key = ?", [source, week_key])
            if note:
                self.db.execute("INSERT INTO editor_notes (source, week_key, note, updated_at) VALUES (?, ?, ?, ?)",
                                [source, week_key, note, iso(now)])

    def papers(self, source: str, week_key: str | None = None) -> list[tuple[str, Paper]]:
        """(week key, paper) pairs in stored order."""
        if week_key is None:
            rows = self.db["papers"].rows_where("source = ?", [source], order_by="week_key, position")
        else:
            rows = self.db["papers"].rows_where("source = ? and week_key = ?", [source, week_key],
                                                order_by="position")
        return [(r["week_key"], paper_from_row(r)) for r in rows]
