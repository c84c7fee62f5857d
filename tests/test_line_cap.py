"""A line over 64 Ki characters is not read but reported, with its number; the rest still parses (issue #20)."""

from __future__ import annotations

from datetime import date

from bot.track.lines import MAX_LINE
from bot.track.parse_digest import parse_digest
from bot.track.parse_notes import parse_notes
from bot.track.parsing import parse_document

AS_OF = date(2024, 1, 20)


def _digest(long_line: str) -> str:
    return "\n".join([
        "# A digest",
        "## Top ML Papers of the Week (Jan 8 - Jan 14) - 2024",  # line 2
        "| **Paper** | **Links** |",
        "| --- | --- |",
        "| 1) **First paper** - a summary. | [Paper](https://arxiv.org/abs/2401.00001) |",
        long_line,  # line 6
        "| 2) **Second paper** - a summary. | [Paper](https://arxiv.org/abs/2401.00002) |",
        "## Top ML Papers of the Week (Jan 1 - Jan 7) - 2024",  # line 8
        "| **Paper** | **Links** |",
        "| --- | --- |",
        "| 1) **Third paper** - a summary. | [Paper](https://arxiv.org/abs/2401.00003) |",
    ]) + "\n"


def test_an_over_long_row_is_a_defect_with_its_line_issue_20():
    hostile = "| 3) **" + " " * MAX_LINE + "x** | [Paper](https://arxiv.org/abs/2401.00009) |"
    doc = parse_digest(_digest(hostile), AS_OF)
    first, second = doc.weeks
    assert [p.title for p in first.papers] == ["First paper", "Second paper"]  # the long row is not a paper
    assert [p.title for p in second.papers] == ["Third paper"]
    too_long = [d for d in first.defects if d.kind == "line-too-long"]
    assert [d.line for d in too_long] == [6]
    assert f"{len(hostile):,} characters" in too_long[0].text and "65,536" in too_long[0].text
    assert not second.defects and not doc.defects


def test_a_line_at_the_cap_is_read_one_over_it_is_not_issue_20():
    row = "| 3) **Long paper** - " + "a summary, " * 7000
    at_cap = row[: MAX_LINE - 1] + "|"
    assert len(at_cap) == MAX_LINE
    doc = parse_digest(_digest(at_cap), AS_OF)
    assert [p.title for p in doc.weeks[0].papers] == ["First paper", "Long paper", "Second paper"]
    over = parse_digest(_digest(at_cap[:-1] + "a|"), AS_OF)
    assert [p.title for p in over.weeks[0].papers] == ["First paper", "Second paper"]
    assert [(d.line, d.kind) for d in over.weeks[0].defects] == [(6, "line-too-long")]


def test_an_edit_of_an_over_long_line_is_still_an_edit_issue_20():
    a = parse_digest(_digest("x" * (MAX_LINE + 1)), AS_OF)
    b = parse_digest(_digest("y" * (MAX_LINE + 1)), AS_OF)
    assert a.weeks[0].text_hash != b.weeks[0].text_hash
    assert a.weeks[1].text_hash == b.weeks[1].text_hash


def test_an_over_long_heading_outside_a_week_is_a_document_defect_issue_20():
    text = "# " + "a" * MAX_LINE + " (Jan 1 - Jan 7) - 2024\n" + _digest("")
    doc = parse_document(text.encode(), AS_OF)
    assert doc.format == "digest" and [w.key for w in doc.weeks] == ["2024-01-08..2024-01-14", "2024-01-01..2024-01-07"]
    assert [(d.line, d.kind) for d in doc.defects] == [(1, "line-too-long")]


def test_notes_skip_an_over_long_line_and_keep_the_papers_issue_20():
    text = "\n".join([
        "Models",
        "---",
        "### [A first paper](https://example.org/1)",
        "> Authors: A. Author",
        "* " + "[" * (MAX_LINE + 10),  # line 5
        "* what it found",
        "### [A second paper](https://example.org/2)",
    ]) + "\n"
    doc = parse_notes(text, AS_OF)
    first, second = doc.weeks[0].papers
    assert (first.title, first.authors, first.summary) == ("A first paper", "A. Author", "what it found")
    assert second.title == "A second paper"
    assert [(d.line, d.kind) for d in doc.defects] == [(5, "line-too-long")]
