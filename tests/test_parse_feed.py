"""The feed parser: RSS/Atom bytes through feedparser, entries grouped into ISO-week editions."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import FIXTURES, shared_path

from bot.track.parse_feed import parse_feed
from bot.track.parsing import detect_format, parse_document


def test_rss_entries_with_fallbacks():
    doc = parse_feed((FIXTURES / "feed_rss2.xml").read_bytes(), date(2023, 3, 15), url="https://example.org/feed.xml")
    assert [w.key for w in doc.weeks] == ["2023-W11", "2023-W10", "2023-W09"]
    by_title = {p.title: p for w in doc.weeks for p in w.papers}
    one = by_title["Paper One & Friends"]
    assert one.uid == "https://example.org/p/1"
    assert one.summary == "First summary."  # HTML becomes text
    assert one.published == "2023-03-06T10:00:00+00:00"
    two = by_title["Paper Two"]
    assert two.links[0].url == "https://example.org/p/2"  # relative link resolved against the feed's URL
    assert two.uid == "https://example.org/p/2"  # no guid: the link
    untitled = by_title["(untitled)"]
    assert untitled.published is None and len(untitled.uid) == 16  # no id, no link: a content hash
    assert [d.kind for d in doc.defects] == ["untitled-entry"]


def test_atom_and_detection():
    data = (FIXTURES / "feed_atom.xml").read_bytes()
    assert detect_format(data) == "feed"
    (week,) = parse_document(data, date(2023, 3, 15)).weeks
    assert week.papers[0].uid == "urn:example:atom:1"
    assert week.key == "2023-W10"


@pytest.mark.parametrize("data", [b"", b"not xml at all", b"<rss><channel><item>", b"\xff\xfe\x00garbage"])
def test_not_a_feed_is_a_defect_not_an_exception(data):
    doc = parse_document(data, date(2023, 3, 15), fmt="feed")
    assert doc.weeks == ()
    assert doc.defects and doc.defects[0].kind == "not-a-feed"


@pytest.mark.parametrize("name,entries", [
    ("node-feedparser__rss2sample.xml", 4), ("node-feedparser__intertwingly.atom", 20),
    ("rss-parser__rss-1.rss", None), ("rss-parser__encoding.rss", None),
])
def test_real_feeds(name, entries):
    data = shared_path("corpus", "feeds", name).read_bytes()
    assert detect_format(data) == "feed"
    doc = parse_feed(data, date(2026, 11, 22), url="https://example.org/feed")
    papers = [p for w in doc.weeks for p in w.papers]
    assert papers and all(p.uid for p in papers)
    if entries is not None:
        assert len(papers) == entries
    if name == "rss-parser__encoding.rss":  # ISO-8859-1 decoded, not mangled
        assert any("ã" in p.title for p in papers)
