"""Send windows (`[email] send_at = "mon 14:00"`, and the same key for every channel): a ready week goes out on a
channel only at the channel's next window after it became ready.

Pure: decided from the week's `ready_at` and `now`, never from a scheduler's memory. A week may go out once
some window lies between the moment it became ready and now; so a window missed while the daemon was down is
used at the first round after start-up (the ledger then says the week is out: not used twice), and a week that
became ready after the last window waits for the next one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW = re.compile(r"\s*(?P<day>[a-z]{3,9})\s+(?P<h>\d{1,2}):(?P<m>\d{2})\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    weekday: int  # 0 = Monday
    hour: int
    minute: int

    def __str__(self) -> str:
        return f"{DAYS[self.weekday]} {self.hour:02d}:{self.minute:02d}"


def parse_windows(value: object, where: str) -> tuple[Window, ...]:
    """`"mon 14:00"` or a list of them (`["mon 14:00", "thu 9:30"]`); `""`/`[]`: no window (send when ready).
    ValueError naming `where` otherwise."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{where}: {value!r} must be a day and a time like \"mon 14:00\", or a list of them")
    out = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        m = _WINDOW.fullmatch(item) if isinstance(item, str) else None
        word = m.group("day").lower() if m else ""
        day = next((i for i, full in enumerate(FULL) if full.startswith(word)), None)
        if not m or day is None:
            raise ValueError(f"{where}: {item!r} is not a day and a time like \"mon 14:00\" (days: "
                             f"{', '.join(DAYS)})")
        hour, minute = int(m.group("h")), int(m.group("m"))
        if hour > 23 or minute > 59:
            raise ValueError(f"{where}: {item!r}: the time must be from 00:00 to 23:59")
        out.append(Window(day, hour, minute))
    return tuple(sorted(set(out), key=lambda w: (w.weekday, w.hour, w.minute)))


def _instants(windows: Sequence[Window], tz: ZoneInfo, around: datetime) -> list[datetime]:
    """Every window instant in the weeks around `around` (local time in `tz`), sorted."""
    local = around.astimezone(tz)
    monday = (local - timedelta(days=local.weekday())).date()
    out = []
    for week in (-1, 0, 1):
        for w in windows:
            day = monday + timedelta(days=7 * week + w.weekday)
            out.append(datetime(day.year, day.month, day.day, w.hour, w.minute, tzinfo=tz))
    return sorted(out)


def last_window(windows: Sequence[Window], tz: ZoneInfo, now: datetime) -> datetime | None:
    """The latest window instant at or before `now`; None without windows."""
    past = [t for t in _instants(windows, tz, now) if t <= now]
    return past[-1] if past else None


def next_window(windows: Sequence[Window], tz: ZoneInfo, now: datetime) -> datetime | None:
    """The earliest window instant after `now`; None without windows."""
    ahead = [t for t in _instants(windows, tz, now) if t > now]
    return ahead[0] if ahead else None


def may_send(windows: Sequence[Window], tz: ZoneInfo, ready_at: datetime | None, now: datetime) -> bool:
    """True when there is no window, or a window came between the week becoming ready and now."""
    if not windows:
        return True
    last = last_window(windows, tz, now)
    return last is not None and (ready_at is None or last >= ready_at)


def parse_send_at(value: object, where: str) -> tuple[Window, ...]:
    """A channel's `send_at` key, as its settings read it: ConfigError naming `where` if it is not windows."""
    try:
        return parse_windows(value, where)
    except ValueError as e:
        raise ConfigError(str(e)) from e
