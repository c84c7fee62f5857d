"""The incremental parse of a digest (issue #28): a new version re-reads only the weeks whose text changed. Pure.

A poll of a README whose newest week gained a row would otherwise read all its weeks again. Here the sections of
the last version parsed are kept with their bytes, and passed in to the next parse, which returns those of the new
version in turn: the caller (a poll, a replay) holds them, nothing here does. A section is looked up by its
heading line, and taken only if its bytes are the same, compared whole where they lie in the new version, and
the week ends where it ended (no copy, and no hash to compute over the megabyte: a hash only says "probably").
Its lines are then not searched for headings either: they were none before.

What a section's parse depends on beyond its text is the line its heading is on: a section found at another
line is reused with its papers' and defects' lines moved (unless it holds an over-long line, whose stand-in in
the week's text hash names the line: it is read again). Year inference looks across the sections, so it is done
again over all of them, exactly as the full parse does (`place`), whenever any week's range was read again or
the day the version is read as of changed; otherwise the ranges are the very ones placed last time, and so are
their years.

Only what changed is decoded: the sections are found in the bytes. A line can start or end a week only if its
first character after up to three spaces is `#` or `*`; a search over the bytes finds every such line (and a
few more, which `boundary` then turns down), and only those lines are decoded and read. UTF-8 never hides a
`\n` inside another character, and decoding with replacement never swallows one, so a section's bytes decode
to exactly its part of the decoded document. A text with line breaks other than `\n` (which `str.splitlines`
also splits at) takes the full parse, and keeps nothing. `parse_digest` stays the reference:
tests/test_incremental_parse.py checks the two agree on every version of the corpus and on generated edits.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import repeat

from bot.track.dates import DateRange
from bot.track.digest_section import Parsed, parse_section, too_long_defect
from bot.track.lines import CHUNK, MAX_LINE, decode, too_long
from bot.track.model import Defect, Document, Week
from bot.track.parse_digest import Boundary, Placed, assemble, boundary, parse_digest, place

# A week's section as kept: its bytes, its parse, how many lines it has, and the week made of it (whose papers'
# fingerprint, once a diff asked for it, holds for the same papers moved to other lines).
_Kept = tuple[bytes, Parsed, int, Week | None]


@dataclass(frozen=True)
class Sections:
    """What one version's parse found, handed to the next: each week's section by its bytes, and what each line
    that looked like a heading did (a week's heading, another heading, or nothing)."""

    parsed: Mapping[bytes, list[_Kept]] = field(default_factory=dict)  # by the heading's line
    heads: Mapping[bytes, Boundary | None] = field(default_factory=dict)
    # The years placed, and for which ranges (the very objects) and day: the same again need no placing.
    placed: tuple[date | None, tuple[DateRange, ...], Placed] = (None, (), [])


EMPTY = Sections()  # before the first parse
_UNSEEN = Boundary("", None)  # a line the last version did not have
_FIELDS = operator.attrgetter("__dict__")

# A line that may start or end a week: `\n`, up to three whitespace characters (ASCII, or up to three bytes each
# of a wider one: any byte over 0x7f lets a candidate through), then `#` or `*`. Two sets with nothing in common.
_CANDIDATE = re.compile(rb"\n[ \t\x0b\x0c\x1c-\x1f\x80-\xff]{0,9}[#*]")
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_OTHER_BREAK_BYTES = tuple(b.encode() for b in _OTHER_BREAKS)


def _only_newlines(text: str) -> bool:
    """Whether `text.splitlines()` equals `text.split("\\n")` up to a last empty line: no other line breaks."""
    return not any(b in text for b in _OTHER_BREAKS)


def _shifted(values: tuple, by: int) -> tuple:
    """Frozen values (papers, defects) with `line` moved by `by`: `dataclasses.replace(x, line=x.line + by)`
    without the frozen `__init__` setting field by field, a copy of each one's fields (every week below a row
    added moves down a line: a thousand papers). The loops that can run in C do (`map`)."""
    if not values:
        return values
    fields = list(map(dict.copy, map(_FIELDS, values)))
    for f in fields:
        f["line"] += by
    moved = list(map(object.__new__, repeat(type(values[0]), len(fields))))  # all papers, or all defects
    for _ in map(object.__setattr__, moved, repeat("__dict__"), fields):
        pass
    return tuple(moved)


def _moved(p: Parsed, line: int) -> Parsed:
    """The same section found at another line: its papers' and defects' lines moved with it (its fields copied,
    as `_shifted` does, not set one by one: a hundred weeks move at once)."""
    by = line - p.line
    fields = p.__dict__.copy()
    fields.update(line=line, papers=_shifted(p.papers, by), defects=_shifted(p.defects, by))
    moved = object.__new__(Parsed)
    object.__setattr__(moved, "__dict__", fields)
    return moved


def _lines(chunk: str) -> list[str]:
    """A slice of the text cut at line starts → its lines, as `splitlines` gives them."""
    parts = chunk.split("\n")
    if chunk.endswith("\n"):
        parts.pop()
    return parts


def _outside(chunk: bytes, first_line: int, out: list[tuple[int, Defect]]) -> bool:
    """The over-long lines between weeks, each a defect of the document (nothing else there counts); False if
    the text there has a line break other than `\\n`."""
    if any(b in chunk for b in _OTHER_BREAK_BYTES):
        return False
    if len(chunk) <= MAX_LINE:  # as many characters at most as bytes
        return True
    for i, raw in enumerate(_lines(decode(chunk))):
        if too_long(raw):
            out.append((first_line + i, too_long_defect(raw, first_line + i)))
    return True


def _next_candidate(data: bytes, start: int) -> int:
    """Where the first line that may be a heading starts after the `\n` at or after `start`; -1 if none. A
    megabyte of search at a time: `re` holds the GIL while it searches."""
    n = len(data)
    while start < n:
        m = _CANDIDATE.search(data, start, min(n, start + CHUNK))
        if m:
            return m.start() + 1
        start += CHUNK - 16  # a match cut off at the window's end is found whole in the next
    return -1


def _known(previous: Sections, head: bytes, data: bytes, pos: int) -> _Kept | None:
    """The last version's section under this heading, if its bytes are there again whole at `pos`."""
    for known in previous.parsed.get(head, ()):
        chunk = known[0]
        if (chunk.endswith(b"\n") or pos + len(chunk) == len(data)) and data.startswith(chunk, pos):
            return known
    return None


def _marks(data: bytes, previous: Sections,
           heads: dict[bytes, Boundary | None]) -> list[tuple[int, int, Boundary, bytes, _Kept | None]]:
    """(position, line number, what it does, the line) of every line that starts or ends a week, in order. A
    heading line seen in the last version is not read again (`heads`, filled for the next); a week found whole
    as it was is skipped (none of its lines but the first starts or ends a week: they did not before)."""
    marks: list[tuple[int, int, Boundary, bytes, _Kept | None]] = []
    line, at, pos = 1, 0, 0
    while pos != -1:
        line += data.count(b"\n", at, pos)
        at = pos
        end = data.find(b"\n", pos)
        head = data[pos:] if end == -1 else data[pos:end]
        b = previous.heads.get(head, _UNSEEN)
        if b is not _UNSEEN:
            if b is not None and b.defect is not None and b.defect.line != line:
                b = Boundary(b.htext, None, Defect(line, b.defect.kind, b.defect.text))
        else:
            raw = head.decode("utf-8", errors="replace")
            b = None if too_long(raw) else boundary(raw, line)
            # An over-long line is not read as a heading; a week's line or, between weeks, a defect found below.
        heads[head] = b
        if b is not None:
            known = _known(previous, head, data, pos) if b.rng is not None else None
            marks.append((pos, line, b, head, known))
            if known is not None:  # its lines are what they were: go on after its last
                at, line = pos + len(known[0]), line + known[2]
                pos = at - 1
        pos = _next_candidate(data, pos)
    return marks


def parse_digest_incremental(data: bytes | str, as_of: date,
                             previous: Sections = EMPTY) -> tuple[Document, Sections]:
    """`parse_digest(data decoded, as_of)`, reading again only the sections not in `previous` (what the last
    call returned; `EMPTY` at first). Returns the document and this version's sections, for the next call."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no bytes stand for it
            return parse_digest(data, as_of), EMPTY
    heads: dict[bytes, Boundary | None] = {}
    marks = _marks(data, previous, heads)
    sections: list[Parsed] = []
    kept: list[tuple[bytes, bytes, Parsed, int, Week | None]] = []  # (heading, bytes, parse, lines, old week)
    outside: list[tuple[int, Defect]] = []
    gap_start: int | None = 0  # the text before the first week, and after any heading that ends a week
    gap_line = 1
    for i, (pos, line, b, head, known) in enumerate(marks):
        if gap_start is not None:
            if not _outside(data[gap_start:pos], gap_line, outside):
                return parse_digest(decode(data), as_of), EMPTY
            gap_start = None
        if b.defect is not None:
            outside.append((line, b.defect))
        if b.rng is None:
            gap_start, gap_line = pos, line
            continue
        end = marks[i + 1][0] if i + 1 < len(marks) else len(data)
        if known is not None and len(known[0]) != end - pos:
            known = None  # the week goes on after what it was: a line added at its end
        old: Week | None = None
        if known is not None:
            chunk, p, lines, old = known
            if p.line != line:
                p = _moved(p, line) if not p.long_lines else parse_section(_lines(decode(chunk)), line, b.htext, b.rng)
        else:
            chunk = data[pos:end]
            text = decode(chunk)
            if not _only_newlines(text):
                return parse_digest(decode(data), as_of), EMPTY
            p, lines = parse_section(_lines(text), line, b.htext, b.rng), chunk.count(b"\n")
        kept.append((head, chunk, p, lines, old))
        sections.append(p)
    if gap_start is not None and not _outside(data[gap_start:], gap_line, outside):
        return parse_digest(decode(data), as_of), EMPTY
    outside.sort(key=lambda x: x[0])
    ranges = tuple(p.rng for p in sections)
    day, before, placed = previous.placed
    if not (day == as_of and len(before) == len(ranges) and all(map(operator.is_, before, ranges))):
        placed = place(sections, as_of)  # a range read again, or another day: year inference over all of them
    doc = assemble(sections, [d for _, d in outside], as_of, placed)
    return doc, Sections(_kept_weeks(kept, placed, doc), heads, (as_of, ranges, placed))


def _kept_weeks(kept: list[tuple[bytes, bytes, Parsed, int, Week | None]], placed: Placed,
                doc: Document) -> dict[bytes, list[_Kept]]:
    """This version's sections for the next parse, each with its week; a week whose papers are those of the week
    it was made from last time takes that week's fingerprint, if a diff computed it (it does not hold lines)."""
    found: dict[bytes, list[_Kept]] = {}
    weeks = iter(doc.weeks)
    for (head, chunk, p, lines, old), at in zip(kept, placed, strict=True):
        week = next(weeks) if at is not None else None
        if week is not None and old is not None and "fingerprint" in old.__dict__:
            week.__dict__["fingerprint"] = old.__dict__["fingerprint"]  # where `cached_property` keeps it
        found.setdefault(head, []).append((chunk, p, lines, week))
    return found
