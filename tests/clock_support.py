"""A digest kept by a maintainer in New York (issue #10), as a real git history: shared by the replay tests and
bench/release_timing.py.

Thirteen weeks, Sep 4 to Dec 3 2023, seven papers each, committed at New York time (-04:00, then -05:00 after
daylight saving time ends on Nov 5): three papers on Wednesday morning, two on Friday, the last two on Sunday at
21:30, which is already Monday in UTC. Two weeks differ: over Thanksgiving (Nov 20-26) Sunday's papers come on
Monday evening, and the last week (Nov 27-Dec 3) only ever gets two papers.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import commit_file, make_repo

NEW_YORK = ZoneInfo("America/New_York")
FIRST_MONDAY = date(2023, 9, 4)
WEEKS = 13
PAPERS = 7
THANKSGIVING = 11  # index of the week whose Sunday papers arrive on Monday evening
SHORT = 12  # index of the week that only ever gets two papers
UNTIL = "2023-12-10T00:00:00+00:00"  # run the replay's clock on to here: past the short week's wait


def key(i: int) -> str:
    first = FIRST_MONDAY + timedelta(weeks=i)
    return f"{first.isoformat()}..{(first + timedelta(days=6)).isoformat()}"


def _heading(i: int) -> str:
    first = FIRST_MONDAY + timedelta(weeks=i)
    last = first + timedelta(days=6)
    tail = f"{last.day}" if last.month == first.month else f"{last:%b} {last.day}"
    return f"## Top ML Papers of the Week ({first:%b} {first.day}-{tail})"


def _week(i: int, n: int) -> str:
    rows = "\n".join(f"| {j}) **Week {i} paper {j}** - what it does. | [Paper](https://example.org/{i}/{j}) |"
                     for j in range(1, n + 1))
    return f"{_heading(i)}\n| **Paper** | **Links** |\n| --- | --- |\n{rows}\n\n"


def _local(day: date, hh: int, mm: int) -> str:
    """A New York wall-clock time as git takes it: ISO 8601 with that day's offset (-04:00 or -05:00)."""
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=NEW_YORK).isoformat()


def last_commit_of_week(i: int) -> datetime:
    """When week `i` got its last paper."""
    sunday = FIRST_MONDAY + timedelta(weeks=i, days=6)
    if i == THANKSGIVING:
        return datetime.fromisoformat(_local(sunday + timedelta(days=1), 20, 0))
    if i == SHORT:
        return datetime.fromisoformat(_local(sunday - timedelta(days=4), 10, 0))
    return datetime.fromisoformat(_local(sunday, 21, 30))


def new_york_history(path: Path) -> Path:
    """Build the repository at `path`; returns it."""
    repo = make_repo(path)
    commit_file(repo, "README.md", "# Digest\n", _local(FIRST_MONDAY - timedelta(days=3), 12, 0), "start")
    counts: dict[int, int] = {}

    def write(when: str, message: str) -> None:
        body = "".join(_week(i, counts[i]) for i in sorted(counts, reverse=True))
        commit_file(repo, "README.md", "# Digest\n\n" + body, when, message)

    for i in range(WEEKS):
        monday = FIRST_MONDAY + timedelta(weeks=i)
        if i - 1 == THANKSGIVING:  # last week's Sunday papers, a day late
            counts[i - 1] = PAPERS
            write(_local(monday, 20, 0), f"week {i - 1}: the last papers, a day late")
        counts[i] = 2 if i == SHORT else 3
        write(_local(monday + timedelta(days=2), 10, 0), f"week {i}: first papers")
        if i == SHORT:
            continue
        counts[i] = 5
        write(_local(monday + timedelta(days=4), 16, 0), f"week {i}: two more")
        if i == THANKSGIVING:
            continue
        counts[i] = PAPERS
        write(_local(monday + timedelta(days=6), 21, 30), f"week {i}: the last two, Sunday evening")
    return repo
