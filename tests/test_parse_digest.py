"""The digest parser: every README form, defects reported and never fatal."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from conftest import FIXTURES, read_tsv, shared_path

from bot.cli import cli
from bot.track.parse_digest import parse_digest


def _kinds(week) -> set[str]:
    return {d.kind for d in week.defects}


def test_fixture_weeks_papers_and_defects():
    doc = parse_digest((FIXTURES / "digest_2023.md").read_text(), date(2023, 3, 15))
    assert [w.key for w in doc.weeks] == ["2023-03-06..2023-03-12", "2023-02-27..2023-03-05", "2023-01-01..2023-01-08"]
    mar, feb, jan = doc.weeks
    # A table of contents above the weeks is never a week.
    assert len(doc.weeks) == 3
    assert [p.number for p in mar.papers] == [1, 2, 3, 4]
    assert mar.papers[0].title == "Sparse Lanterns: Lighting Up Mixture Models"
    assert mar.papers[0].summary.startswith("Sparse Lanterns - routes tokens")
    assert [(lk.label, lk.url) for lk in mar.papers[1].links] == [
        ("Paper", "https://arxiv.org/abs/2303.00002"), ("Code", "https://github.com/example/quiet"),
        ("Tweet", "https://twitter.com/example/status/2")]
    assert _kinds(mar) == {"bad-image", "missing-pipe", "number-style"}
    # The row without its closing pipe is still a whole paper.
    assert mar.papers[2].title == "Tables All the Way Down"
    assert [lk.label for lk in mar.papers[2].links] == ["Paper", "Project"]
    assert _kinds(feb) == {"unbalanced-bold", "placeholder", "numbering-gap"}
    assert feb.papers[0].title == "Graph Weavers: a survey of graph transformers"
    assert feb.papers[1].links == ()  # the xxx link is reported, not kept
    assert feb.has_placeholders and not mar.has_placeholders
    gap = [d for d in feb.defects if d.kind == "numbering-gap"][0]
    assert gap.line == 25
    # The oldest form: a bold line heading and a numbered list with link bullets.
    assert jan.title == "Top ML Papers of the Week (Jan 1-8)"
    assert [p.number for p in jan.papers] == [1, 2]
    assert jan.papers[0].links[0].url == "https://arxiv.org/abs/2301.00021"
    assert jan.papers[0].links[0].label == "Paper"


def test_three_column_table_with_release_dates_and_year_suffix():
    doc = parse_digest((FIXTURES / "digest_2024_v1.md").read_text(), date(2026, 1, 1))
    (week,) = doc.weeks  # "## 2024" and its index list are not weeks
    assert week.key == "2024-04-15..2024-04-21"
    assert [p.number for p in week.papers] == [1, 2]
    assert week.papers[0].release_date == date(2024, 4, 4)
    assert [lk.label for lk in week.papers[0].links] == ["Paper", "Repo"]


def test_2025_form_without_bold_and_a_range_across_the_new_year():
    doc = parse_digest((FIXTURES / "digest_2025.md").read_text(), date(2026, 1, 10))
    assert [w.key for w in doc.weeks] == ["2025-12-29..2026-01-04", "2025-12-22..2025-12-28"]
    first = doc.weeks[0].papers[0]
    assert first.title == "Tiny Planners"
    assert "● Runs offline" in first.summary and "<br>" not in first.summary


def test_top_ai_papers_title_and_other_heading_forms():
    text = "\n".join([
        "### **Top AI Papers of the Week (Feb 3 - Feb 9, 2025):**",
        "| **Paper** | **Links** |", "| --- | --- |",
        "| 1) **A** - a. | [Paper](https://example.org/a) |",
        "**Top AI Papers of the Week (Jan 27–Feb 2)**",
        "| 1) **B** - b. | [Paper](https://example.org/b) |",
    ])
    doc = parse_digest(text, date(2025, 2, 12))
    assert [w.key for w in doc.weeks] == ["2025-02-03..2025-02-09", "2025-01-27..2025-02-02"]
    assert doc.weeks[0].title == "Top AI Papers of the Week (Feb 3 - Feb 9, 2025)"


def test_missing_separator_is_a_defect_not_a_loss():
    text = ("## Top ML Papers of the Week (May 1-7)\n| **Paper** | **Links** |\n"
            "| 1) **A** - a | [Paper](https://x.org/a) |\n")
    (week,) = parse_digest(text, date(2023, 5, 20)).weeks
    assert len(week.papers) == 1
    assert "missing-separator" in _kinds(week)


def test_cli_parse_json_shape():
    result = CliRunner().invoke(cli, ["parse", str(FIXTURES / "digest_2023.md"), "--as-of", "2023-03-15", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["format"] == "digest"
    week = out["weeks"][1]
    assert set(week) == {"key", "title", "papers", "defects"}
    paper = week["papers"][0]
    assert set(paper) == {"number", "title", "summary", "links", "release_date"}
    assert paper["links"][0] == {"label": "Paper", "url": "https://arxiv.org/abs/2302.00011"}
    assert {"line": 24, "kind": "placeholder", "text": "[Paper](xxx)"} in week["defects"]


# -- the real seeds and corpus (../shared/) -----------------------------------------------------------------

def test_seed_001_eight_weeks_79_papers_with_defects():
    doc = parse_digest(next(shared_path("seeds").glob("001_*")).read_text(), date(2023, 3, 1))
    assert len(doc.weeks) == 8
    assert sum(len(w.papers) for w in doc.weeks) == 79
    kinds = {d.kind for w in doc.weeks for d in w.defects}
    assert {"number-style", "numbering-gap", "unbalanced-bold", "placeholder", "missing-pipe", "bad-image"} <= kinds


def test_latest_readme_has_its_130_weeks_with_their_row_counts():
    folder = shared_path("corpus", "dair-ai-latest")
    doc = parse_digest((folder / "README.md").read_text(), date(2025, 7, 20))
    expected = {r["key"]: int(r["rows"]) for r in read_tsv(folder / "weeks.tsv")}
    got = {w.key: len(w.papers) for w in doc.weeks}
    assert len(doc.weeks) == 130 == len(got)
    assert set(got) == set(expected)
    # weeks.tsv counts 12 rows for Jan 1-8 2023: its table's header and separator are padded with spaces and
    # were counted as rows. The table holds papers 1) to 10).
    expected["2023-01-01..2023-01-08"] -= 2
    assert got == expected
    assert all(p.title for w in doc.weeks for p in w.papers)


def test_corpus_2023_every_version_has_the_expected_weeks():
    corpus = shared_path("corpus", "dair-ai-2023")
    seen: set[str] = set()
    for row in read_tsv(corpus / "expected_new_weeks.tsv"):
        doc = parse_digest((corpus / row["file"]).read_text(), date.fromisoformat(row["commit_date"][:10]))
        keys = {w.key for w in doc.weeks}
        assert len(keys) == int(row["n_weeks"]), row["step"]
        new = keys - seen
        assert sorted(new) == sorted(json.loads(row["new"])), row["step"]
        seen |= keys
