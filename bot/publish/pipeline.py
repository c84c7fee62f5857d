"""The publishing pipeline shared by every channel: plan a ready week into the ledger, send what is open,
and mark the week published once every enabled channel is done.

Planning happens once per week and channel, in one transaction; every later run only sends what the ledger
says is still open, so publishing a week twice sends nothing twice. Only one process publishes at a time
(state_dir/publish.lock): the daemon's after-poll hook skips a round while `paperbot publish` runs.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot import channels as registry
from bot import locks
from bot.channels.base import Channel, StorageError, Unit, storage_error
from bot.config import Config
from bot.publish import edition, ledger
from bot.publish.dispatch import RunStats, dispatch
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)

Progress = Callable[[str, RunStats], None]
LOCK_FILE = "publish.lock"


@dataclass
class ChannelReport:
    source: str
    key: str
    channel: str
    planned: int = 0  # rows planned by this run (0: planned before)
    already: bool = False  # was published before this run
    published: bool = False  # is published now
    dry_run: bool = False
    would_send: int = 0  # dry run: units that would be sent
    stats: RunStats | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.channel} {self.source}:{self.key}"


def lock_path(cfg: Config) -> Path:
    return cfg.state_dir / LOCK_FILE


def ready_weeks(store: Store) -> list[WeekRow]:
    """Ready weeks, oldest first (the order they were released in)."""
    weeks = store.weeks(state="ready")
    weeks.sort(key=lambda w: (w.last_day or w.first_seen.date(), w.key, w.source))
    return weeks


class _LogProgress:
    """Progress lines in the log, every `every` seconds and at the end, for when no terminal is watching."""

    def __init__(self, every: float = 10.0):
        self.every = every
        self.last: dict[str, float] = {}
        self.start: dict[str, float] = {}

    def __call__(self, label: str, s: RunStats) -> None:
        now = time.monotonic()
        start = self.start.setdefault(label, now)
        finished = s.done >= s.total
        if not finished and now - self.last.get(label, start) < self.every:
            return
        if finished and self.last.get(label) == -1:
            return
        self.last[label] = -1 if finished else now
        rate = s.done / (now - start) if now > start else 0.0
        log.info("%s: %d/%d done (%d sent, %d failed, %d bounced, %d skipped), %.0f/s", label, s.done,
                 s.total, s.sent, s.failed, s.bounced, s.skipped, rate)


def _apply_bounces(store: Store, channel: Channel, stats: RunStats, now: datetime) -> None:
    with stats.lock:
        bounces, stats.bounces = stats.bounces, []
    for unit, error in bounces:
        channel.on_permanent(store, unit, error, now)


def publish_channel(cfg: Config, store: Store, week: WeekRow, channel: Channel, *, now: datetime,
                    dry_run: bool = False, progress: Progress | None = None) -> ChannelReport:
    """Plan (once) and send (what is open) one week on one channel."""
    rep = ChannelReport(week.source, week.key, channel.name, dry_run=dry_run)
    pub = ledger.publication(store, week.source, week.key, channel.name)
    if pub is not None and pub.state == "published":
        rep.already = rep.published = True
        rep.counts = ledger.counts(store, week.source, week.key, channel.name)
        return rep
    if dry_run:
        channel.render(store, week, dry=True)  # fails loudly on a broken template, writes nothing
        rep.would_send = (_open(ledger.counts(store, week.source, week.key, channel.name)) if pub is not None
                          else 0 if edition.nothing_to_carry(store, week, channel.name)
                          else len(channel.plan(store, week)))
        return rep
    edition.before_render(store, week, channel.name, now)  # late papers to carry; what the edition holds
    units = [] if edition.nothing_to_carry(store, week, channel.name) else channel.plan(store, week)
    rendition = None
    if pub is None:
        rendition = channel.render(store, week)  # a broken template stops here, before anything is planned
        with store.atomic():  # the edition and the late papers it carries: planned together or not at all
            rep.planned = ledger.plan(store, week.source, week.key, channel.name, units, now)
            carried = edition.claim(store, week, channel.name)
        (log.info if rep.planned or week.late_of else log.warning)(
            "%s: planned %d%s", rep.label, rep.planned,
            f"; carries {carried} paper(s) added to earlier weeks" if carried else "")
    wanted = {u.key for u in units}
    for row in ledger.rows_in(store, week.source, week.key, channel.name, ("bounced",)):
        if row["unit"] in wanted:  # a run died between the ledger's bounce and the subscriber's
            channel.on_permanent(store, _unit(row), row["last_error"] or "bounced", now)
    if _open(ledger.counts(store, week.source, week.key, channel.name)):
        if rendition is None:
            rendition = channel.render(store, week)
        channel.prepare(rendition)
        writer = ledger.LedgerWriter(ledger.db_path(store), week.source, week.key, channel.name)
        stats = RunStats()
        ticker = progress or _LogProgress()

        def tick(s: RunStats) -> None:
            _apply_bounces(store, channel, s, now)
            ticker(rep.label, s)

        try:
            rep.stats = dispatch(channel, rendition, writer, wanted=wanted, limits=channel.limits,
                                 stats=stats, tick=tick)
        finally:
            writer.close()
            _apply_bounces(store, channel, stats, now)
        if rep.stats.stopped:
            log.error("%s: stopped early: %s; the rest is sent by the next publish run", rep.label,
                      rep.stats.stopped)
    rep.published = ledger.finish(store, week.source, week.key, channel.name, now)
    edition.after_send(store, week, channel.name)
    rep.counts = ledger.counts(store, week.source, week.key, channel.name)
    log.info("%s: %s", rep.label, "published" if rep.published else f"not finished: {rep.counts}")
    return rep


def _open(counts: dict[str, int]) -> int:
    return sum(counts.get(state, 0) for state in ledger.OPEN)


def _unit(row: dict) -> Unit:
    return Unit(key=row["unit"], ref=row["ref"], row_id=row["id"])


def publish_week(cfg: Config, store: Store, week: WeekRow, *, channels: Sequence[str] | None = None,
                 now: datetime | None = None, dry_run: bool = False,
                 progress: Progress | None = None) -> list[ChannelReport]:
    """Publish one ready week on `channels` (default: every enabled one); then maybe mark it published.

    Raises StorageError when a local write fails (disk full, read-only, no permission): the state database's
    transactions roll back whole, and the ledger marks nothing sent that was not, so a later run resumes."""
    try:
        return _publish_week(cfg, store, week, channels=channels, now=now, dry_run=dry_run, progress=progress)
    except StorageError:
        raise
    except sqlite3.OperationalError as e:  # disk full, I/O error, read-only: the main thread's own writes
        raise storage_error(e, "write the state database", cfg.db_path) from e
    except OSError as e:
        raise storage_error(e, "write", e.filename or cfg.state_dir) from e


def _publish_week(cfg: Config, store: Store, week: WeekRow, *, channels: Sequence[str] | None,
                  now: datetime | None, dry_run: bool, progress: Progress | None) -> list[ChannelReport]:
    now = now or datetime.now(UTC)
    names = list(channels or registry.enabled(cfg))
    reports = [publish_channel(cfg, store, week, registry.make(cfg, name), now=now, dry_run=dry_run,
                               progress=progress) for name in names]
    if not dry_run and week.state == "ready":
        pubs = ledger.publications(store, week.source, week.key)
        done = {p.channel for p in pubs if p.state == "published"}
        if all(name in done for name in registry.enabled(cfg)):
            store.upsert_week(week.source, week.key, state="published")
            log.info("%s:%s published on %s", week.source, week.key, ", ".join(sorted(done)))
    return reports


def publish_ready(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None,
                  progress: Progress | None = None) -> list[ChannelReport]:
    """Every ready week, oldest first, after looking for late papers (bot/publish/edition.py). The caller holds
    the publish lock."""
    late_round(cfg, store, now, channels=channels)
    out: list[ChannelReport] = []
    for week in ready_weeks(store):
        out += publish_week(cfg, store, week, channels=channels, now=now, progress=progress)
    return out


def late_round(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None) -> list[WeekRow]:
    """Find papers added to weeks that went out, and make an edition of those that waited `late_max_wait` for a
    new week in vain. The caller holds the publish lock."""
    return edition.late_round(store, list(channels or registry.enabled(cfg)), now, cfg.publish.late_max_wait)


def after_poll(cfg: Config, store: Store, now: datetime) -> None:
    """The daemon's hook: publish whatever became ready, unless `paperbot publish` is busy doing it.

    A full disk (or a read-only state folder) is logged in one line and the daemon goes on: what was not
    written stays open in the ledger, and the round after the next poll sends it."""
    if not ready_weeks(store) and not edition.has_work(store, registry.enabled(cfg), now, cfg.publish.late_max_wait):
        return
    try:
        fd = locks.acquire(lock_path(cfg))
    except locks.LockBusy as e:
        log.info("not publishing this round: %s", e)
        return
    except OSError as e:
        log.error("not publishing this round: %s; retrying after the next poll",
                  storage_error(e, "take the publish lock", lock_path(cfg)))
        return
    try:
        publish_ready(cfg, store, now)
    except StorageError as e:
        log.error("publishing stopped: %s; nothing unwritten is marked sent, and the rest is sent after the "
                  "next poll", e)
    finally:
        locks.release(fd)
