"""Generated markdown never crashes the parsers (hypothesis)."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.track.parse_digest import parse_digest
from bot.track.parse_notes import parse_notes
from bot.track.parsing import parse_document

PIECES = ["## ", "### ", "**", "|", " | ", "-", "---", "\n", "1) ", "5. ", "(2) ", "[Paper](", ")", "](xxx)",
          "https://example.org/a", "XXX", "Top ML Papers of the Week (", "Feb 20-26", "Dec 30 - Jan 5", "- 2025",
          "Jan 31-Feb 30", " ", "<br>●", "![img](", ":", "> *   Author: ", "====", "\t", "\\|", "Sept 9 - 99"]

markdown = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=80).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown, st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 1, 1)))
def test_digest_and_notes_never_crash(text, as_of):
    doc = parse_digest(text, as_of)
    for w in doc.weeks:
        assert w.first_day <= w.last_day
    parse_notes(text, as_of)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_in_any_format(data):
    for fmt in ("auto", "digest", "notes", "feed"):
        parse_document(data, date(2024, 1, 1), fmt)
