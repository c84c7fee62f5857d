"""Stored values as Python values: times, a week's row, a paper's row. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bot.track.model import Link, Paper


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def parse_time(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


@dataclass(frozen=True)
class WeekRow:
    """A week as stored: what the gate and the diff need to know about it."""

    source: str
    key: str
    title: str
    state: str  # baseline | pending | ready | held | awaiting-approval | published | skipped (every channel gave
    # it up: see pipeline.py)
    first_seen: datetime
    last_changed: datetime
    fingerprint: str
    text_hash: str
    titles: tuple[str, ...]
    present: bool
    flagged: bool
    backfill: bool
    placeholders: bool
    first_day: date | None
    last_day: date | None
    ready_at: datetime | None
    ready_version: str | None
    n_papers: int
    late_of: str | None = None  # an edition of papers added to earlier weeks: the week they came from
    held: str | None = None  # why the guard held it when it first became ready (issue #21); None: not held

    @classmethod
    def from_row(cls, r: dict) -> WeekRow:
        return cls(
            source=r["source"], key=r["key"], title=r["title"], state=r["state"],
            first_seen=parse_time(r["first_seen"]), last_changed=parse_time(r["last_changed"]),
            fingerprint=r["fingerprint"] or "", text_hash=r["text_hash"] or "",
            titles=tuple(json.loads(r["titles"] or "[]")), present=bool(r["present"]),
            flagged=bool(r["flagged"]), backfill=bool(r["backfill"]), placeholders=bool(r["placeholders"]),
            first_day=date.fromisoformat(r["first_day"]) if r["first_day"] else None,
            last_day=date.fromisoformat(r["last_day"]) if r["last_day"] else None,
            ready_at=parse_time(r["ready_at"]), ready_version=r["ready_version"], n_papers=r["n_papers"] or 0,
            late_of=r.get("late_of"), held=r.get("held"),
        )


def paper_from_row(r: dict) -> Paper:
    return Paper(
        title=r["title"], summary=r["summary"] or "",
        links=tuple(Link(label, url) for label, url in json.loads(r["links"] or "[]")),
        number=r["number"], release_date=date.fromisoformat(r["release_date"]) if r["release_date"] else None,
        authors=r["authors"] or "", published=r["published"], uid=r["uid"] or "",
        title_marked=r.get("title_marked") != 0,  # NULL (stored before #32): as written
    )
