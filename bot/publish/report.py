"""What a publishing run reports: one `ChannelReport` per week and channel, ledger counts in words, progress lines
in the log when no terminal watches."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.publish import ledger
from bot.publish.dispatch import RunStats

log = logging.getLogger(__name__)


Progress = Callable[[str, RunStats], None]
TRIAL_MARK = " (trial: outbox)"  # ends the progress label of a trial


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
    waits: bool = False  # not sent yet, and rightly so: nobody subscribed yet (issue #25), nothing failed
    note: str | None = None

    @property
    def label(self) -> str:
        return f"{self.channel} {self.source}:{self.key}"


class LogProgress:
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
        said = "written to the outbox" if label.endswith(TRIAL_MARK) else "sent"  # issue #25 (13c): a trial sends
        log.info("%s: %d of %d done (%d %s, %d failed, %d bounced, %d skipped)%s", label, s.done,  # nothing
                 s.total, s.sent, said, s.failed, s.bounced, s.skipped, pace)


class Stopping(Exception):
    """The daemon is stopping (SIGTERM): the sending ends once the units in flight are done and recorded; the
    rest waits for the next start."""


class StopWhen:
    """Progress that also ends the sending once `stop` is set: raised on the publishing thread between ticks,
    so each worker finishes the unit it is sending and gives the rest of its batch back (issue #27)."""

    def __init__(self, stop: threading.Event, inner: Progress | None = None):
        self.stop, self.inner = stop, inner or LogProgress()

    def __call__(self, label: str, s: RunStats) -> None:
        self.inner(label, s)
        if self.stop.is_set():
            raise Stopping(f"{label}: stopping with {s.total - s.done} unit(s) left for the next start")


def describe(counts: dict[str, int]) -> str:
    """Ledger counts as words: "3 sent, 8 to send, 1 uncertain"."""
    words = {"planned": "to send", "sending": "in flight", "failed": "failed (sent again later)",
             "trial": "written to the outbox"}
    parts = [f"{n} {words.get(state, state)}" for state, n in counts.items() if n]
    return ", ".join(parts) or "nothing planned"


def when(stamp: str) -> str:
    """A ledger time for a note: to the minute, in UTC."""
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def open_units(counts: dict[str, int]) -> int:
    return sum(counts.get(state, 0) for state in ledger.OPEN)
