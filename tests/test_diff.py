"""Diff: new, edited, renamed, removed weeks; repeated headings; edits never new."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from conftest import FIXTURES, shared_path

from bot.cli import cli
from bot.track.diff import Known, diff_weeks, norm_title
from bot.track.parse_digest import parse_digest

AS_OF = date(2023, 3, 15)


def _known(text: str) -> dict[str, Known]:
    return {w.key: Known(w.key, w.fingerprint, w.text_hash, tuple(norm_title(p.title) for p in w.papers))
            for w in parse_digest(text, AS_OF).weeks}


def _week(heading: str, rows: list[str]) -> str:
    body = "\n".join(f"| {i}) **{t}** - about {t}. | [Paper](https://example.org/{i}) |" for i, t in enumerate(rows, 1))
    return f"## Top ML Papers of the Week ({heading})\n| **Paper** | **Links** |\n| --- | --- |\n{body}\n"


def _diff_cli(old, new) -> dict:
    result = CliRunner().invoke(cli, ["diff", str(old), str(new), "--json", "--as-of", "2024-05-01"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_diff_new_and_edited(tmp_path):
    out = _diff_cli(FIXTURES / "digest_2024_v1.md", FIXTURES / "digest_2024_v2.md")
    assert out == {"new": ["2024-04-22..2024-04-28"], "edited": ["2024-04-15..2024-04-21"], "renamed": {},
                   "removed": []}


def test_seeds_004_then_002():
    seeds = shared_path("seeds")
    out = _diff_cli(next(seeds.glob("004_*")), next(seeds.glob("002_*")))
    assert out["new"] == ["2024-04-22..2024-04-28"]
    assert out["edited"] == ["2024-04-15..2024-04-21"]
    assert out["renamed"] == {} and out["removed"] == []


def test_reformatting_every_week_is_an_edit_not_new():
    old = _week("Mar 6-12", ["A", "B", "C"]) + _week("Feb 27-Mar 5", ["D", "E"])
    new = old.replace(") **", ". **").replace(" | [", "  |  [")
    result = diff_weeks(_known(old), {}, parse_digest(new, AS_OF).weeks)
    assert result.new == () and result.removed == ()
    assert set(result.edited) == {"2023-03-06..2023-03-12", "2023-02-27..2023-03-05"}


def test_heading_with_corrected_dates_is_a_rename():
    old = _week("Mar 6-12", ["A", "B", "C", "D"])
    new = _week("Mar 6-13", ["A", "B", "C", "Z"])
    result = diff_weeks(_known(old), {}, parse_digest(new, AS_OF).weeks)
    assert result.renamed == {"2023-03-06..2023-03-12": "2023-03-06..2023-03-13"}
    assert result.new == () and result.removed == ()
    # Once the alias is known, the next version maps straight onto the old key.
    again = diff_weeks(_known(old), dict([("2023-03-06..2023-03-13", "2023-03-06..2023-03-12")]),
                       parse_digest(new, AS_OF).weeks)
    assert again.renamed == {} and "2023-03-06..2023-03-12" in again.matched


def test_repeated_heading_copy_is_not_taken_for_the_week():
    known = _known(_week("Mar 6-12", ["A", "B", "C"]))
    # The next week's papers pasted under a copy of the old heading, above the old week.
    new = _week("Mar 6-12", ["X", "Y", "Z"]) + _week("Mar 6-12", ["A", "B", "C"])
    result = diff_weeks(known, {}, parse_digest(new, AS_OF).weeks)
    assert result.new == () and result.edited == ()
    assert [p.title for p in result.matched["2023-03-06..2023-03-12"].papers] == ["A", "B", "C"]
    assert [p.title for p in result.ignored[0].papers] == ["X", "Y", "Z"]


def test_removed_week():
    old = _week("Mar 6-12", ["A"]) + _week("Feb 27-Mar 5", ["B"])
    result = diff_weeks(_known(old), {}, parse_digest(_week("Mar 6-12", ["A"]), AS_OF).weeks)
    assert result.removed == ("2023-02-27..2023-03-05",)
