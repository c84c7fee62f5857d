"""When a pending week becomes ready. Pure: a week's stored facts and the settings in, a time out.

A week is ready once (1) its last day is over in the configured time zone, (2) its parsed papers have been
unchanged for `settle`, and (3) it has no placeholder rows. If that has not happened by first sight +
`max_wait`, it is ready then anyway (still never before its last day is over), and flagged.
Weeks taken by `backfill` at a source's first poll skip the settle wait: their age is unknown, not zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import PublishSettings
from bot.store import WeekRow
from bot.track.dates import end_of_day


@dataclass(frozen=True)
class Gate:
    at: datetime  # the earliest instant the week is ready, if nothing changes before then
    flagged: bool  # True when only max_wait opens it


def gate(week: WeekRow, settings: PublishSettings) -> Gate | None:
    """None if the week cannot become ready (not pending, or not in the current version)."""
    if week.state != "pending" or not week.present:
        return None
    over = end_of_day(week.last_day, settings.timezone) if week.last_day else week.first_seen
    forced = max(over, week.first_seen + settings.max_wait)
    if week.placeholders:
        return Gate(forced, True)
    settle = timedelta(0) if week.backfill else settings.settle
    settled = max(over, week.last_changed + settle)
    if settled <= forced:
        return Gate(settled, False)
    return Gate(forced, True)
