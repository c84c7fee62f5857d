"""The archive's version (issues #24, #29): one counter row, `archive_version`, bumped by triggers.

The web app caches rendered pages, search results and the feed by this number and reads it per request, so a
change made by another process (the daemon publishing while `paperbot serve` answers) reaches every cache at the
next request. The triggers fire on every write that can change what a reader sees, and on no other: a week's
state, title, dates, size or `last_changed` (a poll that found an edit, a release, an approval, a publish), any
change to its papers (a correction), a publication (a channel began sending, or finished), an editor's note.
"""

from __future__ import annotations

import sqlite_utils

# table -> the columns whose change bumps the version on UPDATE (None: any update)
WATCHED: dict[str, tuple[str, ...] | None] = {
    "weeks": ("title", "state", "first_day", "last_day", "n_papers", "last_changed", "held"),
    "publications": ("state", "published_at", "trial"),
    "papers": None,  # a title, a summary, a link, its place
    "editor_notes": None,
}


def create(db: sqlite_utils.Database) -> None:
    """Migration m023_web_cache (registered in bot/store/schema.py): the counter row (from 1) and its triggers."""
    db.execute("CREATE TABLE archive_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
    db.execute("INSERT INTO archive_version (id, version) VALUES (1, 1)")
    bump = "UPDATE archive_version SET version = version + 1 WHERE id = 1;"
    for table, columns in WATCHED.items():
        for event in ("INSERT", "DELETE"):
            db.execute(f"CREATE TRIGGER archive_version_{table}_{event.lower()} AFTER {event} ON {table} "
                       f"BEGIN {bump} END")
        when = (" WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)) if columns else ""
        db.execute(f"CREATE TRIGGER archive_version_{table}_update AFTER UPDATE ON {table}{when} BEGIN {bump} END")
