"""The store's queries about sources: each source's row, its polls and errors, the versions seen, and what the
gate learns from them (commit offsets, the usual size of a finished week)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlite_utils

from bot.store.rows import iso


class SourceQueries:
    db: sqlite_utils.Database

    def ensure_source(self, name: str, kind: str = "", location: str = "", now: datetime | None = None) -> dict:
        t = self.db["sources"]
        rows = list(t.rows_where("name = ?", [name]))
        if rows:
            return rows[0]
        row = {"name": name, "kind": kind, "location": location,
               "created_at": iso(now or datetime.now(UTC)), "polls": 0, "error_count": 0}
        t.insert(row)
        return row

    def source(self, name: str) -> dict | None:
        rows = list(self.db["sources"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def sources(self) -> list[dict]:
        return list(self.db["sources"].rows_where(order_by="name"))

    def update_source(self, name: str, **fields) -> None:
        self.db["sources"].update(name, fields)

    def record_poll(self, name: str, version: str, at: datetime, validators: dict | None = None) -> None:
        src = self.source(name) or {}
        fields = {"polls": (src.get("polls") or 0) + 1, "last_version": version, "last_polled": iso(at),
                  "last_error": None, "last_error_at": None, "error_count": 0, "failing_since": None}
        if validators is not None:
            fields["validators"] = json.dumps(validators)
        self.update_source(name, **fields)

    def record_error(self, name: str, error: str, at: datetime) -> None:
        src = self.source(name) or {}
        self.update_source(name, last_error=error, last_error_at=iso(at),
                           error_count=(src.get("error_count") or 0) + 1,
                           failing_since=src.get("failing_since") or iso(at))  # the run's first failure

    def record_version(self, source: str, version: str, changed_at: datetime, fetched_at: datetime,
                       content_hash: str, n_weeks: int, new: list[str], edited: list[str],
                       utc_offset: timedelta | None = None) -> None:
        """`utc_offset`: the commit date's offset as written by its author (git only)."""
        minutes = None if utc_offset is None else int(utc_offset.total_seconds() // 60)
        self.db["versions"].insert({
            "source": source, "version": version, "changed_at": iso(changed_at), "fetched_at": iso(fetched_at),
            "content_hash": content_hash, "n_weeks": n_weeks, "new": json.dumps(new), "edited": json.dumps(edited),
            "utc_offset": minutes,
        })

    def versions(self, source: str) -> list[dict]:
        return list(self.db["versions"].rows_where("source = ?", [source], order_by="id"))

    def commit_offsets(self, source: str, limit: int = 1000) -> list[tuple[datetime, int]]:
        """(commit time, UTC offset in minutes) of the source's newest `limit` versions that have one, oldest first."""
        rows = self.db.execute(
            "select changed_at, utc_offset from versions where source = ? and utc_offset is not null "
            "order by id desc limit ?", [source, limit]).fetchall()
        history = self.db.execute(  # issue #25: the year before the first poll, read at that poll
            "select committed_at, utc_offset from source_commits where source = ? order by committed_at desc "
            "limit ?", [source, limit]).fetchall()
        found = [(datetime.fromisoformat(at), int(m)) for at, m in (*rows, *history)]
        return sorted(found)[-limit:]

    def record_commit_history(self, source: str, commits: list[tuple[str, datetime]]) -> None:
        """(sha, commit date with its author's offset) of commits before the first poll: what the clock learns."""
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO source_commits (source, committed_at, utc_offset, sha) VALUES (?, ?, ?, ?)",
            [(source, at.astimezone(UTC).isoformat(), int(at.utcoffset().total_seconds() // 60), sha)
             for sha, at in commits if at.utcoffset() is not None])

    def finished_counts(self, source: str, limit: int = 12) -> list[int]:
        """Papers in each of the source's newest `limit` finished weeks (released, or already there at its
        first poll): what a complete week of it usually holds."""
        rows = self.db.execute(
            "select n_papers from weeks where source = ? and state in ('ready', 'published', 'baseline') "
            "order by last_day desc, key desc limit ?", [source, limit]).fetchall()
        return [r[0] or 0 for r in rows]
