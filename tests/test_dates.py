"""Week headings to keys, and the rules that give a yearless heading its year."""

from __future__ import annotations

from datetime import date

import pytest

from bot.track.dates import find_range, resolve_years


@pytest.mark.parametrize("text,key_year,expected", [
    ("Top ML Papers of the Week (Feb 20-26)", 2023, ("2023-02-20", "2023-02-26")),
    ("Top ML Papers of the Week (Feb 13 - 19)", 2023, ("2023-02-13", "2023-02-19")),
    ("(Jan 30-Feb 5)", 2023, ("2023-01-30", "2023-02-05")),
    ("(Mar 27 - April 2)", 2023, ("2023-03-27", "2023-04-02")),
    ("(May 29-June 4)", 2023, ("2023-05-29", "2023-06-04")),
    ("(Jan 1-8)", 2023, ("2023-01-01", "2023-01-08")),
    ("(September 30 - October 6) - 2024", None, ("2024-09-30", "2024-10-06")),
    ("(December 30 - January 5) - 2025", None, ("2024-12-30", "2025-01-05")),
    ("(Dec 30, 2024 - Jan 5, 2025)", None, ("2024-12-30", "2025-01-05")),
    ("(Dec 30, 2024 - Jan 5)", None, ("2024-12-30", "2025-01-05")),
    ("(Mar 30 - 5)", 2023, ("2023-03-30", "2023-04-05")),
])
def test_ranges(text, key_year, expected):
    rng = find_range(text)
    assert rng is not None
    year = rng.year if rng.year is not None else key_year
    first, last = rng.with_end_year(year)
    assert (first.isoformat(), last.isoformat()) == expected


@pytest.mark.parametrize("text", ["## 2024", "Papers of the week", "(Feb 30-31)", "Version 1-2"])
def test_not_a_range_or_impossible(text):
    rng = find_range(text)
    assert rng is None or rng.with_end_year(2023) is None


def test_yearless_takes_year_from_neighbours_newest_first():
    texts = ["(Jan 6 - Jan 12) - 2025", "(Dec 30 - Jan 5) - 2025", "(Dec 23 - Dec 29)", "(Jan 1-8)"]
    spans = resolve_years([find_range(t) for t in texts], date(2030, 1, 1))
    assert [s[0].isoformat() for s in spans] == ["2025-01-06", "2024-12-30", "2024-12-23", "2024-01-01"]


def test_yearless_on_top_of_written_years_walks_up():
    spans = resolve_years([find_range("(Jan 13 - 19)"), find_range("(Jan 6 - 12) - 2025")], date(2030, 1, 1))
    assert spans[0][0] == date(2025, 1, 13)


def test_no_year_anywhere_uses_as_of_within_seven_days():
    # Read on Jan 5: "Dec 29 - Jan 4" ends the day before; "Jan 5-11" ends within 7 days of as_of.
    rng = find_range("(Jan 5-11)")
    assert resolve_years([rng], date(2026, 1, 5))[0][1] == date(2026, 1, 11)
    # Read on Jan 2: Dec 26 - Jan 1 is last year's December.
    assert resolve_years([find_range("(Dec 22-28)")], date(2026, 1, 2))[0][1] == date(2025, 12, 28)
    # More than 7 days ahead is last year.
    assert resolve_years([find_range("(Mar 6-12)")], date(2026, 3, 1))[0][1] == date(2025, 3, 12)
