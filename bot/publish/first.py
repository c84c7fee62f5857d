"""The first subscriber (issue #25): a week ready while nobody is subscribed waits on email instead of going to
nobody, and the first subscriber gets the newest waiting week, never a burst of the older ones.

On a live email channel (a channel whose `waits_for_audience` is true) a week planned with no active subscriber
is not planned: it is recorded in `audience_waits` and stays ready (X and Discord publish it as usual). When the
first subscriber confirms on the web, their welcome email carries the newest waiting week (`claim_for_welcome`),
which is then published on email; the older waiting weeks of its source become `skipped`, with the reason. A
subscriber added another way (`paperbot subscribers add`, an import) gets the newest waiting week of each source
by the next publishing round (`before_plan`), and the older ones are skipped the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.channels.base import Channel
from bot.config import Config
from bot.edition.edition import Edition, edition_from_store
from bot.publish import ledger
from bot.publish.trials import settle
from bot.store import Store, WeekRow, iso

log = logging.getLogger(__name__)

WAITING = "waiting for the first subscriber"
CHANNEL = "email"


def _has_table(store: Store) -> bool:
    return store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audience_waits'") \
        .fetchone() is not None


def _age(w: WeekRow) -> tuple:
    return (w.last_day or w.first_seen.date(), w.key)


def waiting(store: Store, channel: str = CHANNEL, source: str | None = None) -> list[WeekRow]:
    """The weeks waiting for the first subscriber on `channel`, newest first."""
    if not _has_table(store):
        return []
    rows = store.db.execute("SELECT source, week_key FROM audience_waits WHERE channel = ? AND ended_at IS NULL "
                            "AND (? IS NULL OR source = ?)", [channel, source, source]).fetchall()
    weeks = [w for s, k in rows if (w := store.week(s, k)) is not None and w.state == "ready"]
    return sorted(weeks, key=_age, reverse=True)


def is_waiting(store: Store, source: str, key: str, channel: str = CHANNEL) -> bool:
    return _has_table(store) and store.db.execute(
        "SELECT 1 FROM audience_waits WHERE source = ? AND week_key = ? AND channel = ? AND ended_at IS NULL",
        [source, key, channel]).fetchone() is not None


def _end(store: Store, source: str, key: str, channel: str, outcome: str, now: datetime) -> None:
    store.db.execute("UPDATE audience_waits SET ended_at = ?, outcome = ? WHERE source = ? AND week_key = ? "
                     "AND channel = ? AND ended_at IS NULL", [iso(now), outcome, source, key, channel])


def _skip(cfg: Config, store: Store, week: WeekRow, channel: str, newer: str, now: datetime) -> str:
    note = (f"skipped: it was {WAITING}, and the newest waiting week ({newer}) went to the first subscriber "
            "instead (never a burst of old weeks)")
    with store.atomic():
        ledger.plan(store, week.source, week.key, channel, [], now, note=note)
        ledger.skip(store, week.source, week.key, channel, note, now)
        _end(store, week.source, week.key, channel, f"skipped for {newer}", now)
    log.warning("%s %s:%s %s", channel, week.source, week.key, note)
    settle(cfg, store, week.source, week.key)
    return note


def before_plan(cfg: Config, store: Store, week: WeekRow, channel: Channel, now: datetime) -> tuple[str, bool] | None:
    """Before a live audience channel plans `week` for the first time: (what to say, whether the week is done on
    the channel) when it must not be planned now, else None (plan it). With nobody to send to it waits; with
    subscribers again, an older waiting week is skipped for the newest one, which is planned."""
    if not getattr(channel, "waits_for_audience", False) or not channel.live or week.late_of or not _has_table(store):
        return None
    if not channel.plan(store, week):
        with store.atomic():
            new = store.db.execute("INSERT OR IGNORE INTO audience_waits (source, week_key, channel, since) "
                                   "VALUES (?, ?, ?, ?)", [week.source, week.key, channel.name, iso(now)]).rowcount
        note = (f"{WAITING}: nobody is subscribed yet, so it is not sent to nobody; the first subscriber's "
                f"welcome email carries the newest waiting week (other channels publish as usual)")
        if new:
            log.warning("%s %s:%s: %s", channel.name, week.source, week.key, note)
        return note, False
    if not is_waiting(store, week.source, week.key, channel.name):
        return None
    newest = waiting(store, channel.name, week.source)
    if newest and newest[0].key != week.key:
        return _skip(cfg, store, week, channel.name, newest[0].key, now), True
    with store.atomic():
        _end(store, week.source, week.key, channel.name, "planned for the subscribers", now)
    return None


def claim_for_welcome(store: Store, cfg: Config, now: datetime) -> Edition | None:
    """The newest week waiting for the first subscriber on email, for their welcome email: published on email
    by that welcome (so it is not mailed to them twice), the older waiting weeks of its source skipped. None when
    no week waits (the welcome then carries the latest published edition)."""
    found = waiting(store, CHANNEL)
    if not found:
        return None
    week = found[0]
    note = f"went out in the first subscriber's welcome email ({iso(now)[:16].replace('T', ' ')} UTC)"
    with store.atomic():
        if ledger.publication(store, week.source, week.key, CHANNEL) is not None:
            return None  # planned meanwhile by a publishing round: it goes out with it
        ledger.plan(store, week.source, week.key, CHANNEL, [], now, note=note)
        ledger.finish(store, week.source, week.key, CHANNEL, now)
        _end(store, week.source, week.key, CHANNEL, "the first subscriber's welcome", now)
    log.info("%s %s:%s %s", CHANNEL, week.source, week.key, note)
    for older in waiting(store, CHANNEL, week.source):
        _skip(cfg, store, older, CHANNEL, week.key, now)
    settle(cfg, store, week.source, week.key)
    return edition_from_store(store, week.source, week.key, CHANNEL)
