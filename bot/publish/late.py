"""Late additions, publishing's record of them: which papers each channel's edition of a week held, which papers
came after it went out, which later edition carries them, and when they were delivered.

Each channel's edition of a week records the papers it held (`channel_editions.paper_keys`: the identity keys of
bot/track/late.py's `paper_keys`). Once the week went out there, a paper of the week that matches nothing the
channel carried for that week (in its edition or as a late addition) is a late addition for that channel
(`late_additions`): found once, carried once by a later edition of the same source (`carried_in_key`), and
delivered when that edition goes out. The matching is pure (bot/track/late.py); reading the record back to build
an edition is bot/edition/holdings.py.

The pipeline's steps: before a channel first plans an edition it looks for late papers, and the planning
transaction claims them (so a crash can neither lose nor repeat them); an edition whose week already went out on
the channel keeps the papers it went out with; and late papers that no new week takes within `[publish]
late_max_wait` get an edition of their own, a ready week keyed "<week key>+late1" that the pipeline publishes like
any other. The replay (bot/publish/replay.py: every edition goes out the moment it is released) uses the same
record with its own clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from bot.edition import holdings
from bot.edition.edition import late_rows, own_papers
from bot.store import Store, WeekRow, iso
from bot.track.late import LATE_MARK, TITLE, LateEvent, LateRow, WentOut, deadline, new_papers, paper_json, paper_keys
from bot.track.model import Paper

log = logging.getLogger(__name__)


# -- what each channel's edition of a week held ----------------------------------------------------------------
def record_edition(store: Store, source: str, key: str, channel: str, papers: Iterable[Paper]) -> None:
    """Add `papers` to what the channel's edition of the week holds. Called before every rendering that may be
    sent, so the record holds every paper any reader of the channel got (a rendering that reached nobody adds
    nothing that the next one would not add too)."""
    keys = (holdings.edition_keys(store, source, key, channel) or set()) | {k for p in papers for k in paper_keys(p)}
    with store.atomic():
        store.db.execute("INSERT OR IGNORE INTO channel_editions (source, week_key, channel) VALUES (?, ?, ?)",
                         [source, key, channel])
        store.db.execute("UPDATE channel_editions SET paper_keys = ? WHERE source = ? AND week_key = ? "
                         "AND channel = ?", [json.dumps(sorted(keys), ensure_ascii=False), source, key, channel])


def mark_went_out(store: Store, source: str, key: str, channel: str, at: datetime) -> None:
    """The channel's edition of the week went out at `at`: so did the late papers it carries."""
    with store.atomic():
        store.db.execute("UPDATE channel_editions SET went_out_at = coalesce(went_out_at, ?) WHERE source = ? "
                         "AND week_key = ? AND channel = ?", [iso(at), source, key, channel])
        store.db.execute("UPDATE late_additions SET delivered_at = ? WHERE source = ? AND carried_in_key = ? "
                         "AND channel = ? AND delivered_at IS NULL", [iso(at), source, key, channel])


# -- finding late papers -----------------------------------------------------------------------------------------
def find(store: Store, source: str, channel: str, now: datetime, went_out: WentOut) -> list[LateRow]:
    """Record, as found at `now`, every paper of a week that went out on `channel` which the channel never carried
    for that week. Returns the new ones. A week is searched again only when its papers changed (fingerprint)."""
    weeks = {w.key: w for w in store.weeks(source) if w.late_of is None}
    found: list[LateRow] = []
    with store.atomic():
        eds = store.db.execute(
            "SELECT week_key, paper_keys, went_out_at, checked FROM channel_editions WHERE source = ? "
            "AND channel = ?", [source, channel]).fetchall()
        out = []
        for key, keys, at, checked in eds:
            if at is None and (t := went_out(key)) is not None:
                at = iso(t)
                mark_went_out(store, source, key, channel, t)
            if at is not None and key in weeks:
                out.append((key, keys, checked))
        todo = [e for e in out if e[1] is None or e[2] != weeks[e[0]].fingerprint]
        if not todo:
            return []
        todo.sort(key=lambda e: (weeks[e[0]].last_day or date.min, e[0]))
        for key, keys, _ in todo:
            papers = [p for _, p in store.papers(source, key)]
            if keys is None:  # sent before editions were recorded: what is there now counts as sent
                record_edition(store, source, key, channel, papers)
            else:
                carried = set(json.loads(keys))
                carried |= {k for r in holdings.late_rows(store, "source = ? AND week_key = ? AND channel = ?",
                                                          [source, key, channel]) for k in r.keys}
                for p, pk in new_papers(papers, carried):
                    cur = store.db.execute(
                        "INSERT OR IGNORE INTO late_additions (source, week_key, channel, paper_key, keys, "
                        "paper, found_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [source, key, channel, "\n".join(pk), json.dumps(pk, ensure_ascii=False), paper_json(p),
                         iso(now)])
                    if cur.rowcount:
                        found.append(holdings.late_rows(store, "id = ?", [cur.lastrowid])[0])
            store.db.execute("UPDATE channel_editions SET checked = ? WHERE source = ? AND week_key = ? "
                             "AND channel = ?", [weeks[key].fingerprint, source, key, channel])
    return found


def pending(store: Store, source: str | None, channel: str, now: datetime, wait: timedelta) -> bool:
    """Cheap: is there a week that went out and changed since it was last searched, or a late paper due alone?"""
    src, args = ("AND e.source = ? ", [channel, source]) if source else ("", [channel])
    changed = store.db.execute(
        "SELECT 1 FROM channel_editions e JOIN weeks w ON w.source = e.source AND w.key = e.week_key "
        f"WHERE e.channel = ? {src}AND e.went_out_at IS NOT NULL "
        "AND (e.paper_keys IS NULL OR e.checked IS NULL OR e.checked != w.fingerprint) LIMIT 1", args).fetchone()
    if changed:
        return True
    src = "AND source = ? " if source else ""
    due = store.db.execute(f"SELECT 1 FROM late_additions WHERE channel = ? {src}AND carried_in_key IS NULL "
                           "AND found_at <= ? LIMIT 1", [*args, iso(now - wait)]).fetchone()
    return due is not None


# -- carrying them -------------------------------------------------------------------------------------------------
def carry(store: Store, rows: Iterable[LateRow], key: str) -> None:
    """Edition `key` carries `rows` (call it in the transaction that plans the edition, so neither is without the
    other)."""
    with store.atomic():
        store.db.conn.executemany("UPDATE late_additions SET carried_in_key = ? WHERE id = ?",
                                  [(key, r.id) for r in rows])


def standalone_key(store: Store, source: str, rows: Sequence[LateRow]) -> tuple[str, str]:
    """(key, week it is named after) of a new edition of late papers alone: "<newest week>+late<n>"."""
    weeks = {r.week_key for r in rows}
    known = {w.key: w for w in store.weeks(source)}
    orig = max(weeks, key=lambda k: (known[k].last_day or date.min, k) if k in known else (date.min, k))
    taken = set(known) | {r[0] for r in store.db.execute(
        "SELECT DISTINCT carried_in_key FROM late_additions WHERE source = ? AND carried_in_key IS NOT NULL",
        [source]).fetchall()}
    n = 1
    while f"{orig}{LATE_MARK}{n}" in taken:
        n += 1
    return f"{orig}{LATE_MARK}{n}", orig


def events(store: Store, source: str, rows: Iterable[LateRow], carrier: str, at: datetime) -> list[LateEvent]:
    """One event per week the papers were added to (for the replay's output)."""
    rows = list(rows)
    out = []
    for g in holdings.groups(store, source, rows):
        found = min(r.found_at for r in rows if r.week_key == g.key)
        out.append(LateEvent(source=source, week=g.key, title=g.title, papers=tuple(p.title for p in g.papers),
                             carried_in=carrier, at=at, found_at=found))
    return out


# -- the pipeline's steps ----------------------------------------------------------------------------------------
def _went_out(store: Store, source: str, channel: str) -> WentOut:
    return lambda key: holdings.went_out_at(store, source, key, channel)


def before_render(store: Store, week: WeekRow, channel: str, now: datetime) -> None:
    """Before a channel renders a week to send it: the first time, find the late papers it should carry; always,
    record the papers the edition holds."""
    if not holdings.planned(store, week.source, week.key, channel):  # first planned, or only tried in the outbox
        find(store, week.source, channel, now, _went_out(store, week.source, channel))
    if week.late_of is None:
        record_edition(store, week.source, week.key, channel, own_papers(store, week, channel))


def nothing_to_carry(store: Store, week: WeekRow, channel: str) -> bool:
    """An edition of late papers alone that has none for this channel: it plans no unit there."""
    return week.late_of is not None and not late_rows(store, week, channel)


def claim(store: Store, week: WeekRow, channel: str) -> int:
    """Inside the transaction that plans the edition: it takes the late papers it was rendered with."""
    rows = holdings.claimable(store, week.source, channel, holdings.reached_nobody_on(store, week.source, channel),
                              exclude=week.key)
    carry(store, rows, week.key)
    return len(holdings.carried(store, week.source, week.key, channel))


def after_send(store: Store, week: WeekRow, channel: str) -> None:
    """Once the edition went out on the channel, so did the late papers it carries."""
    if (at := holdings.went_out_at(store, week.source, week.key, channel)) is not None:
        mark_went_out(store, week.source, week.key, channel, at)


def has_work(store: Store, channels: Sequence[str], now: datetime, wait: timedelta) -> bool:
    """Cheap: might `late_round` find or send anything now?"""
    return any(pending(store, None, c, now, wait) for c in channels)


def late_round(store: Store, channels: Sequence[str], now: datetime, wait: timedelta) -> list[WeekRow]:
    """Find late papers on every channel; where some have waited `wait` and no ready week of their source is
    still to be planned on that channel, make an edition of them alone (a ready week). Returns the new ones."""
    made = []
    for src in store.sources():
        source = src["name"]
        for c in channels:
            for r in find(store, source, c, now, _went_out(store, source, c)):
                log.info("%s:%s: %r was added after the week went out on %s; the next edition carries it",
                         source, r.week_key, r.paper.title[:80], c)
        ready = store.weeks(source, state="ready")
        if any(w.late_of for w in ready):
            continue  # one edition of late papers alone is waiting to go out (or, in a trial, to go out for real)
        due: list[LateRow] = []
        for c in channels:
            rows = holdings.claimable(store, source, c, holdings.reached_nobody_on(store, source, c))
            at = deadline(rows, wait)
            if at is None or at > now:
                continue
            if any(holdings.planned(store, source, w.key, c) is None for w in ready):
                continue  # a ready week not yet planned on the channel takes them
            due += rows
        if due:
            made.append(_standalone(store, source, due, now, wait))
    return made


def _standalone(store: Store, source: str, rows: list[LateRow], now: datetime, wait: timedelta) -> WeekRow:
    key, orig = standalone_key(store, source, rows)
    weeks = {r.week_key for r in rows}
    first = store.week(source, orig)
    title = f"{TITLE}: {first.title}" if len(weeks) == 1 and first else TITLE
    n = len({(r.week_key, r.paper_key) for r in rows})
    store.upsert_week(source, key, title=title, state="ready", first_seen=now, last_changed=now, ready_at=now,
                      fingerprint="", text_hash="", titles=[], present=True, flagged=False, backfill=False,
                      placeholders=False, n_papers=n, late_of=orig)
    log.info("%s: %d paper(s) added to earlier weeks (%s) found no new week within %s; they go out alone as %s",
             source, n, ", ".join(sorted(weeks)), wait, key)
    week = store.week(source, key)
    assert week is not None
    return week
