"""The linear-time scanners (bot/track/lines.py) read every line exactly as the patterns they replace (issue #20).

The old patterns are kept here as the specification; hypothesis compares them with the scanners on short lines
made of the characters they care about (short, because the old patterns are what takes cubic time).
"""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.track import dates, lines
from bot.track.parse_feed import plain_text

OLD_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
OLD_BOLD_LINE = re.compile(r"^\s{0,3}\*{2,3}(.+?)\*{2,3}\s*:?\s*$")
OLD_MD_LINK = re.compile(r"\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
OLD_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]*)\s*\)")
OLD_URL_OK = re.compile(r"(https?://[^\s/$.?#][^\s]*\.[^\s]+|https?://localhost[^\s]*)", re.IGNORECASE)
OLD_TITLE_LINK = re.compile(r"^\[(.+)\]\(\s*<?([^)\s>]*)>?\s*\)\s*$")
OLD_AUTHORS = re.compile(r"^[>\s*\-]*\**\s*authors?\s*\**\s*:\s*\**\s*(.+)$", re.IGNORECASE)
OLD_BULLET = re.compile(r"^\s*(?:[*\-+]|\d+\.)\s+(.*)$")
OLD_LIST_ITEM = re.compile(r"^\s{0,3}(\d{1,3})[.)]\s+(.*)$")
OLD_SUB_BULLET = re.compile(r"^\s+[-*•]\s+(.*)$")
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DASH = r"\s*(?:-+|–|—|to|until)\s*"
OLD_RANGE = re.compile(
    rf"\b(?P<m1>{_MONTH})\s*(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s*(?P<y1>\d{{4}}))?{_DASH}"
    rf"(?:(?P<m2>{_MONTH})\s*)?(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s*(?P<y2>\d{{4}})\b)?"
    rf"(?:\s*\)?\s*(?:[-–—,]\s*)?\(?(?P<y3>\d{{4}})\b)?",
    re.IGNORECASE,
)


def old_plain_text(html_text: str) -> str:
    t = re.sub(r"<br\s*/?>|</p>", "\n", html_text or "", flags=re.IGNORECASE)
    t = html.unescape(re.sub(r"<[^>]+>", "", t))
    t = re.sub(r"[ \t]+", " ", t)
    return re.sub(r"\n\s*\n+", "\n", t).strip()


def line_of(*pieces: str, size: int = 24):
    """Lines (no newline) built from `pieces` and a little of anything else."""
    return st.lists(st.one_of(st.sampled_from(pieces), st.text(alphabet=" a*#\t\u00a0", max_size=2)),
                    max_size=size).map("".join)


HEADING = line_of(" ", "#", "##", "###", "a", "*", "**", "***", ":", "\t", "[", "](", ")", "x")
LINKS = line_of("[", "]", "(", ")", "](", "![", " ", '"', "<", ">", "a", "http://a.b", "\t", "x", "\\")
URLS = line_of("http://", "https://", "HTTP://", "localhost", "LocalHost", ".", "/", "$", "?", "#", " ", "a", "ſ")
AUTHORS = line_of(">", " ", "*", "-", "author", "Authors", "s", ":", "**", "a", "1.", "+")
DATES = line_of("Jan", "feb", "Sept", "may", " ", "1", "12", "2024", "-", "–", "—", ",", "(", ")", "to", "th",
                ".", "x", "until")
HTML = line_of("<", ">", "<br>", "<br/>", "</p>", "\n", " ", "\t", "a", "&amp;", "\r", "\u00a0")


@settings(max_examples=600, deadline=None)
@given(HEADING)
def test_headings_and_bold_lines_as_before_issue_20(line):
    m = OLD_ATX.match(line)
    assert lines.atx_heading(line) == ((len(m.group(1)), m.group(2)) if m else None)
    m = OLD_BOLD_LINE.match(line)
    assert lines.bold_line(line) == (m.group(1) if m else None)
    m = OLD_TITLE_LINK.match(line)
    assert lines.title_link(line) == ((m.group(1), m.group(2)) if m else None)


@settings(max_examples=600, deadline=None)
@given(LINKS)
def test_links_and_images_as_before_issue_20(line):
    old = [(m.start(), m.end(), m.group(1), m.group(2)) for m in OLD_MD_LINK.finditer(line)]
    assert [tuple(m) for m in lines.md_links(line)] == old
    assert list(lines.md_images(line)) == [(m.start(), m.end(), m.group(1)) for m in OLD_IMAGE.finditer(line)]
    m = OLD_TITLE_LINK.match(line)
    assert lines.title_link(line) == ((m.group(1), m.group(2)) if m else None)


@settings(max_examples=400, deadline=None)
@given(URLS)
def test_urls_as_before_issue_20(url):
    assert lines.is_url(url) == bool(OLD_URL_OK.fullmatch(url))


@settings(max_examples=400, deadline=None)
@given(AUTHORS)
def test_author_lines_and_bullets_as_before_issue_20(line):
    from bot.track import parse_digest, parse_notes

    m = OLD_AUTHORS.match(line)
    assert parse_notes._authors(line) == (m.group(1) if m else None)
    old, new = OLD_BULLET.match(line), parse_notes._BULLET.match(line)
    assert (new.group(1).lstrip() if new else None) == (old.group(1) if old else None)
    old, new = OLD_LIST_ITEM.match(line), parse_digest._LIST_ITEM.match(line)
    assert ((new.group(1), new.group(2).lstrip()) if new else None) == ((old.group(1), old.group(2)) if old else None)
    old, new = OLD_SUB_BULLET.match(line), parse_digest._SUB_BULLET.match(line)
    assert (new.group(1).lstrip() if new else None) == (old.group(1) if old else None)


@settings(max_examples=600, deadline=None)
@given(DATES)
def test_date_ranges_as_before_issue_20(text):
    old, new = OLD_RANGE.search(text), dates._RANGE.search(text)
    assert (new.span(), new.groupdict()) == (old.span(), old.groupdict()) if old else new is None


@settings(max_examples=400, deadline=None)
@given(HTML)
def test_feed_text_as_before_issue_20(html_text):
    assert plain_text(html_text) == old_plain_text(html_text)


def test_hand_picked_lines_issue_20():
    """The forms the real documents have, and the odd corners of the old patterns."""
    assert lines.atx_heading("## Top ML Papers of the Week (Jan 1 - Jan 8) ##") == (
        2, "Top ML Papers of the Week (Jan 1 - Jan 8)")
    assert lines.atx_heading("####### seven") is None and lines.atx_heading("    # code") is None
    bold = "**Top ML Papers of the Week (Jan 1 - Jan 8)**:"
    assert lines.bold_line(bold) == "Top ML Papers of the Week (Jan 1 - Jan 8)"
    assert lines.bold_line("*****") == "*"
    text = '| [Paper](https://arxiv.org/abs/1) , [Tweet]( <https://x.com/a> "t") | [a]( "only a title")'
    assert [(m.label, m.url) for m in lines.md_links(text)] == [
        ("Paper", "https://arxiv.org/abs/1"), ("Tweet", "https://x.com/a"), ("a", "")]
    assert lines.title_link("[A [nested] title](https://a.org/x)") == ("A [nested] title", "https://a.org/x")
    assert lines.is_url("https://arxiv.org/abs/2301.1") and not lines.is_url("https://arxiv")
    assert lines.is_url("http://localhost:8000/x") and not lines.is_url("https://a.org/x y")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 9))
def test_chunked_decoding_as_before_issue_20(data, chunk):
    data = data.replace(b"\xff", "é€😀".encode())  # whole and cut multi-byte characters, and invalid bytes
    assert lines.decode(data, chunk) == data.decode("utf-8", errors="replace")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab \n\r\x0b\x0c\x1c\x85\u2028", max_size=40), st.integers(1, 9))
def test_chunked_lines_as_before_issue_20(text, chunk):
    assert list(lines.split_lines(text, chunk)) == text.splitlines()


OLD_QUERY = re.compile(r"([a-z][a-z0-9+.-]*://[^\s?#]*)\?[^\s#]*", re.IGNORECASE)
LOGGED = line_of("http", "s", "://", "?", "#", "@", " ", "a", "1", "+", ".", "-", "/", "ſ", "K", "token=x", ":",
                 size=30)


@settings(max_examples=800, deadline=None)
@given(LOGGED)
def test_redacted_query_strings_as_before_issue_20(text):
    from bot.sources import fetch_http

    assert fetch_http._drop_queries(text) == OLD_QUERY.sub(r"\1?…", text)


def old_check_utf8(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"{name}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})"
    return f"{name}: binary data, not a text document" if "\0" in text else ""


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 9))
def test_utf8_checked_in_parts_as_before_issue_20(data, chunk):
    from bot.sources.base import SourceError
    from bot.sources.poll import _check_utf8

    data = data.replace(b"\xfe", "é€😀".encode())
    try:
        _check_utf8("src", data, chunk)
        said = ""
    except SourceError as e:
        said = str(e)
    assert said == old_check_utf8("src", data)
