"""Digest README → weeks of papers: the full parse, every line read, and the assembly both parses share.

A week starts at a heading (`##`, `###`, or a line that is only bold text) holding a date range, and ends at
the next heading. This module finds those sections (`scan`), has bot/track/digest_section.py read each one, and
gives yearless weeks their years across the sections (`assemble`). It is the reference the incremental parse
(bot/track/digest_cache.py, issue #28) is checked against. A line is a heading only if its first character
after up to three spaces is `#` or `*`: every other line goes to its week, or nowhere, without a pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from bot.track.dates import DateRange, find_range, resolve_years, week_key
from bot.track.digest_section import (  # noqa: F401  (re-exported: what the parser's users and tests name)
    _LIST_ITEM,
    _SUB_BULLET,
    Parsed,
    clean_title,
    heading_text,
    parse_release_date,
    parse_section,
    too_long_defect,
)
from bot.track.lines import split_lines, too_long
from bot.track.model import Defect, Document, Week

_UNDATED = re.compile(r"papers of the week", re.IGNORECASE)


@dataclass
class Block:
    """A week's lines as the scan found them: the heading's line number, text and range, and its raw lines."""

    line: int
    htext: str
    rng: DateRange
    lines: list[str]


@dataclass(frozen=True)
class Boundary:
    """What a heading line does: starts a week (`rng` set), or ends one (any other `#` heading)."""

    htext: str
    rng: DateRange | None
    defect: Defect | None = None  # an `undated-heading`: a week's heading whose range cannot be read


def boundary(raw: str, line_no: int) -> Boundary | None:
    """What the line does to the sections, if anything: None for a line inside (or between) weeks."""
    first = raw[:4].lstrip()[:1]
    if first != "#" and first != "*":
        return None
    head = heading_text(raw.rstrip())
    if head is None:
        return None
    htext, is_atx = head
    rng = find_range(htext)
    if rng is not None:
        return Boundary(htext, rng)
    if not is_atx:
        return None  # a bold line without a range is text of its week
    # Any other heading ends the week: a year heading, an index, a footer section.
    if "(" in htext and _UNDATED.search(htext):
        return Boundary(htext, None, Defect(line_no, "undated-heading", htext[:80]))
    return Boundary(htext, None)


def scan(text: str) -> tuple[list[Block], list[Defect]]:
    """Every line: the weeks' sections, and the defects outside any week (in line order)."""
    blocks: list[Block] = []
    doc_defects: list[Defect] = []
    cur: Block | None = None
    for line_no, raw in enumerate(split_lines(text), 1):
        if too_long(raw):
            if cur is None:
                doc_defects.append(too_long_defect(raw, line_no))
            else:
                cur.lines.append(raw)
            continue
        b = boundary(raw, line_no)
        if b is not None:
            if b.rng is not None:
                cur = Block(line_no, b.htext, b.rng, [raw])
                blocks.append(cur)
                continue
            if b.defect is not None:
                doc_defects.append(b.defect)
            cur = None
            continue
        if cur is not None:
            cur.lines.append(raw)
    return blocks, doc_defects


Placed = list[tuple[tuple[date, date], str] | None]  # each section's first and last day and week key, if any


def place(sections: list[Parsed], as_of: date) -> Placed:
    """Each section's days and key: years placed across all of them (`as_of` places yearless weeks when nothing
    else can); None for a range that fits no year."""
    spans = resolve_years([s.rng for s in sections], as_of)
    return [(span, week_key(*span)) if span is not None else None for span in spans]


def _week(fields: dict) -> Week:
    """`Week(**fields)`, every field given, without the frozen `__init__` setting them one by one: a poll that
    changed one week makes the other hundred again (issue #28)."""
    week = object.__new__(Week)
    object.__setattr__(week, "__dict__", fields)
    return week


def assemble(sections: list[Parsed], doc_defects: list[Defect], as_of: date, placed: Placed | None = None) -> Document:
    """The document from its parsed sections, placed in their years (`place`, unless the caller knows them), a
    section whose range fits no year reported as `bad-date`."""
    doc_defects = list(doc_defects)
    weeks: list[Week] = []
    for sec, at in zip(sections, place(sections, as_of) if placed is None else placed, strict=True):
        if at is None:
            doc_defects.append(Defect(sec.line, "bad-date", sec.title[:80]))
            continue
        (first, last), key = at
        weeks.append(_week({"key": key, "title": sec.title, "papers": sec.papers, "defects": sec.defects,
                            "line": sec.line, "first_day": first, "last_day": last, "text_hash": sec.text_hash}))
    return Document(format="digest", weeks=tuple(weeks), defects=tuple(doc_defects))


def parse_digest(text: str, as_of: date) -> Document:
    """Parse one version of a digest README, every line of it. `as_of` places yearless weeks when nothing
    else can."""
    blocks, doc_defects = scan(text)
    sections = [parse_section(b.lines, b.line, b.htext, b.rng) for b in blocks]
    return assemble(sections, doc_defects, as_of)
