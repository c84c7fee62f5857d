"""The guard on age (issue #21): a week that is new only because an upstream pasted old weeks is held, not sent.

Judged once, when a pending week first becomes ready (`tracker.release`), from facts fixed by then: a week that
first appeared after its source's first poll is held if it is older than the newest week already released from
that source or present at its first poll (of those first seen before it: weeks added in one commit are not an
archive pasted in), or if its last day ended more than `[publish] max_age` before the
instant its gate opened. Anything that delays a week after that instant (a send window, a budget, approval, an
outage of a channel) is never held for its age, because the judgment is not made again. Pure: the reference
day and the instant are arguments.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from bot.store import WeekRow
from bot.track.dates import end_of_day

HELD = "held"  # the state of a week the guard held: it goes out only once `paperbot approve` names it


def held_reason(week: WeekRow, newest: date | None, ready_at: datetime, zone: tzinfo,
                max_age: timedelta) -> str | None:
    """Why `week` is held as it first becomes ready at `ready_at`, or None when it may go out.

    `newest`: the last day of the newest week of its source first seen before it and already released or present
    at its first poll (None: none yet; `Store.newest_released_day`).
    A week taken at the first poll (`backfill`) and an edition of late papers are never held."""
    if week.backfill or week.late_of is not None or week.last_day is None:
        return None
    if newest is not None and week.last_day < newest:
        return (f"older than the newest week already released from {week.source} (its last day "
                f"{week.last_day.isoformat()} is before {newest.isoformat()}): an archive pasted in, not a new week")
    age = ready_at - end_of_day(week.last_day, zone)
    if age > max_age:
        return (f"its last day ({week.last_day.isoformat()}) ended {age.days} days before it became ready, more "
                f"than [publish] max_age ({max_age.days} days)")
    return None
