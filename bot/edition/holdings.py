"""What a channel's edition of a week holds and carries, as publishing recorded it: reads only.

Publishing writes these facts (bot/publish/late.py: which papers each edition held, which late papers it
carries, when it went out; bot/publish/ledger.py: the deliveries); building an `Edition` reads them back, which
is why the reads live here, below the channels that render editions. `went_out_at` is the one definition of "a
week went out on a channel" (its first `sent` delivery there; a trial to the outbox is never `sent`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from bot.store import Store, parse_time
from bot.track.late import LateGroup, LateRow, ReachedNobody, paper_from_json, paper_keys
from bot.track.model import Paper

OPEN = ("planned", "sending", "failed")  # deliveries still to send (bot/publish/ledger.py's OPEN)
_COLUMNS = "id, source, week_key, channel, paper_key, keys, paper, found_at, carried_in_key, delivered_at"


def went_out_at(store: Store, source: str, key: str, channel: str) -> datetime | None:
    """When the week went out on the channel: its first delivery there in state `sent`; None if none is. The one
    definition of "went out" that late additions count from (a trial to the outbox is never `sent`)."""
    row = store.db.execute("SELECT min(sent_at) FROM deliveries WHERE source = ? AND week_key = ? AND channel = ? "
                           "AND state = 'sent'", [source, key, channel]).fetchone()
    return parse_time(row[0]) if row and row[0] else None


def planned(store: Store, source: str, key: str, channel: str) -> bool | None:
    """None if the week is not planned on the channel; else whether that plan is for real (not a trial)."""
    row = store.db.execute("SELECT trial FROM publications WHERE source = ? AND week_key = ? AND channel = ?",
                           [source, key, channel]).fetchone()
    return None if row is None else not row[0]


def planned_at(store: Store, source: str, key: str, channel: str) -> datetime | None:
    """When the week was planned on the channel (None if it is not): what arXiv's cache held then is what the
    edition carries there (#32)."""
    row = store.db.execute("SELECT planned_at FROM publications WHERE source = ? AND week_key = ? AND channel = ?",
                           [source, key, channel]).fetchone()
    return parse_time(row[0]) if row and row[0] else None


def _exists(store: Store, source: str, key: str, channel: str, states: Sequence[str]) -> bool:
    marks = ", ".join("?" * len(states))
    return store.db.execute(f"SELECT EXISTS (SELECT 1 FROM deliveries WHERE source = ? AND week_key = ? AND "
                            f"channel = ? AND state IN ({marks}))", [source, key, channel, *states]).fetchone()[0] == 1


def reached_nobody(store: Store, source: str, key: str, channel: str) -> bool:
    """An edition that ended on the channel without reaching anyone it was meant for: nothing `sent`, nothing left
    to send, and something only tried (a trial to the outbox) or skipped. The late papers it was to carry go with
    the next edition instead. (An edition planned for nobody, with no subscribers, keeps them, as it keeps its
    own papers.)"""
    return (not _exists(store, source, key, channel, ("sent", *OPEN))
            and _exists(store, source, key, channel, ("trial", "skipped")))


def reached_nobody_on(store: Store, source: str, channel: str) -> ReachedNobody:
    return lambda key: reached_nobody(store, source, key, channel)


def _row(r: tuple) -> LateRow:
    return LateRow(id=r[0], source=r[1], week_key=r[2], channel=r[3], paper_key=r[4], keys=tuple(json.loads(r[5])),
                   paper=paper_from_json(r[6]), found_at=parse_time(r[7]), carried_in=r[8],
                   delivered_at=parse_time(r[9]))


def late_rows(store: Store, where: str, args: Sequence) -> list[LateRow]:
    sql = f"SELECT {_COLUMNS} FROM late_additions WHERE {where} ORDER BY id"
    return [_row(r) for r in store.db.execute(sql, list(args)).fetchall()]


def edition_keys(store: Store, source: str, key: str, channel: str) -> set[str] | None:
    """The keys of the papers the channel's edition of the week held; None if nothing is recorded."""
    row = store.db.execute("SELECT paper_keys FROM channel_editions WHERE source = ? AND week_key = ? AND channel = ?",
                           [source, key, channel]).fetchone()
    return set(json.loads(row[0])) if row and row[0] is not None else None


def claimable(store: Store, source: str, channel: str, reached_nobody: ReachedNobody = lambda key: False,
              exclude: str | None = None) -> list[LateRow]:
    """Late papers not delivered and not carried by an edition still going out: the next edition takes them."""
    rows = late_rows(store, "source = ? AND channel = ? AND delivered_at IS NULL", [source, channel])
    free: dict[str, bool] = {}
    out = []
    for r in rows:
        if r.carried_in == exclude and exclude is not None:
            continue
        if r.carried_in is None or free.setdefault(r.carried_in, reached_nobody(r.carried_in)):
            out.append(r)
    return out


def carried(store: Store, source: str, key: str, channel: str | None = None) -> list[LateRow]:
    """The late papers edition `key` carries on `channel` (on any channel, once each, for None)."""
    if channel is not None:
        return late_rows(store, "source = ? AND carried_in_key = ? AND channel = ?", [source, key, channel])
    seen: set[tuple[str, str]] = set()
    out = []
    for r in late_rows(store, "source = ? AND carried_in_key = ?", [source, key]):
        if (r.week_key, r.paper_key) not in seen:
            seen.add((r.week_key, r.paper_key))
            out.append(r)
    return out


def groups(store: Store, source: str, rows: Iterable[LateRow], own: Iterable[Paper] = ()) -> tuple[LateGroup, ...]:
    """Late papers by the week they were added to, oldest week first, each paper as the week holds it now (as
    found, if it was taken out since). A paper the edition holds as one of its own is not repeated."""
    mine = {k for p in own for k in paper_keys(p)}
    by_week: dict[str, list[LateRow]] = {}
    for r in rows:
        if mine.isdisjoint(r.keys):
            by_week.setdefault(r.week_key, []).append(r)
    out = []
    for key, rs in by_week.items():
        week = store.week(source, key)
        now = [p for _, p in store.papers(source, key)]
        papers = []
        for r in rs:
            papers.append(next((p for p in now if not set(r.keys).isdisjoint(paper_keys(p))), r.paper))
        out.append(LateGroup(key=key, title=week.title if week else key, first_day=week.first_day if week else None,
                             last_day=week.last_day if week else None, papers=tuple(papers)))
    out.sort(key=lambda g: (g.last_day or date.min, g.key))
    return tuple(out)
