"""`paperbot replay` over real git repositories: the 2023 corpus history, and a small history of our own."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import clock_support as ny
import pytest
from click.testing import CliRunner
from conftest import build_corpus_repo, commit_file, json_cell, make_repo, read_tsv, shared_path

from bot.cli import cli
from bot.store import Store
from bot.track.dates import end_of_day, key_bounds
from bot.track.parse_digest import parse_digest

SETTLE = timedelta(hours=2)
# issue #10: the corpus's commits carry -06:00, bar a stretch at +05:30 (Aug-Nov): its weeks end at midnight
# UTC-06:00, the westernmost offset its commits regularly carry.
CORPUS_ZONE = timezone(timedelta(hours=-6))


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
    t = max(end_of_day(key_bounds(key)[1], CORPUS_ZONE),
            datetime.fromisoformat(rows[complete_step - 1]["commit_date"]))
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
        last_day_over = end_of_day(key_bounds(x["week"])[1], CORPUS_ZONE)
        assert at >= last_day_over, f"{x['week']} released before its last day ended"
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


# -- issue #10: the source's own clock, and weeks that wait for their missing papers ---------------------------

@pytest.fixture(scope="module")
def new_york_repo(tmp_path_factory):
    return ny.new_york_history(tmp_path_factory.mktemp("ny") / "digest")


@pytest.fixture(scope="module")
def new_york_run(new_york_repo, tmp_path_factory):
    """The default settings' replay of the New York history: its lines, and the weeks as stored."""
    state = tmp_path_factory.mktemp("ny-state")
    lines = replay(new_york_repo, "--until", ny.UNTIL, "--state", str(state))
    store = Store.open(state / "paperbot.db")
    try:
        weeks = {w.key: w for w in store.weeks("replay")}
    finally:
        store.close()
    return {x["week"]: x for x in lines}, weeks, lines


def test_a_new_york_maintainers_weeks_go_out_with_their_sunday_evening_papers(new_york_run):
    """issue #10: the last two papers of each week are committed on Sunday at 21:30 in New York, already Monday
    in UTC. The clock learned from the commit dates ends the week at midnight there, so every week goes out
    with all seven papers (the previous main released each at Monday 00:00 UTC with five)."""
    got, weeks, lines = new_york_run
    assert len(lines) == len(got) == ny.WEEKS
    for i in range(ny.WEEKS):
        if i == ny.SHORT:
            continue
        x = got[ny.key(i)]
        assert x["papers"] == ny.PAPERS, f"{ny.key(i)} went out with {x['papers']} papers"
        assert datetime.fromisoformat(x["at"]) >= ny.last_commit_of_week(i)
        assert not weeks[ny.key(i)].flagged
    assert got[ny.key(0)]["at"] == "2023-09-11T04:00:00+00:00"  # midnight in New York (-04:00)
    assert got[ny.key(8)]["at"] == "2023-11-06T04:30:00+00:00"  # the last papers at 02:30 UTC + settle
    assert got[ny.key(9)]["at"] == "2023-11-13T05:00:00+00:00"  # winter time learned: midnight at -05:00


def test_a_week_short_of_the_usual_count_waits_for_its_papers(new_york_run):
    """issue #10: over Thanksgiving, Sunday's two papers come on Monday evening. With five of the usual seven
    the week is not complete: it waits past its last day, and goes out complete once they came and settled."""
    got, weeks, _ = new_york_run
    x = got[ny.key(ny.THANKSGIVING)]
    assert (x["papers"], weeks[ny.key(ny.THANKSGIVING)].flagged) == (ny.PAPERS, False)
    assert x["at"] == "2023-11-28T03:00:00+00:00"  # the papers came at 01:00 UTC; settled two hours later


def test_a_week_that_stays_short_goes_out_flagged_after_wait_for_papers(new_york_run):
    """issue #10: the last week only ever gets two papers of the usual seven: it waits `wait_for_papers` (48h)
    past the end of its last day in New York (Dec 4 05:00 UTC), then goes out flagged."""
    got, weeks, _ = new_york_run
    x = got[ny.key(ny.SHORT)]
    assert (x["papers"], x["at"]) == (2, "2023-12-06T05:00:00+00:00")
    assert weeks[ny.key(ny.SHORT)].flagged


def test_utc_and_no_wait_for_papers_behave_as_before(new_york_repo, tmp_path):
    """issue #10: `--timezone UTC` with `wait_for_papers = "0s"` is the previous rule (the "before" of
    bench/release_timing.py): every week at Monday 00:00 UTC, without its Sunday evening papers."""
    conf = tmp_path / "paperbot.toml"
    conf.write_text('[publish]\nwait_for_papers = "0s"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(conf), "replay", str(new_york_repo), "--json",
                                      "--timezone", "UTC", "--until", ny.UNTIL])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    releases = [x for x in lines if "event" not in x]  # late papers are events of their own (#10, item 3)
    assert [(x["week"], x["at"][11:16], x["papers"]) for x in releases] == [
        (ny.key(i), "00:00", 2 if i == ny.SHORT else 5) for i in range(ny.WEEKS)]
    # the Sunday-evening papers each week missed still reach readers, as late additions (#10, item 3)
    assert sum(len(x["papers"]) for x in lines if x.get("event") == "late") == (ny.PAPERS - 5) * (ny.WEEKS - 1)


def test_an_explicit_timezone_wins_over_the_learned_clock(new_york_repo):
    """issue #10: `--timezone` (a source's `timezone`) wins: America/New_York knows the day daylight saving
    time ends, so the week of Nov 5 already ends at midnight EST (05:00 UTC)."""
    lines = {x["week"]: x for x in replay(new_york_repo, "--until", ny.UNTIL, "--timezone", "America/New_York")}
    assert lines[ny.key(0)]["at"] == "2023-09-11T04:00:00+00:00"
    assert lines[ny.key(8)]["at"] == "2023-11-06T05:00:00+00:00"
    assert all(x["papers"] == ny.PAPERS for k, x in lines.items() if k != ny.key(ny.SHORT))


def test_replay_refuses_an_unknown_timezone(new_york_repo):
    result = CliRunner().invoke(cli, ["replay", str(new_york_repo), "--timezone", "Mars/Olympus"])
    assert result.exit_code == 2
    assert "--timezone" in result.output and "Mars/Olympus" in result.output
