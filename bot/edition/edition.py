"""What one channel's edition of a week holds: the week's own papers, then the papers added to earlier weeks of the
same source that it carries ("Added to earlier weeks"). Channel-neutral: email renders an `Edition`, and so will
X and Discord.

Also the glue between the ledger and bot/track/late.py. Before a channel first plans an edition it looks for late
papers, and the planning transaction claims them (so a crash can neither lose nor repeat them); an edition whose
week already went out on the channel keeps the papers it went out with (what came later is late, for everyone);
and late papers that no new week takes within `[publish] late_max_wait` get an edition of their own, a ready week
keyed "<week key>+late1" that the pipeline publishes like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.publish import ledger
from bot.store import Store, WeekRow
from bot.track import late
from bot.track.late import LateGroup, LateRow
from bot.track.model import Paper

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Edition:
    source: str
    key: str
    title: str
    first_day: date | None
    last_day: date | None
    papers: tuple[Paper, ...]
    late: tuple[LateGroup, ...] = ()  # papers added to earlier weeks, after the week's own
    late_only: bool = False  # an edition of late papers alone ("<key>+late1"): no papers of its own
    note: str = ""  # the editor's note (`paperbot note`), shown at the top; "" for none

    @property
    def late_papers(self) -> int:
        return sum(len(g.papers) for g in self.late)


def _went_out(store: Store, source: str, channel: str) -> late.WentOut:
    return lambda key: ledger.went_out_at(store, source, key, channel)


def _exists(store: Store, source: str, key: str, channel: str, states: Sequence[str]) -> bool:
    marks = ", ".join("?" * len(states))
    return store.db.execute(f"SELECT EXISTS (SELECT 1 FROM deliveries WHERE source = ? AND week_key = ? AND "
                            f"channel = ? AND state IN ({marks}))", [source, key, channel, *states]).fetchone()[0] == 1


def reached_nobody(store: Store, source: str, key: str, channel: str) -> bool:
    """An edition that ended on the channel without reaching anyone it was meant for: nothing `sent`, nothing left
    to send, and something only tried (a trial to the outbox) or skipped. The late papers it was to carry go with
    the next edition instead. (An edition planned for nobody, with no subscribers, keeps them, as it keeps its
    own papers.)"""
    return (not _exists(store, source, key, channel, ("sent", *ledger.OPEN))
            and _exists(store, source, key, channel, ("trial", "skipped")))


def _reached_nobody(store: Store, source: str, channel: str) -> late.ReachedNobody:
    return lambda key: reached_nobody(store, source, key, channel)


def own_papers(store: Store, week: WeekRow, channel: str | None) -> tuple[Paper, ...]:
    """The week's papers on `channel`: once the week is planned there for real (or went out), only those it was
    planned with: its units were counted from them (a thread's posts), so a paper added later is a late one,
    carried by the next edition, never a unit nobody planned (issue #15)."""
    papers = tuple(p for _, p in store.papers(week.source, week.key))
    if channel is None or week.late_of is not None:
        return papers
    pub = ledger.publication(store, week.source, week.key, channel)
    if (pub is None or pub.trial) and ledger.went_out_at(store, week.source, week.key, channel) is None:
        return papers
    keys = late.edition_keys(store, week.source, week.key, channel)
    if keys is None:
        return papers
    return tuple(p for p in papers if not keys.isdisjoint(late.paper_keys(p)))


def late_rows(store: Store, week: WeekRow, channel: str | None) -> list[LateRow]:
    """The late papers the edition carries on `channel`; before it is planned there, those it would take. For
    None (the web copy), what it carries on any channel."""
    if channel is None:
        return late.carried(store, week.source, week.key)
    rows = late.carried(store, week.source, week.key, channel)
    if ledger.publication(store, week.source, week.key, channel) is None:
        rows += late.claimable(store, week.source, channel, _reached_nobody(store, week.source, channel),
                               exclude=week.key)
    return rows


def edition_from_store(store: Store, source: str, key: str, channel: str | None = None) -> Edition:
    """The stored week `source`/`key` as `channel` sends it (None: the web copy); KeyError if there is no such
    week."""
    week = store.week(source, key)
    if week is None:
        raise KeyError(f"no week {key!r} in source {source!r}")
    papers = own_papers(store, week, channel)
    groups = late.groups(store, source, late_rows(store, week, channel), papers)
    return Edition(source, key, week.title, week.first_day, week.last_day, papers, groups,
                   late_only=week.late_of is not None, note=store.note(source, key))


# -- the pipeline's steps ----------------------------------------------------------------------------------------
def before_render(store: Store, week: WeekRow, channel: str, now: datetime) -> None:
    """Before a channel renders a week to send it: the first time, find the late papers it should carry; always,
    record the papers the edition holds."""
    pub = ledger.publication(store, week.source, week.key, channel)
    if pub is None or pub.trial:  # first planned, or only tried in the outbox so far
        late.find(store, week.source, channel, now, _went_out(store, week.source, channel))
    if week.late_of is None:
        late.record_edition(store, week.source, week.key, channel, own_papers(store, week, channel))


def nothing_to_carry(store: Store, week: WeekRow, channel: str) -> bool:
    """An edition of late papers alone that has none for this channel: it plans no unit there."""
    return week.late_of is not None and not late_rows(store, week, channel)


def claim(store: Store, week: WeekRow, channel: str) -> int:
    """Inside the transaction that plans the edition: it takes the late papers it was rendered with."""
    rows = late.claimable(store, week.source, channel, _reached_nobody(store, week.source, channel),
                          exclude=week.key)
    late.claim(store, rows, week.key)
    return len(late.carried(store, week.source, week.key, channel))


def after_send(store: Store, week: WeekRow, channel: str) -> None:
    """Once the edition went out on the channel, so did the late papers it carries."""
    if (at := ledger.went_out_at(store, week.source, week.key, channel)) is not None:
        late.mark_went_out(store, week.source, week.key, channel, at)


def has_work(store: Store, channels: Sequence[str], now: datetime, wait: timedelta) -> bool:
    """Cheap: might `late_round` find or send anything now?"""
    return any(late.pending(store, None, c, now, wait) for c in channels)


def late_round(store: Store, channels: Sequence[str], now: datetime, wait: timedelta) -> list[WeekRow]:
    """Find late papers on every channel; where some have waited `wait` and no ready week of their source is
    still to be planned on that channel, make an edition of them alone (a ready week). Returns the new ones."""
    made = []
    for src in store.sources():
        source = src["name"]
        for c in channels:
            for r in late.find(store, source, c, now, _went_out(store, source, c)):
                log.info("%s:%s: %r was added after the week went out on %s; the next edition carries it",
                         source, r.week_key, r.paper.title[:80], c)
        ready = store.weeks(source, state="ready")
        if any(w.late_of for w in ready):
            continue  # one edition of late papers alone is waiting to go out (or, in a trial, to go out for real)
        due: list[LateRow] = []
        for c in channels:
            rows = late.claimable(store, source, c, _reached_nobody(store, source, c))
            at = late.deadline(rows, wait)
            if at is None or at > now:
                continue
            if any(ledger.publication(store, source, w.key, c) is None for w in ready):
                continue  # a ready week not yet planned on the channel takes them
            due += rows
        if due:
            made.append(_standalone(store, source, due, now, wait))
    return made


def _standalone(store: Store, source: str, rows: list[LateRow], now: datetime, wait: timedelta) -> WeekRow:
    key, orig = late.standalone_key(store, source, rows)
    weeks = {r.week_key for r in rows}
    first = store.week(source, orig)
    title = f"{late.TITLE}: {first.title}" if len(weeks) == 1 and first else late.TITLE
    n = len({(r.week_key, r.paper_key) for r in rows})
    store.upsert_week(source, key, title=title, state="ready", first_seen=now, last_changed=now, ready_at=now,
                      fingerprint="", text_hash="", titles=[], present=True, flagged=False, backfill=False,
                      placeholders=False, n_papers=n, late_of=orig)
    log.info("%s: %d paper(s) added to earlier weeks (%s) found no new week within %s; they go out alone as %s",
             source, n, ", ".join(sorted(weeks)), wait, key)
    week = store.week(source, key)
    assert week is not None
    return week
