"""The store's queries about weeks: each source's weeks and their states, aliases of renamed weeks."""

from __future__ import annotations

import json
from datetime import date, datetime

import sqlite_utils

from bot.store.rows import WeekRow, iso


class WeekQueries:
    db: sqlite_utils.Database

    def newest_released_day(self, source: str, before: datetime) -> date | None:
        """The last day of the source's newest week first seen before `before` and released (ready, awaiting
        approval, published, or skipped after it was released) or present at its first poll (baseline,
        backfill): what a week first seen at `before` is compared with by the age guard (bot/track/age.py).
        Weeks that came in the same version as it are not: three weeks added at once are not an archive."""
        row = self.db.execute(
            "select max(last_day) from weeks where source = ? and late_of is null and first_seen < ? and "
            "(backfill = 1 or state in ('ready', 'awaiting-approval', 'published', 'baseline') or "
            "(state = 'skipped' and held is null and ready_at is not null))", [source, iso(before)]).fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    def weeks(self, source: str | None = None, state: str | None = None) -> list[WeekRow]:
        where, args = [], []
        if source is not None:
            where.append("source = ?")
            args.append(source)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        rows = self.db["weeks"].rows_where(" and ".join(where) or None, args, order_by="source, last_day, key")
        return [WeekRow.from_row(r) for r in rows]

    def week(self, source: str, key: str) -> WeekRow | None:
        rows = list(self.db["weeks"].rows_where("source = ? and key = ?", [source, key]))
        return WeekRow.from_row(rows[0]) if rows else None

    def find_weeks(self, key: str) -> list[WeekRow]:
        """Weeks with this key (or alias) in any source."""
        keys = {key} | {r["key"] for r in self.db["aliases"].rows_where("alias = ?", [key])}
        out = []
        for k in keys:
            out += [WeekRow.from_row(r) for r in self.db["weeks"].rows_where("key = ?", [k])]
        return out

    def upsert_week(self, source: str, key: str, **fields) -> None:
        for name in ("first_seen", "last_changed", "ready_at"):
            if isinstance(fields.get(name), datetime):
                fields[name] = iso(fields[name])
        for name in ("first_day", "last_day"):
            if isinstance(fields.get(name), date):
                fields[name] = fields[name].isoformat()
        if "titles" in fields and not isinstance(fields["titles"], str):
            fields["titles"] = json.dumps(list(fields["titles"]), ensure_ascii=False)
        for name in ("present", "flagged", "backfill", "placeholders"):
            if name in fields:
                fields[name] = int(bool(fields[name]))
        self.db["weeks"].upsert({"source": source, "key": key, **fields}, pk=("source", "key"))

    def aliases(self, source: str) -> dict[str, str]:
        return {r["alias"]: r["key"] for r in self.db["aliases"].rows_where("source = ?", [source])}

    def add_alias(self, source: str, alias: str, key: str) -> None:
        self.db["aliases"].upsert({"source": source, "alias": alias, "key": key}, pk=("source", "alias"))

    # -- papers --------------------------------------------------------------------------------------------
