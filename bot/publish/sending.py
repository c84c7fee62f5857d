"""Sending a planned week on one channel: whether the channel may send now (its rate-limited-until, an ordered
channel's daily budget) and the send of its open units, in parallel (email, bot/publish/dispatch.py) or as an
ordered chain (a thread on X, bot/publish/chain.py); bounces handed to the channel as they come."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.channels.base import (
    Channel,
    Unit,
)
from bot.publish import ledger
from bot.publish.chain import BUDGET_SPENT, budget_wait, send_chain
from bot.publish.dispatch import RunStats, Wanted, dispatch
from bot.publish.report import TRIAL_MARK, ChannelReport, LogProgress, Progress, open_units, when
from bot.store import Store, WeekRow, iso

log = logging.getLogger(__name__)


def apply_bounces(store: Store, channel: Channel, stats: RunStats, now: datetime) -> None:
    with stats.lock:
        bounces, stats.bounces = stats.bounces, []
    for unit, error in bounces:
        channel.on_permanent(store, unit, error, now)


def may_send(store: Store, channel: Channel, rep: ChannelReport, now: datetime,
          counts: dict[str, int]) -> int | None | bool:
    """May the channel send now? False: not before its rate-limited-until (a 429's reset, the daily budget),
    with a note; otherwise how many units its daily budget lets out (None: no cap). A trial has no limits."""
    if not channel.live:
        return None
    held = ledger.channel_until(store, channel.name, now)
    if held is not None:
        rep.note = f"{channel.name} waits until {when(iso(held[0]))}: {held[1]}"
        log.info("%s: nothing sent: %s", rep.label, rep.note)
        return False
    if not getattr(channel, "ordered", False):
        return None
    to_send = open_units(counts) + sum(counts[s] for s in ledger.WAITING)
    budget, wait = budget_wait(store, channel.name, channel.limits, to_send=to_send, started=counts["sent"] > 0,
                               now=now)
    if budget == 0 and wait is not None:
        reason = (f"the daily budget of {channel.limits.daily_budget} units per 24 hours leaves too few for the "
                  f"{to_send} still to send")
        ledger.hold_channel(store, channel.name, wait, reason)
        rep.note = f"{channel.name} waits until {when(iso(wait))}: {reason}"
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


def send_units(store: Store, week: WeekRow, channel: Channel, rendition: object, rep: ChannelReport,
          wanted: Wanted, progress: Progress | None, now: datetime, *, budget: int | None) -> None:
    """Send the open units: in parallel (email) or as an ordered chain (a thread on X)."""
    writer = ledger.LedgerWriter(ledger.db_path(store), week.source, week.key, channel.name,
                                 trial=not channel.live)
    stats = RunStats()
    ticker = progress or LogProgress()

    def tick(s: RunStats) -> None:
        apply_bounces(store, channel, s, now)
        ticker(rep.label + (TRIAL_MARK if rep.trial else ""), s)

    try:
        if getattr(channel, "ordered", False):
            rep.stats = send_chain(channel, rendition, writer, limits=channel.limits, stats=stats, budget=budget,
                                   tick=tick)
        else:
            rep.stats = dispatch(channel, rendition, writer, wanted=wanted, limits=channel.limits,
                                 stats=stats, tick=tick)
    finally:
        writer.close()
        apply_bounces(store, channel, stats, now)
    if rep.stats.stopped == BUDGET_SPENT:
        _, wait = budget_wait(store, channel.name, channel.limits, to_send=1, started=True, now=now)
        if wait is not None:
            ledger.hold_channel(store, channel.name, wait, BUDGET_SPENT)
        log.warning("%s: %s; the chain goes on at %s", rep.label, BUDGET_SPENT,
                    when(iso(wait)) if wait else "the next run")
    elif rep.stats.stopped:
        log.error("%s: stopped early: %s; the rest is sent by the next publish run", rep.label,
                  rep.stats.stopped)
        rep.note = "; ".join(filter(None, [rep.note, f"stopped: {rep.stats.stopped}"]))


def unit_of(row: dict) -> Unit:
    return Unit(key=row["unit"], ref=row["ref"], row_id=row["id"])
