"""Send an ordered channel's publication as a chain (a thread on X): one unit at a time, in plan order, each
given the remote ids of the units before it, and a failure stops the chain instead of skipping ahead.

The outcomes of a send (bot/channels/base.py):
- sent: its remote id is committed before the next unit is sent, so a resumed chain replies to the last one;
- TransientError (nothing went out): retried with backoff up to `max_attempts`, then `failed` and the chain stops;
- RateLimited: `failed`, the channel's rate-limited-until is committed (every process honours it), chain stops;
- Uncertain (it may have gone out): never resent blindly. The row is `uncertain`; the sender reconciles (reads
  back what the account posted); found: its id is recorded and the chain goes on; certainly missing: sent
  again after the backoff; cannot tell: the row stays `uncertain` and the chain waits for a later run or
  `paperbot resolve`. A sender that cannot read back at all (`reads_back` False: a Discord webhook alone) sends
  it again, and the row is marked a possible duplicate (issue #21: `publish`, `history` and an alert say so);
  Refused as a duplicate yet not found: `refused` (the remote side refuses that text for good), for the operator;
  A row found `sending` at the start of a run (a kill mid-send) is reconciled the same way;
- PermanentError: `refused`, the chain stops and waits for the operator (never a loop, never a blind retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.channels.base import (
    Channel,
    ChannelLimits,
    PermanentError,
    RateLimited,
    StorageError,
    TransientError,
    Uncertain,
    Unit,
)
from bot.publish import ledger
from bot.publish.dispatch import RunStats
from bot.publish.ledger import LedgerWriter
from bot.store import Store

log = logging.getLogger(__name__)
DAY = timedelta(hours=24)
BUDGET_SPENT = "the daily budget is spent"


class _Stop(Exception):
    """The chain stops here; the message says why (for the log and the report)."""


class _Chain:
    def __init__(self, channel: Channel, sender: Any, writer: LedgerWriter, limits: ChannelLimits,
                 stats: RunStats, budget: int | None, sleep: Callable[[float], None]):
        self.channel, self.sender, self.writer, self.limits = channel, sender, writer, limits
        self.stats, self.budget, self.sleep = stats, budget, sleep
        self.last_send: float | None = None

    def label(self, n: int, unit: Unit) -> str:
        return f"{self.channel.name} unit {n} ({unit.key})"

    def reconcile(self, n: int, unit: Unit, resend_if_missing: bool = True) -> str | None:
        """The unit's remote id if it went out; None if it certainly did not. _Stop if nobody can tell."""
        try:
            found = self.sender.reconcile(unit)
        except RateLimited as e:
            self.writer.ended(unit.row_id, "uncertain", f"may have gone out; could not check: {e}")
            self.writer.channel_until(e.until, str(e))
            raise _Stop(f"{self.label(n, unit)} may have gone out and could not be checked: {e}") from e
        except TransientError as e:
            self.writer.ended(unit.row_id, "uncertain", f"may have gone out; could not check: {e}")
            raise _Stop(f"{self.label(n, unit)} may have gone out and could not be checked ({e}); a later run "
                        f"checks again, or settle it: paperbot resolve WEEK --channel {self.channel.name} "
                        f"--unit {n} (--posted ID | --retry)") from e
        if found:
            self.writer.sent(unit.row_id, found)
            self.stats.add("sent")
            if self.budget is not None:
                self.budget -= 1  # X made it: one of the day's posts, like one sent now
            log.info("%s: found already delivered as %s; not sent again", self.label(n, unit), found)
            return found
        if resend_if_missing and not getattr(self.sender, "reads_back", lambda u: True)(unit):
            why = (f"may have gone out, and {self.channel.name} could not be read back: sent again, so it may show "
                   "twice")
            self.writer.possible_duplicate(unit.row_id, why)
            self.stats.add("duplicates")
            log.warning("%s: %s", self.label(n, unit), why)
            return None
        if not resend_if_missing:  # refused for good (it would be again): a later run must not resend it either
            self.writer.ended(unit.row_id, "refused", "refused as a duplicate: the remote side says it has this "
                              "already, but it is not among the account's recent posts")
            raise _Stop(f"{self.label(n, unit)}: refused as a duplicate, yet not found; settle it: paperbot resolve "
                        f"WEEK --channel {self.channel.name} --unit {n} (--posted ID | --retry)")
        log.info("%s: not delivered after all; sending it", self.label(n, unit))
        return None

    def send(self, n: int, unit: Unit) -> str:
        """Send one unit until it is delivered; _Stop when the chain must stop."""
        tries = 0
        while True:
            if self.budget is not None and self.budget <= 0:
                raise _Stop(BUDGET_SPENT)
            if self.last_send is not None and self.limits.delay > 0:
                self.sleep(max(0.0, self.limits.delay - (time.monotonic() - self.last_send)))
            tries += 1
            self.writer.sending(unit.row_id)
            self.last_send = time.monotonic()
            try:
                remote_id = self.sender.send(unit)
            except RateLimited as e:
                self.writer.ended(unit.row_id, "failed", str(e))
                self.writer.channel_until(e.until, str(e))
                raise _Stop(f"{self.label(n, unit)}: {e}") from e
            except TransientError as e:  # nothing went out
                self.writer.ended(unit.row_id, "failed", str(e))
                if tries >= self.limits.max_attempts:
                    raise _Stop(f"{self.label(n, unit)}: {e} (gave up after {tries} tries this run)") from e
                self.stats.add("retries")
                self.sleep(min(self.limits.backoff_max, self.limits.backoff * 2 ** (tries - 1)))
                continue
            except Uncertain as e:
                self.writer.ended(unit.row_id, "uncertain", str(e))
                log.warning("%s: %s; checking whether it went out", self.label(n, unit), e)
                found = self.reconcile(n, unit, e.resend_if_missing)
                if found:
                    return found
                if tries >= self.limits.max_attempts:
                    raise _Stop(f"{self.label(n, unit)}: {e} (gave up after {tries} tries this run)") from e
                self.stats.add("retries")
                self.sleep(min(self.limits.backoff_max, self.limits.backoff * 2 ** (tries - 1)))
                continue
            except PermanentError as e:
                self.writer.ended(unit.row_id, "refused", str(e))
                raise _Stop(f"{self.label(n, unit)} refused: {e}; the chain waits for the operator: paperbot "
                            f"resolve WEEK --channel {self.channel.name} --unit {n} (--posted ID | --retry)") from e
            except StorageError:
                self.writer.ended_if_possible(unit.row_id, "failed", "the ledger could not be written")
                raise
            self.writer.sent(unit.row_id, remote_id)
            self.stats.add("sent")
            if self.budget is not None:
                self.budget -= 1
            return remote_id

    def run(self, rows: list[tuple[int, str, str | None, str, str | None]],
            tick: Callable[[RunStats], None] | None) -> None:
        prior: list[str] = []
        for n, (row_id, key, ref, state, remote_id) in enumerate(rows, start=1):
            if state in ("sent", "trial"):
                prior.append(remote_id or "")
                continue
            if state in ("skipped", "bounced"):
                continue
            unit = Unit(key=key, ref=ref, row_id=row_id, prior=tuple(prior))
            if state == "refused":
                raise _Stop(f"{self.label(n, unit)} was refused; the chain waits for the operator: paperbot "
                            f"resolve WEEK --channel {self.channel.name} --unit {n} (--posted ID | --retry)")
            found = self.reconcile(n, unit) if state in ("sending", "uncertain") else None
            prior.append(found or self.send(n, unit))
            if tick:
                tick(self.stats)


def send_chain(channel: Channel, rendition: Any, writer: LedgerWriter, *, limits: ChannelLimits, stats: RunStats,
               budget: int | None = None, tick: Callable[[RunStats], None] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> RunStats:
    """Send what is left of the writer's publication in order; `budget` caps the units sent (None: no cap).
    `stats.stopped` says why it ended early; StorageError is raised as by `dispatch`."""
    rows = writer.chain()
    stats.total = sum(1 for r in rows if r[3] in (*ledger.OPEN, *ledger.WAITING))
    try:
        sender = channel.open_sender(rendition)
    except TransientError as e:
        stats.stopped = str(e)
        return stats
    chain = _Chain(channel, sender, writer, limits, stats, budget, sleep)
    try:
        chain.run(rows, tick)
    except _Stop as e:
        stats.stopped = str(e)
        if str(e) != BUDGET_SPENT:
            stats.add("failed")
    finally:
        sender.close()
        if tick:
            tick(stats)
    return stats


def budget_wait(store: Store, channel: str, limits: ChannelLimits, *, to_send: int, started: bool,
                now: datetime) -> tuple[int | None, datetime | None]:
    """(units that may go out now, when to come back if the chain must wait) under `limits.daily_budget`,
    counted from the ledger over the rolling 24 hours before `now`, so it holds across restarts.

    A chain starts only when all of it fits in what is left, so it never stops half way for budget; one longer
    than the whole budget starts when the budget is full and goes on across days. A started chain goes on
    with what is left."""
    if not limits.daily_budget:
        return None, None
    times = ledger.sent_times(store, channel, now - DAY)
    left = limits.daily_budget - len(times)
    if started or to_send <= left or (to_send > limits.daily_budget and not times):
        return max(0, left), (times[0] + DAY if left <= 0 else None)
    if to_send > limits.daily_budget:
        return 0, times[-1] + DAY  # when the whole budget is free again
    return 0, times[to_send - left - 1] + DAY  # when enough of the window's sends have aged out
