"""`paperbot example-digest`: a small digest as a local git repository, to try paperbot with no account (issue #26).

It has the form of the digests paperbot follows (a README with one table per week, newest first, in dair-ai's
layout) and three weeks: the three Monday-to-Sunday weeks before today, each committed on its Sunday evening
(UTC), so a first poll finds the newest one finished and ready, and the older two as what was there before.
The papers are made up for the example and link to example.org.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

WEEKS = 3
PAPERS: tuple[tuple[tuple[str, str], ...], ...] = (  # newest week first; (title, summary) made up for the example
    (("Tiny Planners", "A planner small enough to run on a phone plans household tasks as well as a model forty "
      "times its size. It runs offline and explains each step it takes."),
     ("Honest Agents", "Measures how often agents admit they are unsure, and shows that a short calibration "
      "stage halves confident wrong answers."),
     ("Sparse Mixtures for Tiny Devices", "Routes each token to two of sixty-four small experts, keeping the "
      "accuracy of a dense model at a quarter of the energy."),
     ("Long Context, Short Memory", "Compresses a million-token context into a few thousand summary vectors "
      "that a model reads back when it needs them.")),
    (("Reading Tables Aloud", "A benchmark of spoken questions about spreadsheets, and a baseline that answers "
      "two thirds of them."),
     ("Cheap Reward Models", "Trains reward models on a tenth of the usual preference data by asking the "
      "model to explain its own ranking first."),
     ("Maps from Words", "Turns walking directions into maps that people follow as well as hand-drawn ones.")),
    (("Winter Benchmarks", "A benchmark of seasonal questions that shows how much models lean on the date "
      "they were trained."),
     ("Fewer Tokens, Same Answers", "Prunes the reasoning of a model by half without losing accuracy on maths "
      "word problems."),
     ("Robots that Ask", "A robot that asks one clarifying question before acting makes half as many "
      "mistakes in a kitchen.")),
)


def week_days(today: date, weeks: int = WEEKS) -> list[tuple[date, date]]:
    """(Monday, Sunday) of the `weeks` whole weeks before `today`, newest first; none of them holds today."""
    last_sunday = today - timedelta(days=today.weekday() + 1)
    return [(last_sunday - timedelta(days=7 * i + 6), last_sunday - timedelta(days=7 * i)) for i in range(weeks)]


def _heading(first: date, last: date) -> str:
    return f"## Top ML Papers of the Week ({first:%B} {first.day} - {last:%B} {last.day}) - {last.year}"


def render(weeks: list[tuple[date, date]], skip: int = 0) -> str:
    """The digest's README holding `weeks` but the newest `skip` (newest first), in the layout of dair-ai's; each
    week always has the same papers."""
    out = ["# An example digest", "", "A made-up digest for trying paperbot on one machine.", ""]
    for (first, last), papers in list(zip(weeks, PAPERS, strict=False))[skip:]:
        out += [_heading(first, last), "| **Paper**  | **Links** |", "| ------------- | ------------- |"]
        for i, (title, summary) in enumerate(papers, 1):
            slug = title.lower().replace(" ", "-").replace(",", "")
            out.append(f"| {i}) **{title}** - {summary} | [Paper](https://example.org/papers/{slug}), "
                       f"[Code](https://example.org/code/{slug}) |")
        out.append("")
    return "\n".join(out)


def _git(repo: Path, *args: str, when: datetime | None = None) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Example Curator", "-c", "user.email=curator@example.org",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, text=True, env=env)


def make(path: Path, today: date | None = None) -> list[tuple[date, date]]:
    """Creates the repository at `path` (a new or empty folder): one commit per week, oldest first, each on its
    Sunday at 20:00 UTC. Returns the weeks, newest first."""
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty")
    weeks = week_days(today or datetime.now(UTC).date())
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    for skip in range(len(weeks) - 1, -1, -1):
        first, last = weeks[skip]
        (path / "README.md").write_text(render(weeks, skip), encoding="utf-8")
        _git(path, "add", "README.md")
        _git(path, "commit", "-q", "-m", f"Week of {first:%b} {first.day}", when=datetime.combine(last, time(20), UTC))
    return weeks
