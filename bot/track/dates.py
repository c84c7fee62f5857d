"""Week headings to date ranges, and the rules that give a yearless heading its year.

Digest headings say things like "(Feb 20-26)", "(Jan 30-Feb 5)", "(December 30 - January 5) - 2025".
A year, when present, is the year of the *last* day. When absent it is inferred from neighbouring
headings (weeks are listed newest first) or, failing that, from the date the week was first seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
# Every `\s*` is possessive (`\s*+`): what follows it is never a space, so giving spaces back can find no other
# match, only try the same ones again; `\s*\)?\s*` on a run of spaces did, in quadratic time (issue #20).
_DASH = r"\s*+(?:-+|–|—|to|until)\s*+"
_RANGE = re.compile(
    rf"\b(?P<m1>{_MONTH})\s*+{_DAY.replace('(', '(?P<d1>', 1)}(?:,?\s*+(?P<y1>\d{{4}}))?"
    rf"{_DASH}"
    rf"(?:(?P<m2>{_MONTH})\s*+)?{_DAY.replace('(', '(?P<d2>', 1)}\b(?:,?\s*+(?P<y2>\d{{4}})\b)?"
    rf"(?:\s*+\)?\s*+(?:[-–—,]\s*+)?\(?(?P<y3>\d{{4}})\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DateRange:
    """A range as written: months and days, and the last day's year if the text gave it."""

    m1: int
    d1: int
    m2: int
    d2: int
    year: int | None  # year of the last day, if written
    first_year: int | None = None  # year of the first day, if written separately

    def with_end_year(self, year: int) -> tuple[date, date] | None:
        """The concrete first and last day if the last day falls in `year`; None if impossible."""
        try:
            last = date(year, self.m2, self.d2)
            first_year = year - 1 if (self.m1, self.d1) > (self.m2, self.d2) else year
            first = date(first_year, self.m1, self.d1)
        except ValueError:
            return None
        if not timedelta(0) <= last - first <= timedelta(days=31):
            return None
        return first, last


def _month(text: str) -> int:
    return _MONTHS[text[:3].lower()]


def find_range(text: str) -> DateRange | None:
    """The first month-day range in `text`, e.g. in a heading; None if it has none."""
    m = _RANGE.search(text)
    if not m:
        return None
    m1 = _month(m["m1"])
    d1 = int(m["d1"])
    d2 = int(m["d2"])
    if m["m2"]:
        m2 = _month(m["m2"])
    else:
        m2 = m1 if d2 >= d1 else m1 % 12 + 1
    year = m["y2"] or m["y3"]
    first_year = int(m["y1"]) if m["y1"] else None
    if year is None and first_year is not None:
        # "Dec 30, 2024 - Jan 5": the last day's year follows from the first.
        year = first_year + 1 if (m1, d1) > (m2, d2) else first_year
    if not (1 <= d1 <= 31 and 1 <= d2 <= 31):
        return None
    return DateRange(m1, d1, m2, d2, int(year) if year else None, first_year)


def range_span(text: str) -> tuple[int, int] | None:
    """Where `find_range` finds its range in `text` (start, end), with a year written after it; None if none."""
    m = _RANGE.search(text)
    return m.span() if m else None


def week_key(first: date, last: date) -> str:
    return f"{first.isoformat()}..{last.isoformat()}"


def iso_week_key(day: date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def iso_week_bounds(key: str) -> tuple[date, date]:
    y, w = key.split("-W")
    first = date.fromisocalendar(int(y), int(w), 1)
    return first, first + timedelta(days=6)


def key_bounds(key: str) -> tuple[date, date] | None:
    """First and last day of a week key of either form; None for anything else."""
    try:
        if "-W" in key:
            return iso_week_bounds(key)
        a, b = key.split("..")
        return date.fromisoformat(a), date.fromisoformat(b)
    except ValueError:
        return None


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """The instant a day is over in `tz` (midnight that starts the next day)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)


def _year_from_as_of(rng: DateRange, as_of: date) -> tuple[date, date] | None:
    """The year that puts the last day nearest to, and at most 7 days after, `as_of`."""
    best = None
    for y in (as_of.year + 1, as_of.year, as_of.year - 1, as_of.year - 2):
        span = rng.with_end_year(y)
        if span and span[1] <= as_of + timedelta(days=7):
            if best is None or span[1] > best[1]:
                best = span
    return best


def _year_below(rng: DateRange, newer_last: date) -> tuple[date, date] | None:
    """Latest placement ending no later than the newer week above it."""
    for y in (newer_last.year, newer_last.year - 1, newer_last.year - 2):
        span = rng.with_end_year(y)
        if span and span[1] <= newer_last:
            return span
    return None


def _year_above(rng: DateRange, older_last: date) -> tuple[date, date] | None:
    """Earliest placement ending no earlier than the older week below it."""
    for y in (older_last.year, older_last.year + 1, older_last.year + 2):
        span = rng.with_end_year(y)
        if span and span[1] >= older_last:
            return span
    return None


def resolve_years(ranges: list[DateRange], as_of: date) -> list[tuple[date, date] | None]:
    """Concrete spans for headings listed newest first.

    A written year wins. A yearless heading follows the nearest resolved heading above it (it ends no later
    than that one), or, at the top, the nearest resolved one below it; with no year anywhere the top heading
    is placed by `as_of` and the rest follow it down.
    """
    spans: list[tuple[date, date] | None] = [
        r.with_end_year(r.year) if r.year is not None else None for r in ranges
    ]
    written = [i for i, r in enumerate(ranges) if r.year is not None and spans[i] is not None]
    if not ranges:
        return spans
    if not written:
        # Place the top heading by as_of, then chain downward.
        spans[0] = _year_from_as_of(ranges[0], as_of)
        start = 0
    else:
        start = written[0]
        # Headings above the first written year: walk upward from it.
        for i in range(start - 1, -1, -1):
            below = spans[i + 1]
            spans[i] = _year_above(ranges[i], below[1]) if below else _year_from_as_of(ranges[i], as_of)
    for i in range(start + 1, len(ranges)):
        if spans[i] is None or ranges[i].year is None:
            above = spans[i - 1]
            if ranges[i].year is None:
                spans[i] = _year_below(ranges[i], above[1]) if above else _year_from_as_of(ranges[i], as_of)
    return spans
