"""Send a planned publication's open rows: worker threads, retries with backoff, a shared rate, the ledger.

Each worker holds one sender (one reused connection) and takes its units in batches of at most `limits.batch`
(`[email] batch`; 1 for the other channels): it commits the whole batch `sending`, sends its units one by one,
and commits those delivered `sent` together at the end (issue #27: a commit per message was the ledger's cost).
So every message's row is `sending` before its data goes out, at most `connections` batches are `sending` at
any instant, and those, and only those, may be delivered again after a kill. Units of a batch whose turn never
came when the run stops go back to what they were (they did not go out). A failure is committed at once.
Transient failures wait in a retry heap (backoff doubling from
`limits.backoff`) and are tried at most `limits.max_attempts` times per run; then the row stays `failed`
for the next run. A unit that may have gone out (`Uncertain`: an email whose data the server may have taken
before the connection dropped) or was in flight when a run died is sent again the same way, and its row is
marked a possible duplicate (issue #21). Consecutive ChannelDown errors stop the run early, leaving the
rest for later. A StorageError (the outbox or the ledger cannot be written: a full disk) stops it at once
and is raised to the caller once every worker has stopped; the unit it hit is left open (`failed`, or
`sending` if even that mark could not be written), never `sent`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.channels.base import (
    Channel,
    ChannelDown,
    ChannelLimits,
    PermanentError,
    StorageError,
    TransientError,
    Uncertain,
    Unit,
)
from bot.publish.ledger import LedgerWriter
from bot.publish.ratelimit import TokenBucket
from bot.store import iso

log = logging.getLogger(__name__)
PAGE = 500
Wanted = Callable[[list[str]], Container[str]]  # of these unit keys, those still wanted (asked per batch)


@dataclass(frozen=True)
class _Item:
    unit: Unit
    tries: int  # this run's earlier tries
    before: str  # the row's state before this run marked it `sending`: what it goes back to if never tried


@dataclass
class RunStats:
    total: int = 0  # rows open when the run started
    sent: int = 0
    failed: int = 0  # gave up for this run
    bounced: int = 0
    skipped: int = 0
    retries: int = 0
    duplicates: int = 0  # units sent again that may have gone out already (issue #21): they may show twice
    stopped: str | None = None  # why the run ended early, if it did
    bounces: list[tuple[Unit, str]] = field(default_factory=list)  # for the main thread to act on
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.bounced + self.skipped

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class _Feed:
    """Hands out batches of units: due retries first, then the ledger's open rows page by page, in id order."""

    def __init__(self, writer: LedgerWriter):
        self._writer = writer
        self._cond = threading.Condition()
        self._page: deque[_Item] = deque()
        self._after = 0
        self._exhausted = False
        self._retries: list[tuple[float, int, Unit, int]] = []
        self._seq = itertools.count()
        self._busy = 0
        self.stopped: str | None = None

    def _fill(self) -> None:
        rows = self._writer.open_page(self._after, PAGE)
        self._exhausted = not rows
        if rows:
            self._after = rows[-1][0]
            self._page.extend(_Item(Unit(key=u, ref=r, row_id=i), 0, "failed" if st == "failed" else "planned")
                              for i, u, r, st in rows)

    def take(self, most: int) -> list[_Item] | None:
        """Up to `most` units for one worker; None when nothing is left (or the run stopped)."""
        with self._cond:
            while True:
                if self.stopped:
                    return None
                now = time.monotonic()
                out: list[_Item] = []
                while self._retries and self._retries[0][0] <= now and len(out) < most:
                    _, _, unit, tries = heapq.heappop(self._retries)
                    out.append(_Item(unit, tries, "failed"))
                while len(out) < most:
                    if not self._page and not self._exhausted:
                        self._fill()
                    if not self._page:
                        break
                    out.append(self._page.popleft())
                if out:
                    self._busy += 1
                    return out
                if self._retries:
                    self._cond.wait(self._retries[0][0] - now)
                elif self._busy:
                    self._cond.wait()
                else:
                    return None

    def retry(self, unit: Unit, tries: int, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._seq), unit, tries))

    def release(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def stop(self, reason: str) -> None:
        with self._cond:
            self.stopped = self.stopped or reason
            self._cond.notify_all()


class _Run:
    def __init__(self, channel: Channel, rendition: Any, writer: LedgerWriter, wanted: Wanted | None,
                 limits: ChannelLimits, stats: RunStats):
        self.channel, self.rendition, self.writer, self.wanted = channel, rendition, writer, wanted
        self.limits, self.stats = limits, stats
        self.feed = _Feed(writer)
        self.bucket = TokenBucket(limits.rate)
        self.down = 0  # consecutive ChannelDown errors, all workers together
        self.crash: BaseException | None = None
        self.storage: StorageError | None = None  # the first local write that failed
        # Units per batch: at most `limits.batch`, and no more than an even share of the open rows per connection
        # (a short list still uses every connection).
        self.chunk = max(1, min(limits.batch, -(-stats.total // max(1, limits.connections))))
        # Workers still running. Not Thread.is_alive(): a join() cut by Ctrl-C leaves the thread looking finished
        # (CPython), and the process would then exit under a worker in mid-batch, its rows never marked (#25, #27).
        self.running = 0
        self._gone = threading.Condition()

    def wait_for_workers(self) -> None:
        with self._gone:
            while self.running:
                self._gone.wait()

    def _storage_failed(self, e: StorageError) -> None:
        with self.stats.lock:
            self.storage = self.storage or e
        self.feed.stop(str(e))

    def worker(self) -> None:
        try:
            self._work()
        finally:
            with self._gone:
                self.running -= 1
                self._gone.notify_all()

    def _work(self) -> None:
        try:
            sender = self.channel.open_sender(self.rendition)
        except ChannelDown as e:
            self.feed.stop(str(e))
            return
        except StorageError as e:
            self._storage_failed(e)
            return
        try:
            while (items := self.feed.take(self.chunk)) is not None:
                try:
                    self.batch(sender, items)
                finally:
                    self.feed.release()
        except StorageError as e:  # the outbox or the ledger cannot be written: stop, say so once
            self._storage_failed(e)
        except BaseException as e:  # a bug: keep the row `sending` (it may have gone out) and stop
            self.crash = e
            self.feed.stop(f"internal error: {e!r}")
            log.exception("sending stopped by an unexpected error")
        finally:
            sender.close()

    def batch(self, sender: Any, items: list[_Item]) -> None:
        """Mark the batch `sending` in one commit, send its units one by one, then mark those delivered `sent`
        in one commit. A kill in between leaves the batch `sending`: at most one batch per connection is sent
        again (issue #27). When the run stops mid-batch, the units not yet tried go back to what they were."""
        keep = self.wanted([item.unit.key for item in items]) if self.wanted is not None else None
        todo = []
        for item in items:
            if keep is None or item.unit.key in keep:
                todo.append(item)
            else:  # no longer on the list (unsubscribed, bounced, removed) since it was planned
                self.writer.ended(item.unit.row_id, "skipped", "no longer on the list when its turn came")
                self.stats.add("skipped")
        if not todo:
            return
        self.writer.sending_batch([item.unit.row_id for item in todo])
        done: list[tuple[int, str, str]] = []
        started = 0  # units of `todo` whose send began: the rest certainly did not go out
        try:
            for item in todo:
                if self.feed.stopped:
                    break
                started += 1
                remote_id = self.one(sender, item.unit, item.tries)
                if remote_id is not None:
                    done.append((item.unit.row_id, remote_id, iso(datetime.now(UTC))))
        finally:
            try:
                if done:
                    # If this mark cannot be written (the ledger's disk is full) the rows stay `sending` and are
                    # resent by the next run: the one documented way to a second copy, never a lost one.
                    self.writer.sent_batch(done)
                    with self.stats.lock:
                        self.stats.sent += len(done)
            finally:
                if started < len(todo):
                    self.writer.unsend_batch([(item.unit.row_id, item.before) for item in todo[started:]])

    def one(self, sender: Any, unit: Unit, tries: int) -> str | None:
        """Send one unit already marked `sending`; its remote id if it went out (the caller marks it `sent`),
        else None with its outcome recorded."""
        self.bucket.acquire()
        try:
            remote_id = sender.send(unit)
        except PermanentError as e:
            self.writer.ended(unit.row_id, "bounced", str(e))
            with self.stats.lock:
                self.stats.bounced += 1
                self.stats.bounces.append((unit, str(e)))
            log.info("%s refused for good: %s", unit.key, e)
        except TransientError as e:  # ChannelDown included: nothing was sent
            self.transient(unit, tries + 1, e)
        except Uncertain as e:  # it may have gone out; nothing here can read it back: sent again, flagged
            self.writer.possible_duplicate(unit.row_id, f"may have gone out ({e}); sent again, so it may arrive "
                                           "twice")
            self.stats.add("duplicates")
            log.warning("%s: %s; sent again: it may arrive twice", unit.key, e)
            self.transient(unit, tries + 1, TransientError(f"may have gone out: {e}"))
        except StorageError as e:  # nothing was written: the row stays open for the next run
            self.writer.ended_if_possible(unit.row_id, "failed", str(e))
            self.stats.add("failed")
            raise
        else:
            with self.stats.lock:
                self.down = 0
            return remote_id
        return None

    def transient(self, unit: Unit, tries: int, e: TransientError) -> None:
        with self.stats.lock:
            self.down = self.down + 1 if isinstance(e, ChannelDown) else 0
            down = self.down
        if down >= self.limits.down_after:
            self.writer.ended(unit.row_id, "failed", str(e))
            self.stats.add("failed")
            self.feed.stop(str(e))
            return
        if tries >= self.limits.max_attempts:
            self.writer.ended(unit.row_id, "failed", f"{e} (gave up after {tries} tries this run)")
            self.stats.add("failed")
            log.warning("%s: %s; gave up after %d tries (the next publish run tries again)",
                        unit.key, e, tries)
            return
        self.writer.ended(unit.row_id, "failed", str(e))
        delay = min(self.limits.backoff_max, self.limits.backoff * 2 ** (tries - 1))
        self.stats.add("retries")
        log.debug("%s: %s; retrying in %.1fs", unit.key, e, delay)
        self.feed.retry(unit, tries, delay)


def dispatch(channel: Channel, rendition: Any, writer: LedgerWriter, *, wanted: Wanted | None,
             limits: ChannelLimits, stats: RunStats, tick: Callable[[RunStats], None] | None = None,
             interval: float = 0.25) -> RunStats:
    """Send every open row of the writer's publication; `tick` runs on this thread every `interval`."""
    stats.total = writer.open_count()
    if not writer.trial:  # in flight when a run died: they may have gone out, and are sent again (issue #21)
        stats.duplicates += writer.mark_in_flight(f"in flight when a run stopped: sent again ({channel.name} "
                                                  "cannot be read back), so it may arrive twice")
    run = _Run(channel, rendition, writer, wanted, limits, stats)
    threads = [threading.Thread(target=run.worker, name=f"send-{channel.name}-{i}", daemon=True)
               for i in range(max(1, limits.connections))]
    run.running = len(threads)
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            threads[0].join(interval) if threads[0].is_alive() else time.sleep(interval)
            if tick:
                tick(stats)
    except BaseException:  # Ctrl-C, SIGTERM turned into SystemExit: let units in flight finish, then stop
        run.feed.stop("interrupted")
        run.wait_for_workers()
        raise
    finally:
        if tick:
            tick(stats)
    stats.stopped = run.feed.stopped
    if run.crash is not None:
        raise run.crash
    if run.storage is not None:
        raise run.storage
    return stats
