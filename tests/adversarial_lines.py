"""Crafted hostile lines for each parser (issue #20): runs of what the parsers' patterns look for, of a given length.

Also the URLs paperbot writes into its logs from what a server sent (`redact`). Shared by
tests/test_parser_growth.py (time per character must not grow from 2k to 64k characters) and
bench/parse_adversarial.py (growth per doubling, and a hostile document for the daemon).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from bot.sources.fetch_http import redact
from bot.track.dates import find_range
from bot.track.digest_cache import parse_digest_incremental
from bot.track.parse_digest import parse_digest
from bot.track.parse_feed import plain_text
from bot.track.parse_notes import parse_notes

AS_OF = date(2024, 1, 10)
WEEK = "## Top ML Papers of the Week (Jan 1 - Jan 7) - 2024\n| **Paper** | **Links** |\n| --- | --- |\n"
NOTE = "### [A paper](https://example.org/a)\n> Authors: A. Author\n"


def _digest(text: str) -> object:
    return parse_digest(text, AS_OF)


def _digest_again(text: str) -> object:
    """The incremental parse (issue #28), reading the same text a second time from the sections of the first."""
    doc, sections = parse_digest_incremental(text, AS_OF)
    return parse_digest_incremental(text + "\n", AS_OF, sections)


def _notes(text: str) -> object:
    return parse_notes(text, AS_OF)


PARSERS: dict[str, Callable[[str], object]] = {
    "digest": _digest, "digest-again": _digest_again, "notes": _notes, "feed": plain_text, "dates": find_range,
    "redact": redact,  # what a hostile server's redirect or error becomes in a log line and the database
}


@dataclass(frozen=True)
class Case:
    parser: str
    name: str
    head: str  # the document before the line (a week, a notes section) and the line's start
    unit: str  # repeated to the line's length
    tail: str = ""

    def text(self, n: int) -> str:
        """The document whose crafted line is about `n` characters long."""
        body = self.unit * max(1, (n - len(self.head.rsplit("\n", 1)[-1]) - len(self.tail)) // len(self.unit))
        return self.head + body + self.tail

    @property
    def label(self) -> str:
        return f"{self.parser}:{self.name}"


LINK_CELL = {"spaces", "pipes", "escaped-pipes", "brackets", "link-starts", "link-ends", "link-spaced", "link-titled",
             "images", "urls"}


def _line_cases(parser: str, head: str) -> list[Case]:
    """What any line of a parser may hold: runs of each character the patterns look for."""
    return [
        Case(parser, "spaces", head + "a", " ", "a"),
        Case(parser, "hashes", head + "a ", "#", " a"),
        Case(parser, "stars", head + "a", "*", "a"),
        Case(parser, "star-space", head + "a", "* ", "a"),
        Case(parser, "pipes", head + "a", "|", "a"),
        Case(parser, "escaped-pipes", head + "a", "\\|", "a"),
        Case(parser, "brackets", head + "a", "[", "a"),
        Case(parser, "link-starts", head, "[a](", "a"),
        Case(parser, "link-ends", head + "[a", "](", "a"),
        Case(parser, "link-spaced", head + "[a](b", " ", "x"),
        Case(parser, "link-titled", head + '[a](b "', " ", "x"),
        Case(parser, "images", head, "![a](", "a"),
        Case(parser, "dots", head + "a", ".", "a"),
        Case(parser, "backticks", head + "a", "`", "a"),
        Case(parser, "date-words", head, "Jan 1 ", "x"),
        Case(parser, "date-spaces", head + "Jan 1-5", " ", "x"),
        Case(parser, "urls", head, "https://", "a"),
    ]


CASES: list[Case] = [
    # digest: headings at the top level, rows, list items and bullets inside a week
    Case("digest", "heading-spaces", "# a", " ", "a"),
    Case("digest", "heading-hashes", "# a ", "#", " a"),
    Case("digest", "heading-date-spaces", "## Top ML Papers of the Week (Jan 1-7", " ", "x"),
    Case("digest", "bold-line-spaces", "**a**", " ", "b"),
    Case("digest", "bold-line-stars", "**a", "*", " b"),
    Case("digest", "list-item-spaces", WEEK + "1.", " ", "x"),
    Case("digest", "sub-bullet-spaces", WEEK + "1. A paper\n  -", " ", "x"),
    *_line_cases("digest", WEEK + "| "),
    *[Case("digest", "links-cell-" + c.name, c.head, c.unit, c.tail + " |")
      for c in _line_cases("digest", WEEK + "| 1) **A paper** - a summary. | ")
      if c.name in LINK_CELL],
    # the incremental digest parse (#28): lines that look like headings to its search over the bytes, and rows
    Case("digest-again", "heading-spaces", "# a", " ", "a"),
    Case("digest-again", "high-bytes", "a\n", "é", "#"),
    Case("digest-again", "wide-spaces", "a\n", "\u3000", "#"),
    Case("digest-again", "bold-line-stars", "**a", "*", " b"),
    Case("digest-again", "row-pipes", WEEK + "| ", "|", " |"),
    # notes: `###` headings and their links, author lines, bullets
    Case("notes", "heading-spaces", "### a", " ", "a"),
    Case("notes", "heading-link-ends", "### [a", "](", "a"),
    Case("notes", "heading-link-spaces", "### [a](b", " ", "x)"),
    Case("notes", "author-spaces", NOTE + "* Author", " ", "x"),
    Case("notes", "author-prefix", NOTE + ">", " *", "x"),
    Case("notes", "bullet-spaces", NOTE + "*", " ", "x"),
    *_line_cases("notes", NOTE + "* "),
    # feed post-processing: entry titles and summaries (HTML)
    Case("feed", "tag-starts", "a", "<", "a"),
    Case("feed", "blank-lines", "a\n", " ", "a"),
    Case("feed", "breaks", "a", "<br", "a"),
    Case("feed", "spaces-tabs", "a", " \t", "a"),
    # dates: headings' date ranges
    Case("dates", "month-words", "", "Jan ", "x"),
    Case("dates", "day-spaces", "Jan 1", " ", "x"),
    Case("dates", "range-spaces", "Jan 1-5", " ", "x"),
    Case("dates", "range-dashes", "Jan 1 ", "- ", "x"),
    Case("dates", "digits", "Jan ", "1", "x"),
    # redact: URLs in messages (a redirect's Location, an error) lose their credentials and queries
    Case("redact", "letters", "", "a", "://x?y"),
    Case("redact", "schemes", "", "a://", "x"),
    Case("redact", "letters-digits", "", "1a", "x"),
    Case("redact", "separators", "http", "://", "?x"),
    Case("redact", "userinfo", "http://", "a:", "b"),
]
