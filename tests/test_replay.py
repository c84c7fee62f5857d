"""`paperbot replay` over real git repositories: the 2023 corpus history, and a small history of our own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from conftest import build_corpus_repo, commit_file, json_cell, make_repo, read_tsv, shared_path

from bot.cli import cli
from bot.track.dates import end_of_day, key_bounds
from bot.track.parse_digest import parse_digest

SETTLE = timedelta(hours=2)


def replay(repo, *args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["replay", str(repo), "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


def releases(lines: list[dict]) -> list[dict]:
    """The release lines (late additions are lines with "event": "late")."""
    return [x for x in lines if "event" not in x]


def replay_in_pieces(repo, state, pieces: list[int]) -> list[dict]:
    lines = []
    for n in pieces:
        lines += replay(repo, "--state", str(state), "--stop-after", str(n))
    lines += replay(repo, "--state", str(state))  # the rest, then the clock runs on to --until
    return lines


def week(heading: str, rows: list[str]) -> str:
    body = "\n".join(f"| {i}) **{r}** - about {r}. | [Paper](https://example.org/{i}) |" for i, r in enumerate(rows, 1))
    return f"## Top ML Papers of the Week ({heading})\n| **Paper** | **Links** |\n| --- | --- |\n{body}\n\n"


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("small") / "digest")
    w1, w2, w3 = week("Feb 20-26", ["A", "B"]), week("Feb 27-Mar 5", ["C", "XXX"]), week("Mar 6-12", ["E"])
    commit_file(repo, "README.md", "# Digest\n", "2023-02-19T10:00:00+00:00")
    commit_file(repo, "README.md", "# Digest\n" + w1, "2023-02-26T22:00:00+00:00")
    commit_file(repo, "README.md", "# Digest\n" + w2 + w1, "2023-03-05T21:00:00+00:00")
    commit_file(repo, "README.md", "# Digest\n" + w2.replace("1) ", "1. ") + w1, "2023-03-06T09:00:00+00:00")
    commit_file(repo, "README.md", "# Digest\n" + w2.replace("XXX", "D") + w1, "2023-03-06T10:00:00+00:00")
    commit_file(repo, "README.md", "# Digest\n" + w3 + w2.replace("XXX", "D") + w1, "2023-03-12T23:30:00+00:00")
    return repo


def test_small_history(small_repo):
    lines = replay(small_repo)
    assert [(x["week"], x["at"], x["papers"]) for x in lines] == [
        ("2023-02-20..2023-02-26", "2023-02-27T00:00:00+00:00", 2),  # last day over; settled at 00:00
        ("2023-02-27..2023-03-05", "2023-03-06T12:00:00+00:00", 2),  # placeholder filled at 10:00, + settle
        ("2023-03-06..2023-03-12", "2023-03-13T01:30:00+00:00", 1),
    ]
    assert all(len(x["commit"]) == 40 for x in lines)
    assert set(lines[0]) == {"week", "title", "at", "commit", "papers"}


def test_small_history_in_pieces_prints_the_same(small_repo, tmp_path):
    whole = replay(small_repo)
    for i, pieces in enumerate([[1, 1, 1, 1, 1], [2, 3], [5], [0, 4]]):
        assert replay_in_pieces(small_repo, tmp_path / f"s{i}", pieces) == whole


@pytest.fixture(scope="module")
def corpus_repo(tmp_path_factory):
    corpus = shared_path("corpus", "dair-ai-2023")
    repo = tmp_path_factory.mktemp("corpus") / "ml-papers"
    rows = build_corpus_repo(repo, corpus)
    return repo, corpus, rows


@pytest.fixture(scope="module")
def corpus_lines(corpus_repo):
    return replay(corpus_repo[0])


def _fingerprints(rows: list[dict], corpus) -> list[dict[str, str]]:
    """Per version, each week's papers fingerprint (the last copy where a heading repeats)."""
    out = []
    for r in rows:
        when = datetime.fromisoformat(r["commit_date"])
        doc = parse_digest((corpus / r["file"]).read_text(), when.date())
        out.append({w.key: w.fingerprint for w in reversed(doc.weeks)})
    return out


def _deadline(key: str, complete_step: int, rows: list[dict], fps: list[dict[str, str]]) -> datetime:
    """First instant after the week is complete and past its last day, with its papers unchanged for SETTLE."""
    changes, prev = [], None
    for r, fp in zip(rows, fps, strict=True):
        if fp.get(key) != prev and int(r["step"]) >= complete_step:
            changes.append(datetime.fromisoformat(r["commit_date"]))
        prev = fp.get(key)
    t = max(end_of_day(key_bounds(key)[1], UTC), datetime.fromisoformat(rows[complete_step - 1]["commit_date"]))
    while recent := [c for c in changes if t - SETTLE < c <= t]:
        t = max(recent) + SETTLE
    return t


def test_corpus_replay_releases_exactly_the_expected_weeks(corpus_repo, corpus_lines):
    repo, corpus, rows = corpus_repo
    expected = {}
    for r in read_tsv(corpus / "expected_new_weeks.tsv"):
        for key in json_cell(r["new"]):
            expected[key] = r
    keys = [x["week"] for x in releases(corpus_lines)]
    assert len(keys) == len(set(keys)), "a week was released twice"
    assert set(keys) == set(expected)
    life = {r["key"]: r for r in read_tsv(corpus / "week_lifecycle.tsv")}
    fps = _fingerprints(rows, corpus)
    step_of = {r["repo_sha"]: int(r["step"]) for r in rows}
    for x in releases(corpus_lines):
        at = datetime.fromisoformat(x["at"])
        first = datetime.fromisoformat(expected[x["week"]]["commit_date"])
        assert at >= first, f"{x['week']} released before its first step"
        assert at >= end_of_day(key_bounds(x["week"])[1], UTC), f"{x['week']} released before its last day ended"
        deadline = _deadline(x["week"], int(life[x["week"]]["complete_step"]), rows, fps)
        assert at <= deadline, f"{x['week']} released at {at}, later than {deadline}"
        # The commit named is the last one processed: never one before the week's first step.
        assert step_of[x["commit"]] >= int(expected[x["week"]]["step"])


def test_corpus_replay_in_pieces_prints_the_same(corpus_repo, corpus_lines, tmp_path):
    repo = corpus_repo[0]
    # Cut at the awkward places: the first weeks, the placeholder weeks, the copied headings (134, 177).
    pieces = [1, 1, 39, 2, 12, 12, 8, 53, 6, 1, 42, 1, 2]
    assert sum(pieces) < 190
    assert replay_in_pieces(repo, tmp_path / "state", pieces) == corpus_lines
