"""When a pending week becomes ready. Pure: a week's stored facts, its source's clock and usual size, and the
settings in, a time out.

A week is ready once (1) its last day is over at midnight in its source's zone, (2) its parsed papers have
been unchanged for `settle`, (3) it has no placeholder rows and (4) it is not clearly short of the papers a
week of its source usually has. Until first sight + `max_wait`, (2) and (3) hold it back; until its last day's
end + `wait_for_papers`, (4) does, and so does (2) when the source's usual size is known (papers that come
after the last day settle too). Past those it is ready anyway (still never before its last day is over), and
flagged. Weeks taken by `backfill` at a source's first poll skip the settle wait: their age is unknown, not zero.

A source's zone is its `timezone` setting, else learned from its commit dates (`usual_offset`), else the
top-level `timezone`. Its usual size is its `expect_papers` setting, else the median of its newest finished
weeks (`usual_papers`), else unknown (no wait for papers, as before any history).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from bot.config import PublishSettings
from bot.store import WeekRow
from bot.track.dates import end_of_day

SHORT = 0.8  # a week with fewer than this share of its source's usual papers is not complete yet
LEARN_WINDOW = timedelta(days=366)  # commits this close to the newest one teach the clock: a year sees both DST sides
LEARN_MIN = 3  # commits needed before an offset is trusted
USUAL_SHARE = 0.1  # an offset carried by at least this share of those commits (and two of them) is a usual one
PAPERS_MIN = 3  # finished weeks needed before their median is trusted


@dataclass(frozen=True)
class Clock:
    """Where a source's week ends, and why there."""

    zone: tzinfo
    origin: str  # "config" | "learned" | "default"
    commits: int = 0  # how many commit dates it was learned from

    @property
    def name(self) -> str:
        return getattr(self.zone, "key", None) or str(self.zone)

    def describe_origin(self) -> str:
        """`config`, `learned from N commits` or `default`."""
        return f"learned from {self.commits} commits" if self.origin == "learned" else self.origin

    def describe(self) -> str:
        return f"{self.name} ({self.describe_origin()})"


@dataclass(frozen=True)
class Gate:
    at: datetime  # the earliest instant the week is ready, if nothing changes before then
    flagged: bool  # True when a limit (max_wait, wait_for_papers) opens it, not the week being complete


def offset_zone(minutes: int) -> timezone:
    """A fixed offset, named the way `paperbot weeks` prints it: `UTC-05:00`."""
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return timezone(timedelta(minutes=minutes), "UTC" if minutes == 0 else f"UTC{sign}{h:02d}:{m:02d}")


def usual_offset(commits: Sequence[tuple[datetime, int]]) -> tuple[timezone, int] | None:
    """The UTC offset a source's weeks end by, learned from its commits' (time, offset in minutes), and how many
    commits taught it; None with too few, or no offset used regularly.

    Of the commits in the year before the newest, an offset is usual if it is on at least 10% of them (and two).
    Of the usual ones, the westernmost wins: its midnight is the latest, so a week never ends while any regular
    committer is still on its last day. That covers daylight saving time (New York's -04:00 and -05:00 give
    -05:00: an hour late in summer, never early) and a second maintainer, or a trip, elsewhere.
    """
    if not commits:
        return None
    newest = max(at for at, _ in commits)
    recent = [m for at, m in commits if at >= newest - LEARN_WINDOW]
    if len(recent) < LEARN_MIN:
        return None
    counts = Counter(recent)
    usual = [m for m, n in counts.items() if n >= max(2, USUAL_SHARE * len(recent))]
    if not usual:
        return None
    return offset_zone(min(usual)), len(recent)


def source_clock(explicit: tzinfo | None, commits: Sequence[tuple[datetime, int]], default: tzinfo) -> Clock:
    """A source's `timezone` setting wins; else what its commits teach; else the top-level `timezone`."""
    if explicit is not None:
        return Clock(explicit, "config")
    learned = usual_offset(commits)
    if learned is not None:
        return Clock(learned[0], "learned", learned[1])
    return Clock(default, "default")


def usual_papers(counts: Sequence[int]) -> int | None:
    """The median papers of a source's finished weeks (None before PAPERS_MIN of them, or if they are empty)."""
    counts = [n for n in counts if n > 0]
    if len(counts) < PAPERS_MIN:
        return None
    return round(statistics.median(counts))


def is_short(papers: int, expected: int | None) -> bool:
    """Clearly short of a complete week: 9 of 10 is not, 2 of 7 is."""
    return bool(expected) and papers < SHORT * expected


def gate(week: WeekRow, settings: PublishSettings, zone: tzinfo | None = None,
         expected: int | None = None) -> Gate | None:
    """None if the week cannot become ready (not pending, or not in the current version).

    `zone`: where its last day ends (default: the top-level `timezone`); `expected`: the papers a week of its
    source usually has (None: unknown, so no wait for papers)."""
    if week.state != "pending" or not week.present:
        return None
    over = end_of_day(week.last_day, zone or settings.timezone) if week.last_day else week.first_seen
    forced = max(over, week.first_seen + settings.max_wait)
    # With a known usual size, papers may still come after the last day: they get to settle, up to the papers' wait.
    waits = settings.wait_for_papers > timedelta(0) and bool(expected)
    papers_cap = over + settings.wait_for_papers if waits else forced
    if week.placeholders:
        at, flagged = forced, True
    else:
        settle = timedelta(0) if week.backfill else settings.settle
        settled = max(over, week.last_changed + settle)
        cap = max(forced, papers_cap)
        at, flagged = (settled, False) if settled <= cap else (cap, True)
    if waits and is_short(week.n_papers, expected):
        return Gate(max(at, papers_cap), True)
    return Gate(at, flagged)
