"""The publishing pipeline shared by every channel: plan a ready week into the ledger, send what is open,
and mark the week published once every enabled channel is done.

Planning happens once per week and channel, in one transaction; every later run only sends what the ledger
says is still open, so publishing a week twice sends nothing twice. Only one process publishes at a time
(state_dir/publish.lock): the daemon's after-poll hook skips a round while `paperbot publish` runs.

A channel that is not live (email without smtp_url) runs a trial: its units go to the outbox and are recorded
as `trial`, the week stays ready, and later runs leave it alone until the channel is live. Then the newest
`[publish] backfill` weeks (at least one) of each source go out for real and older weeks that only ever had a
trial are skipped on that channel (bot/publish/trials.py), so going live never floods readers with stale weeks.
Planning is here; sending the open units is bot/publish/sending.py; the report of a run is report.py; the round of
corrections after the sending is corrections.py.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import channels as registry
from bot import locks
from bot.channels import windows
from bot.channels.base import (
    Channel,
    StorageError,
    Unit,
    storage_error,
)
from bot.config import Config
from bot.publish import approval, cap, first, late, ledger
from bot.publish.corrections import corrected, correction_round, mark_shown
from bot.publish.dispatch import Wanted
from bot.publish.report import ChannelReport, Progress, Stopping, StopWhen, describe, open_units, when
from bot.publish.sending import may_send, send_units, unit_of
from bot.publish.trials import old_trials, settle, skip_old_trials
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)


LOCK_FILE = "publish.lock"


def lock_path(cfg: Config) -> Path:
    return cfg.state_dir / LOCK_FILE


def ready_weeks(store: Store) -> list[WeekRow]:
    """Ready weeks, oldest first (the order they were released in)."""
    weeks = store.weeks(state="ready")
    weeks.sort(key=lambda w: (w.last_day or w.first_seen.date(), w.key, w.source))
    return weeks


def publish_channel(cfg: Config, store: Store, week: WeekRow, channel: Channel, *, now: datetime,
                    dry_run: bool = False, progress: Progress | None = None) -> ChannelReport:
    """Plan (once) and send (what is open) one week on one channel; on a channel that is not live, a trial."""
    started = time.monotonic()
    rep = ChannelReport(week.source, week.key, channel.name, dry_run=dry_run, trial=not channel.live)
    pub = ledger.publication(store, week.source, week.key, channel.name)
    if pub is not None and (pub.state in ("published", "skipped") or pub.state == "trial" and not channel.live):
        rep.already = rep.done = True  # published, given up, or tried already (a trial is not tried again)
        rep.published, rep.skipped, rep.note = pub.state == "published", pub.state == "skipped", pub.note
        rep.counts = ledger.counts(store, week.source, week.key, channel.name)
        return rep
    if not dry_run and (pub is None or pub.trial) and (wait := _window_wait(cfg, channel, week, now)):
        rep.note = wait
        log.info("%s: %s", rep.label, wait)
        return rep
    if not dry_run and channel.live and (pub is None or pub.trial) and (
            until := cap.wait(cfg, store, week, channel.name, now)):
        rep.note = cap.note(cfg, week.source, channel.name, until)  # issue #21: never a flood, whatever is ready
        log.info("%s: %s", rep.label, rep.note)  # every round while it waits; the alert says it once
        return rep
    if not dry_run and channel.live and (pub is None or pub.trial) and (
            held := first.before_plan(cfg, store, week, channel, now)):
        rep.note, rep.done = held  # issue #25: nobody to send to yet, or an older week the first subscriber skips
        rep.skipped, rep.waits = rep.done, not rep.done
        return rep
    replan = pub is not None and pub.trial and channel.live  # tried in the outbox; now it goes out for real
    if pub is not None and not pub.trial and not channel.live:  # never finish a real send in the outbox
        rep.counts = ledger.counts(store, week.source, week.key, channel.name)
        rep.note = (f"{open_units(rep.counts)} unit(s) still to send for real, but {channel.name} is not live now: "
                    "they wait until it is")
        log.warning("%s: %s", rep.label, rep.note)
        return rep
    if dry_run:
        channel.render(store, week, dry=True)  # fails loudly on a broken template, writes nothing
        empty = late.nothing_to_carry(store, week, channel.name)
        rep.would_send = ((0 if empty else len(channel.plan(store, week))) if pub is None or replan
                          else open_units(ledger.counts(store, week.source, week.key, channel.name)))
        return rep
    late.before_render(store, week, channel.name, now)  # late papers to carry; what the edition holds
    nothing = late.nothing_to_carry(store, week, channel.name)  # a late-only edition already empty
    units = [] if nothing else channel.plan(store, week)
    rendition = None
    if pub is None or replan:
        rendition = channel.render(store, week)  # a broken template stops here, before anything is planned
        notes = []
        if replan:
            notes.append(f"tried in the outbox on {when(pub.planned_at)}; sent for real once {channel.name} was live")
        if channel.live and not units and not nothing:
            notes.append(f"published to nobody: there were no {channel.audience} when it was planned")
            log.warning("%s: published to nobody: there are no %s", rep.label, channel.audience)
        rep.note = "; ".join(notes) or None
        with store.atomic():  # the edition and the late papers it carries: planned together or not at all
            rep.planned = ledger.plan(store, week.source, week.key, channel.name, units, now, trial=not channel.live,
                                      note=rep.note)
            carried = late.claim(store, week, channel.name)
            if callable(getattr(channel, "edit", None)):  # the week as its messages will show it (corrections)
                mark_shown(store, week.source, week.key, channel.name)
        (log.info if rep.planned or week.late_of else log.warning)(
            "%s: planned %d%s%s", rep.label, rep.planned, "" if channel.live else " (trial: to the outbox)",
            f"; carries {carried} paper(s) added to earlier weeks" if carried else "")
    wanted = still_wanted(units)
    bounced = ledger.rows_in(store, week.source, week.key, channel.name, ("bounced",))
    keep = wanted([row["unit"] for row in bounced]) if bounced else set()
    for row in bounced:
        if row["unit"] in keep:  # a run died between the ledger's bounce and the subscriber's
            channel.on_permanent(store, unit_of(row), row["last_error"] or "bounced", now)
    ordered = getattr(channel, "ordered", False)
    counts = ledger.counts(store, week.source, week.key, channel.name)
    if open_units(counts) or ordered and any(counts[s] for s in ledger.WAITING):
        budget = may_send(store, channel, rep, now, counts)
        if budget is not False:
            if rendition is None:
                rendition = channel.render(store, week)
            channel.prepare(rendition)
            send_units(store, week, channel, rendition, rep, wanted, progress, now, budget=budget)
    if channel.live and not ordered and not nothing and not (rep.stats and rep.stats.stopped):
        extra = channel.plan(store, week)  # issue #24: readers who confirmed while the week went out get it too
        if added := ledger.top_up(store, week.source, week.key, channel.name, extra, now):
            log.info("%s: %d reader(s) joined while it was being sent; they get it too", rep.label, added)
            counts = ledger.counts(store, week.source, week.key, channel.name)
            if (budget := may_send(store, channel, rep, now, counts)) is not False:
                if rendition is None:
                    rendition = channel.render(store, week)
                    channel.prepare(rendition)
                first_round = rep.stats
                send_units(store, week, channel, rendition, rep, still_wanted(extra), progress, now,
                           budget=budget)
                if first_round is not None and rep.stats is not None:  # one run's figures: both rounds together
                    for name in ("total", "sent", "failed", "bounced", "skipped", "retries", "duplicates"):
                        setattr(rep.stats, name, getattr(first_round, name) + getattr(rep.stats, name))
    finished = now + timedelta(seconds=int(time.monotonic() - started))  # issue #25 (13b): when the send ended
    rep.done = ledger.finish(store, week.source, week.key, channel.name, finished)
    rep.published = rep.done and channel.live
    late.after_send(store, week, channel.name)
    rep.counts = ledger.counts(store, week.source, week.key, channel.name)
    log.info("%s: %s", rep.label, ("not finished: " + describe(rep.counts)) if not rep.done
             else "published" if rep.published
             else f"trial done: {rep.counts['trial']} in the outbox, nothing sent; the week stays ready until "
                  f"{channel.name} is live")
    return rep


def still_wanted(units: Sequence[Unit]) -> Wanted:
    """Which unit keys are still wanted, asked while sending: the channel's own answer when its plan has one (the
    email roster asks the database, issue #27), else the keys planned now."""
    if callable(ask := getattr(units, "wanted", None)):
        return ask
    keys = {u.key for u in units}
    return lambda _: keys


def send_windows(cfg: Config, name: str) -> tuple:
    """The channel's `send_at` windows (`[email] send_at`, `[x] send_at`…); () when it sends as soon as ready."""
    return getattr(getattr(cfg, name, None), "send_at", ())


def _window_wait(cfg: Config, channel: Channel, week: WeekRow, now: datetime) -> str | None:
    """Why a live channel must not start this week yet (its send window has not come since the week became
    ready), or None."""
    found = send_windows(cfg, channel.name)
    tz = cfg.publish.timezone
    if not channel.live or windows.may_send(found, tz, week.ready_at, now):
        return None
    at = windows.next_window(found, tz, now)
    return (f"waits for its send window ({', '.join(map(str, found))}, {tz.key}): next at "
            f"{at.isoformat(timespec='minutes') if at else '?'}")


def next_due(cfg: Config, store: Store, now: datetime) -> datetime | None:
    """When publishing has something to do next without a poll: a channel's rate-limited-until ends, or a
    send window opens for a week that waits for it. The daemon schedules one job at that instant."""
    times = [ledger.next_wake(store, now)]
    if ready := ready_weeks(store):
        tz = cfg.publish.timezone
        times += [windows.next_window(send_windows(cfg, name), tz, now) for name in registry.enabled(cfg)]
        times += [t for found in cap.waiting(cfg, store, ready, now).values() for t in found.values()]
    return min((t for t in times if t is not None), default=None)


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
    reports = []
    for name in names:
        channel = registry.make(cfg, name)
        if dry_run and (note := old_trials(cfg, store, channel, week.source).get(week.key)):
            reports.append(ChannelReport(week.source, week.key, name, dry_run=True, skipped=True,
                                         note="would be " + note))
            continue
        if not dry_run:
            skip_old_trials(cfg, store, channel, week.source, now)
        reports.append(publish_channel(cfg, store, week, channel, now=now, dry_run=dry_run, progress=progress))
    if not dry_run:
        settle(cfg, store, week.source, week.key)
    return reports


def publish_ready(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None,
                  progress: Progress | None = None) -> list[ChannelReport]:
    """Every ready week, oldest first, after looking for late papers (bot/publish/late.py); then the
    corrections of weeks that went out (`correction_round`). The caller holds the publish lock."""
    late_round(cfg, store, now, channels=channels)
    approval.hold(cfg, store, now)  # with [publish] approve: ready weeks wait for the editor
    out: list[ChannelReport] = []
    for week in ready_weeks(store):
        out += publish_week(cfg, store, week, channels=channels, now=now, progress=progress)
    correction_round(cfg, store, now, channels=channels)
    return out


def late_round(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None) -> list[WeekRow]:
    """Find papers added to weeks that went out, and make an edition of those that waited `late_max_wait` for a
    new week in vain. The caller holds the publish lock."""
    return late.late_round(store, list(channels or registry.enabled(cfg)), now, cfg.publish.late_max_wait)


def after_poll_until(stop: threading.Event) -> Callable[[Config, Store, datetime], None]:
    """`after_poll` whose sending ends once `stop` is set (the daemon's SIGTERM): the daemon's hook."""
    def after_poll_until_stopped(cfg: Config, store: Store, now: datetime) -> None:
        after_poll(cfg, store, now, stop=stop)

    return after_poll_until_stopped


def after_poll(cfg: Config, store: Store, now: datetime, *, stop: threading.Event | None = None) -> None:
    """The daemon's hook: publish whatever became ready, unless `paperbot publish` is busy doing it.

    A full disk (or a read-only state folder) is logged in one line and the daemon goes on: what was not
    written stays open in the ledger, and the round after the next poll sends it. Once `stop` is set (SIGTERM)
    the sending ends after the units in flight, each recorded as it ended."""
    names = registry.enabled(cfg)
    if (not ready_weeks(store) and not late.has_work(store, names, now, cfg.publish.late_max_wait)
            and not corrected(store, names)):
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
        publish_ready(cfg, store, now, progress=StopWhen(stop) if stop is not None else None)
    except Stopping as e:
        log.info("publishing stopped: %s", e)
    except StorageError as e:
        log.error("publishing stopped: %s; nothing unwritten is marked sent, and the rest is sent after the "
                  "next poll", e)
    finally:
        locks.release(fd)
