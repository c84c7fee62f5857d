"""The incremental parse of a digest (issue #28): a new version re-reads only the weeks whose text changed. Pure.

A poll of a README whose newest week gained a row would otherwise read all its weeks again. Here the sections of
the last version parsed are kept with their bytes, and passed in to the next parse, which returns those of the new
version in turn: the caller (a poll, a replay) holds them, nothing here does. A section is looked up by its
heading line and its length, and taken only if its bytes are the same, compared whole where they lie in the new
version (no copy, no hash to compute over the megabyte: a hash could only say "probably the same").

What a section's parse depends on beyond its text is the line its heading is on: a section found at another
line is reused with its papers' and defects' lines moved (unless it holds an over-long line, whose stand-in in
the week's text hash names the line: it is read again). Year inference looks across the sections, so it is done
again over all of them every time, exactly as the full parse does (`assemble`).

Only what changed is decoded: the sections are found in the bytes. A line can start or end a week only if its
first character after up to three spaces is `#` or `*`; a search over the bytes finds every such line (and a
few more, which `boundary` then turns down), and only those lines are decoded and read. UTF-8 never hides a
`\n` inside another character, and decoding with replacement never swallows one, so a section's bytes decode
to exactly its part of the decoded document. A text with line breaks other than `\n` (which `str.splitlines`
also splits at) takes the full parse, and keeps nothing. `parse_digest` stays the reference:
tests/test_incremental_parse.py checks the two agree on every version of the corpus and on generated edits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from bot.track.digest_section import Parsed, parse_section, too_long_defect
from bot.track.lines import CHUNK, MAX_LINE, decode, too_long
from bot.track.model import Defect, Document
from bot.track.parse_digest import Boundary, assemble, boundary, parse_digest


@dataclass(frozen=True)
class Sections:
    """What one version's parse found, handed to the next: each week's section by its bytes, and what each line
    that looked like a heading did (a week's heading, another heading, or nothing)."""

    parsed: Mapping[tuple[bytes, int], tuple[bytes, Parsed]] = field(default_factory=dict)  # (heading, length)
    heads: Mapping[bytes, Boundary | None] = field(default_factory=dict)


EMPTY = Sections()  # before the first parse

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
    added moves down a line: a thousand papers)."""
    out = []
    new, assign = object.__new__, object.__setattr__
    for x in values:
        fields = x.__dict__.copy()
        fields["line"] += by
        moved = new(type(x))
        assign(moved, "__dict__", fields)
        out.append(moved)
    return tuple(out)


def _moved(p: Parsed, line: int) -> Parsed:
    """The same section found at another line: its papers' and defects' lines moved with it."""
    by = line - p.line
    return Parsed(line, p.title, p.rng, _shifted(p.papers, by), _shifted(p.defects, by), p.text_hash, p.long_lines)


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


def _candidates(data: bytes) -> Iterator[int]:
    """Where each line that may be a heading starts, a megabyte of search at a time (`re` holds the GIL)."""
    yield 0
    n = len(data)
    for start in range(0, n, CHUNK):
        for m in _CANDIDATE.finditer(data, start, min(n, start + CHUNK + 16)):
            if m.start() < start + CHUNK:
                yield m.start() + 1


def _marks(data: bytes, previous: Sections,
           heads: dict[bytes, Boundary | None]) -> list[tuple[int, int, Boundary, bytes]]:
    """(position, line number, what it does, the line) of every line that starts or ends a week, in order. A
    heading line seen in the last version is not read again (`heads`, filled for the next)."""
    marks: list[tuple[int, int, Boundary, bytes]] = []
    line, at = 1, 0
    for pos in _candidates(data):
        line += data.count(b"\n", at, pos)
        at = pos
        end = data.find(b"\n", pos)
        head = data[pos:] if end == -1 else data[pos:end]
        if head in previous.heads:
            b = previous.heads[head]
            if b is not None and b.defect is not None and b.defect.line != line:
                b = Boundary(b.htext, None, Defect(line, b.defect.kind, b.defect.text))
        else:
            raw = head.decode("utf-8", errors="replace")
            if too_long(raw):
                continue  # not read as a heading; a week's line or, between weeks, a defect found below
            b = boundary(raw, line)
        heads[head] = b
        if b is not None:
            marks.append((pos, line, b, head))
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
    found: dict[tuple[bytes, int], tuple[bytes, Parsed]] = {}
    outside: list[tuple[int, Defect]] = []
    gap_start: int | None = 0  # the text before the first week, and after any heading that ends a week
    gap_line = 1
    for i, (pos, line, b, head) in enumerate(marks):
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
        key = (head, end - pos)
        chunk, p = previous.parsed.get(key) or found.get(key) or (b"", None)
        if p is not None and not data.startswith(chunk, pos):
            p = None  # the same heading and length, another text
        if p is not None and p.line != line:
            p = None if p.long_lines else _moved(p, line)
        if p is None:
            chunk = data[pos:end]
            text = decode(chunk)
            if not _only_newlines(text):
                return parse_digest(decode(data), as_of), EMPTY
            p = parse_section(_lines(text), line, b.htext, b.rng)
        found[key] = (chunk, p)
        sections.append(p)
    if gap_start is not None and not _outside(data[gap_start:], gap_line, outside):
        return parse_digest(decode(data), as_of), EMPTY
    outside.sort(key=lambda x: x[0])
    return assemble(sections, [d for _, d in outside], as_of), Sections(found, heads)
