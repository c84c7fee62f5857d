"""The publishing pipeline shared by every channel: plan a ready week into the ledger, send what is open,
and mark the week published once every enabled channel is done.

Planning happens once per week and channel, in one transaction; every later run only sends what the ledger
says is still open, so publishing a week twice sends nothing twice. Only one process publishes at a time
(state_dir/publish.lock): the daemon's after-poll hook skips a round while `paperbot publish` runs.

A channel that is not live (email without smtp_url) runs a trial: its units go to the outbox and are recorded
as `trial`, the week stays ready, and later runs leave it alone until the channel is live. Then the newest
`[publish] backfill` weeks (at least one) of each source go out for real and older weeks that only ever had a
trial are skipped on that channel (`skip_old_trials`), so going live never floods readers with stale weeks.
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
from bot.channels import windows
from bot.channels.base import (
    Channel,
    PermanentError,
    RateLimited,
    StorageError,
    TransientError,
    Unit,
    storage_error,
)
from bot.config import Config
from bot.publish import approval, late, ledger
from bot.publish.chain import BUDGET_SPENT, budget_wait, send_chain
from bot.publish.dispatch import RunStats, dispatch
from bot.store import Store, WeekRow, iso

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
    trial: bool = False  # the channel is not live: units went (or would go) to the outbox only
    skipped: bool = False  # given up on this channel; `note` says why
    done: bool = False  # nothing is left to do on this channel: published, skipped, or its trial finished
    note: str | None = None

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
        pace = f", {s.done / (now - start):.1f} a second" if s.done and now - start >= 1 else ""
        log.info("%s: %d of %d done (%d sent, %d failed, %d bounced, %d skipped)%s", label, s.done,
                 s.total, s.sent, s.failed, s.bounced, s.skipped, pace)


def _apply_bounces(store: Store, channel: Channel, stats: RunStats, now: datetime) -> None:
    with stats.lock:
        bounces, stats.bounces = stats.bounces, []
    for unit, error in bounces:
        channel.on_permanent(store, unit, error, now)


def publish_channel(cfg: Config, store: Store, week: WeekRow, channel: Channel, *, now: datetime,
                    dry_run: bool = False, progress: Progress | None = None) -> ChannelReport:
    """Plan (once) and send (what is open) one week on one channel; on a channel that is not live, a trial."""
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
    replan = pub is not None and pub.trial and channel.live  # tried in the outbox; now it goes out for real
    if pub is not None and not pub.trial and not channel.live:  # never finish a real send in the outbox
        rep.counts = ledger.counts(store, week.source, week.key, channel.name)
        rep.note = (f"{_open(rep.counts)} unit(s) still to send for real, but {channel.name} is not live now: "
                    "they wait until it is")
        log.warning("%s: %s", rep.label, rep.note)
        return rep
    if dry_run:
        channel.render(store, week, dry=True)  # fails loudly on a broken template, writes nothing
        empty = late.nothing_to_carry(store, week, channel.name)
        rep.would_send = ((0 if empty else len(channel.plan(store, week))) if pub is None or replan
                          else _open(ledger.counts(store, week.source, week.key, channel.name)))
        return rep
    late.before_render(store, week, channel.name, now)  # late papers to carry; what the edition holds
    nothing = late.nothing_to_carry(store, week, channel.name)  # a late-only edition already empty
    units = [] if nothing else channel.plan(store, week)
    rendition = None
    if pub is None or replan:
        rendition = channel.render(store, week)  # a broken template stops here, before anything is planned
        notes = []
        if replan:
            notes.append(f"tried in the outbox on {_when(pub.planned_at)}; sent for real once {channel.name} was live")
        if channel.live and not units and not nothing:
            notes.append(f"published to nobody: there were no {channel.audience} when it was planned")
            log.warning("%s: published to nobody: there are no %s", rep.label, channel.audience)
        rep.note = "; ".join(notes) or None
        with store.atomic():  # the edition and the late papers it carries: planned together or not at all
            rep.planned = ledger.plan(store, week.source, week.key, channel.name, units, now, trial=not channel.live,
                                      note=rep.note)
            carried = late.claim(store, week, channel.name)
            if callable(getattr(channel, "edit", None)):  # the week as its messages will show it (corrections)
                _mark_shown(store, week.source, week.key, channel.name)
        (log.info if rep.planned or week.late_of else log.warning)(
            "%s: planned %d%s%s", rep.label, rep.planned, "" if channel.live else " (trial: to the outbox)",
            f"; carries {carried} paper(s) added to earlier weeks" if carried else "")
    wanted = {u.key for u in units}
    for row in ledger.rows_in(store, week.source, week.key, channel.name, ("bounced",)):
        if row["unit"] in wanted:  # a run died between the ledger's bounce and the subscriber's
            channel.on_permanent(store, _unit(row), row["last_error"] or "bounced", now)
    ordered = getattr(channel, "ordered", False)
    counts = ledger.counts(store, week.source, week.key, channel.name)
    if _open(counts) or ordered and any(counts[s] for s in ledger.WAITING):
        gate = _gate(store, channel, rep, now, counts)
        if gate is not False:
            if rendition is None:
                rendition = channel.render(store, week)
            channel.prepare(rendition)
            _send(store, week, channel, rendition, rep, wanted, progress, now, budget=gate)
    rep.done = ledger.finish(store, week.source, week.key, channel.name, now)
    rep.published = rep.done and channel.live
    late.after_send(store, week, channel.name)
    rep.counts = ledger.counts(store, week.source, week.key, channel.name)
    log.info("%s: %s", rep.label, ("not finished: " + describe(rep.counts)) if not rep.done
             else "published" if rep.published
             else f"trial done: {rep.counts['trial']} in the outbox, nothing sent; the week stays ready until "
                  f"{channel.name} is live")
    return rep


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
    if ready_weeks(store):
        tz = cfg.publish.timezone
        times += [windows.next_window(send_windows(cfg, name), tz, now) for name in registry.enabled(cfg)]
    return min((t for t in times if t is not None), default=None)


def describe(counts: dict[str, int]) -> str:
    """Ledger counts as words: "3 sent, 8 to send, 1 uncertain"."""
    words = {"planned": "to send", "sending": "in flight", "failed": "failed (sent again later)",
             "trial": "written to the outbox"}
    parts = [f"{n} {words.get(state, state)}" for state, n in counts.items() if n]
    return ", ".join(parts) or "nothing planned"


def _gate(store: Store, channel: Channel, rep: ChannelReport, now: datetime,
          counts: dict[str, int]) -> int | None | bool:
    """May the channel send now? False: not before its rate-limited-until (a 429's reset, the daily budget),
    with a note; otherwise how many units its daily budget lets out (None: no cap). A trial has no limits."""
    if not channel.live:
        return None
    held = ledger.channel_until(store, channel.name, now)
    if held is not None:
        rep.note = f"{channel.name} waits until {_when(iso(held[0]))}: {held[1]}"
        log.info("%s: nothing sent: %s", rep.label, rep.note)
        return False
    if not getattr(channel, "ordered", False):
        return None
    to_send = _open(counts) + sum(counts[s] for s in ledger.WAITING)
    budget, wait = budget_wait(store, channel.name, channel.limits, to_send=to_send, started=counts["sent"] > 0,
                               now=now)
    if budget == 0 and wait is not None:
        reason = (f"the daily budget of {channel.limits.daily_budget} units per 24 hours leaves too few for the "
                  f"{to_send} still to send")
        ledger.hold_channel(store, channel.name, wait, reason)
        rep.note = f"{channel.name} waits until {_when(iso(wait))}: {reason}"
        log.info("%s: %s", rep.label, rep.note)
        return False
    if budget is not None and to_send > channel.limits.daily_budget:
        log.warning("%s: %d units are more than the daily budget of %d: this chain goes on across days",
                    rep.label, to_send, channel.limits.daily_budget)
        rep.note = (f"{to_send} units are more than the daily budget of {channel.limits.daily_budget}: sent "
                    "across days")
        ledger.add_note(store, rep.source, rep.key, channel.name,  # for `paperbot history`, once
                        f"{sum(counts.values())} units, more than the daily budget of "
                        f"{channel.limits.daily_budget}: sent across days")
    return budget


def _send(store: Store, week: WeekRow, channel: Channel, rendition: object, rep: ChannelReport,
          wanted: set[str], progress: Progress | None, now: datetime, *, budget: int | None) -> None:
    """Send the open units: in parallel (email) or as an ordered chain (a thread on X)."""
    writer = ledger.LedgerWriter(ledger.db_path(store), week.source, week.key, channel.name,
                                 trial=not channel.live)
    stats = RunStats()
    ticker = progress or _LogProgress()

    def tick(s: RunStats) -> None:
        _apply_bounces(store, channel, s, now)
        ticker(rep.label + (" (trial: outbox)" if rep.trial else ""), s)

    try:
        if getattr(channel, "ordered", False):
            rep.stats = send_chain(channel, rendition, writer, limits=channel.limits, stats=stats, budget=budget,
                                   tick=tick)
        else:
            rep.stats = dispatch(channel, rendition, writer, wanted=wanted, limits=channel.limits,
                                 stats=stats, tick=tick)
    finally:
        writer.close()
        _apply_bounces(store, channel, stats, now)
    if rep.stats.stopped == BUDGET_SPENT:
        _, wait = budget_wait(store, channel.name, channel.limits, to_send=1, started=True, now=now)
        if wait is not None:
            ledger.hold_channel(store, channel.name, wait, BUDGET_SPENT)
        log.warning("%s: %s; the chain goes on at %s", rep.label, BUDGET_SPENT,
                    _when(iso(wait)) if wait else "the next run")
    elif rep.stats.stopped:
        log.error("%s: stopped early: %s; the rest is sent by the next publish run", rep.label,
                  rep.stats.stopped)
        rep.note = "; ".join(filter(None, [rep.note, f"stopped: {rep.stats.stopped}"]))


def _when(stamp: str) -> str:
    """A ledger time for a note: to the minute, in UTC."""
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(w: WeekRow) -> tuple:
    return (w.last_day or w.first_seen.date(), w.key)


def old_trials(cfg: Config, store: Store, channel: Channel, source: str) -> dict[str, str]:
    """Weeks of `source` to give up on `channel` now that it is live, each with the reason: those whose only
    publication there is a trial and which are not among the newest `[publish] backfill` weeks (at least one)
    still to send or sent for real. Reads only."""
    if not channel.live:
        return {}
    keep = max(1, cfg.publish.backfill)
    pubs = {p.week_key: p for p in ledger.publications(store, source) if p.channel == channel.name}

    def counts(w: WeekRow) -> bool:  # ready to go out here, or already sent for real here
        p = pubs.get(w.key)
        if p is None:
            return w.state == "ready"
        return p.state != "skipped" and (w.state == "ready" or not p.trial)

    ranked = sorted(filter(counts, store.weeks(source)), key=_age, reverse=True)
    newer = ", ".join(w.key for w in ranked[:keep])
    out = {}
    for w in ranked[keep:]:
        p = pubs.get(w.key)
        if p is not None and p.trial:
            out[w.key] = (f"skipped: only ever a trial (in the outbox on {_when(p.planned_at)}); when {channel.name} "
                          f"went live, newer weeks went out for real instead ({newer}; [publish] backfill = "
                          f"{cfg.publish.backfill} sends the newest {keep})")
    return out


def skip_old_trials(cfg: Config, store: Store, channel: Channel, source: str, now: datetime) -> dict[str, str]:
    """Skip on `channel` the weeks `old_trials` names, log each with why, and settle their state."""
    skipped = old_trials(cfg, store, channel, source)
    for key, note in skipped.items():
        ledger.skip(store, source, key, channel.name, note, now)
        log.warning("%s %s:%s %s", channel.name, source, key, note)
        _settle(cfg, store, source, key)
    return skipped


def _settle(cfg: Config, store: Store, source: str, key: str) -> None:
    """A ready week whose every enabled live channel is done becomes `published` (sent for real on one at
    least) or `skipped` (given up on all). A trial leaves it ready, unless another channel sent it for real."""
    week = store.week(source, key)
    if week is None or week.state != "ready":
        return
    pubs = {p.channel: p.state for p in ledger.publications(store, source, key)}
    names = registry.enabled(cfg)
    live = [name for name in names if registry.make(cfg, name).live]
    # A channel on trial (no credentials: the outbox) never holds a week that went out for real elsewhere;
    # with no live channel at all, the week stays ready until one is.
    names = live or names
    if not all(pubs.get(name) in ("published", "skipped") for name in names):
        return
    state = "published" if "published" in pubs.values() else "skipped"
    store.upsert_week(source, key, state=state)
    log.info("%s:%s %s (%s)", source, key, state, ", ".join(f"{n}: {pubs[n]}" for n in sorted(names)))


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
        _settle(cfg, store, week.source, week.key)
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


# -- corrections of weeks that went out ----------------------------------------------------------------------------
# A channel that can edit what it sent (Discord: `edit(store, week, message_ids, now)`) records, when it plans a
# week, the week as its messages show it: `channel_editions.shown`, the week's fingerprint (its papers' titles,
# summaries, links…) and title. The tracker updates both when the source corrects the week. A week published on
# the channel whose fingerprint or title no longer matches was corrected after it went out: the channel edits its
# messages to match (only when it `corrects`: Discord with `edit_on_correction` and credentials), and `shown`
# moves on, so each correction is handled once and a poll that changes nothing costs one query, no request.
# (Times would not do: a git source's change carries its commit date, which may be before the week went out even
# when the poll that found it came after.)
_NOW_SHOWN = "SELECT fingerprint || ' ' || title FROM weeks WHERE source = ? AND key = ?"


def _mark_shown(store: Store, source: str, key: str, channel: str) -> None:
    with store.atomic():
        store.db.execute(f"UPDATE channel_editions SET shown = ({_NOW_SHOWN}) WHERE source = ? AND week_key = ? "
                         "AND channel = ?", [source, key, source, key, channel])


def corrected(store: Store, channels: Sequence[str]) -> list[tuple[str, str, str]]:
    """(channel, source, week key) of each week published for real on one of `channels` that the source corrected
    since its messages were made to show it. Reads only; one query."""
    if not channels:
        return []
    marks = ", ".join("?" * len(channels))
    rows = store.db.execute(
        "SELECT e.channel, e.source, e.week_key FROM channel_editions e "
        "JOIN publications p ON p.source = e.source AND p.week_key = e.week_key AND p.channel = e.channel "
        "JOIN weeks w ON w.source = e.source AND w.key = e.week_key "
        f"WHERE e.channel IN ({marks}) AND e.shown IS NOT NULL AND p.state = 'published' AND p.trial = 0 "
        "AND e.shown IS NOT (w.fingerprint || ' ' || w.title) ORDER BY p.published_at, e.source, e.week_key",
        list(channels)).fetchall()
    return [(c, s, k) for c, s, k in rows]


def correction_round(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None) -> int:
    """Edit the messages of weeks corrected after they went out, on each live channel that can (see above).
    Returns the number of weeks handled. A rate limit is recorded on the channel and ends its round; a transient
    failure leaves the week for the next round; a refusal (a message or webhook deleted) is logged and not tried
    again for that correction. The caller holds the publish lock."""
    handled = 0
    names = list(channels or registry.enabled(cfg))
    for name in {c for c, _, _ in corrected(store, names)}:
        channel = registry.make(cfg, name)
        edit = getattr(channel, "edit", None)
        held = ledger.channel_until(store, name)
        if not callable(edit) or not channel.live or held is not None and held[0] > now:
            continue  # corrected later, once the channel is live again or may send
        for _, source, key in corrected(store, [name]):
            week = store.week(source, key)
            if week is None:
                continue
            label = f"{name} {source}:{key}"
            if getattr(channel, "corrects", False):
                ids = [r["remote_id"] for r in ledger.rows_in(store, source, key, name, ("sent",))]
                try:
                    edits = edit(store, week, ids, now)
                except RateLimited as e:
                    ledger.hold_channel(store, name, e.until, str(e))
                    log.warning("%s: corrected in the source; its messages are edited after %s: %s", label,
                                _when(iso(e.until)), e)
                    break
                except TransientError as e:
                    log.warning("%s: corrected in the source, but editing its messages failed (%s); tried again "
                                "at the next round", label, e)
                    continue
                except PermanentError as e:
                    log.error("%s: corrected in the source, but its messages cannot be edited: %s; this correction "
                              "is left as it is", label, e)
                else:
                    log.info("%s: corrected in the source: %s", label,
                             f"{len(edits)} message(s) edited" if edits else "no message shows what changed")
            else:
                log.info("%s: corrected in the source; its messages are left as they are (the channel is not set "
                         "to edit them)", label)
            _mark_shown(store, source, key, name)
            handled += 1
    return handled


def late_round(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None) -> list[WeekRow]:
    """Find papers added to weeks that went out, and make an edition of those that waited `late_max_wait` for a
    new week in vain. The caller holds the publish lock."""
    return late.late_round(store, list(channels or registry.enabled(cfg)), now, cfg.publish.late_max_wait)


def after_poll(cfg: Config, store: Store, now: datetime) -> None:
    """The daemon's hook: publish whatever became ready, unless `paperbot publish` is busy doing it.

    A full disk (or a read-only state folder) is logged in one line and the daemon goes on: what was not
    written stays open in the ledger, and the round after the next poll sends it."""
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
        publish_ready(cfg, store, now)
    except StorageError as e:
        log.error("publishing stopped: %s; nothing unwritten is marked sent, and the rest is sent after the "
                  "next poll", e)
    finally:
        locks.release(fd)
