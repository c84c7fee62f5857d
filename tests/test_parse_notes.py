"""The notes-page parser: each ### section is a paper."""

from __future__ import annotations

from datetime import date

from conftest import FIXTURES, shared_path

from bot.track.parse_notes import parse_notes
from bot.track.parsing import detect_format


def test_fixture_sections_become_papers():
    doc = parse_notes((FIXTURES / "notes.md").read_text(), date(2023, 3, 15))
    (week,) = doc.weeks
    assert week.key == "2023-W11"
    titles = [p.title for p in week.papers]
    assert titles == ["Seeing Through Fog", "Colour Constancy Revisited", "An Unlinked Paper About Grammar",
                      "Bits and Bytes"]
    fog, colour, unlinked, _ = week.papers
    assert fog.links[0].url == "https://example.org/fog.pdf"
    assert fog.authors == "A. Writer"
    assert fog.summary.splitlines() == ["Removes fog from photos with a small network.", "Works on video too."]
    assert colour.authors == "B. Painter, C. Mixer"
    assert unlinked.links == ()
    assert [(d.kind, d.line) for d in week.defects] == [("unlinked", 28)]
    # Topic headings (underlined, or ##) are never papers.
    assert "Vision" not in titles and "Misc" not in titles


def test_notes_detected():
    assert detect_format((FIXTURES / "notes.md").read_bytes()) == "notes"


def test_seed_003_has_37_papers_and_reports_the_unlinked_one():
    text = next(shared_path("seeds").glob("003_*")).read_text()
    assert detect_format(text.encode()) == "notes"
    (week,) = parse_notes(text, date(2026, 11, 22)).weeks
    assert len(week.papers) == 37
    unlinked = [d for d in week.defects if d.kind == "unlinked"]
    assert len(unlinked) == 1 and "Scaling Laws" in unlinked[0].text
    assert all(p.uid for p in week.papers) and len({p.uid for p in week.papers}) == 37
