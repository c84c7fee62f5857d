"""A digest row's paper cell → the paper's number, title and summary, as the curator wrote them. Pure.

Why its own module: every channel shows these titles, so a number left in a title (`1). LLMs as …`) or a title
that swallowed its summary (`HuatuoGPT-o1 - presents a novel approach…`) reaches every reader (issue #20).
The forms found in the real digests:

- numbering `1)`, `1).`, `1.)`, `(1)`, `1.`, outside the bold (`1) **Title**`) or inside it (`**1). Title**`,
  `**1).**  **Title**`); a number that is part of the title (`1.58-bit FLUX`, `3D Gaussian …`) is not numbering;
- a bold title, the separator after it or inside it (`**Title** - summary`, `**Title -** summary`,
  `**Title - a** short survey`, `**Title**- summary`);
- a plain title ended by two spaces (`Title  Introduces …`), by ` - ` before a lower-case summary
  (`1.58-bit FLUX - presents …`), or by nothing but a space before the summary's opening words
  (`… in LLMs Introduces a unified …`, `… Workflow Graphs This paper presents …`);
- the oldest rows, a sentence with no name in it: its first sentence stands in for a title and the row is
  reported as an `untitled` defect (a title is never empty, never only a number).

Everything here scans left to right with fixed-width patterns: no two adjacent quantifiers match the same
characters, so the time is linear in the length of the cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.track.model import Defect

TITLE_MAX = 200  # a separator further into the cell than this is not the end of a title
UNTITLED_WORDS = 10  # a first sentence longer than this, with no separator before it, is a description

_DASH_SEP = re.compile(r"\s(?:--?|–|—)(?:\s|$)")  # " - ", " -- ", " – ", " — "
_LEAD = re.compile(  # the opening words of a summary written straight after a title, with no separator
    r"\s(?:Introduces|Presents|Proposes|Investigates|Explores|Discusses|Describes|Develops|Demonstrates|"
    r"Evaluates|Examines|Provides|Releases|Surveys|Reviews|Studies|Shows|Argues|"
    r"This (?:paper|work|study|survey|report|article)|The authors|Researchers)\s[a-z]"
)
_SENTENCE_END = re.compile(r"[.;:](?:\s|$)")
_LEADING_SEP = re.compile(r"(?:--?|–|—|:)\s?")  # at the start of a summary, after the title's bold closed
_TAGS = re.compile(r"<br\s?/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]{2,}|\t")  # each run to one space; a lone space is left as it is


@dataclass(frozen=True)
class Head:
    """What a paper cell says: its number (None if unnumbered), the numbering's style, title and summary."""

    number: int | None
    marker: str  # "N)", "N).", "N.)", "(N)", "N." ("" if unnumbered): the style a week should keep
    title: str
    summary: str
    defects: tuple[Defect, ...] = ()
    marked: bool = True  # the title was set off by markup (bold), not found by where the summary seemed to start


def strip_md(text: str) -> str:
    """Cell text as a reader sees it: `<br>` as a line break, no bold, no escaped pipes, single spaces.

    Each step runs only where it can change something (a tag needs `<`, a run of spaces two of them): a summary
    is most of a row (issue #28)."""
    if "<" in text:
        text = _TAGS.sub("\n", text)
    text = text.strip().strip("-–—:").strip()
    text = text.replace("**", "").replace("\\|", "|")
    if "  " in text or "\t" in text:
        text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = "\n".join(part.strip() for part in text.split("\n"))
    return text.strip()


def _title_text(text: str) -> str:
    """A title as a reader sees it: `strip_md`, and no stray emphasis or separator around it."""
    return strip_md(text).strip("*_").strip().rstrip("-–—:").strip()


def split_number(cell: str) -> tuple[int | None, str, str]:
    """(number, marker style, the cell without it). The bold may wrap the number alone or number and title."""
    s = cell.lstrip()
    em = 0
    while em < len(s) and em < 3 and s[em] in "*_":
        em += 1
    opening = s[:em]
    i = em
    while i < len(s) and s[i] == " ":
        i += 1
    paren = i < len(s) and s[i] == "("
    if paren:
        i += 1
    start = i
    while i < len(s) and "0" <= s[i] <= "9" and i - start < 4:
        i += 1
    if not 1 <= i - start <= 3:
        return None, "", cell
    number = int(s[start:i])
    while i < len(s) and s[i] == " " and i + 1 < len(s) and s[i + 1] in ".)":
        i += 1  # "1 )" as written by hand
    nxt = s[i : i + 1]
    if paren:
        if nxt != ")":
            return None, "", cell
        marker, i = "(N)", i + 1
    elif nxt == ")":
        marker, i = "N)", i + 1
    elif nxt == ".":
        marker, i = "N.", i + 1
    else:
        return None, "", cell
    if (marker, s[i : i + 1]) in (("N)", "."), ("N.", ")")):
        marker, i = marker + s[i], i + 1  # "1)." and "1.)"
    if marker == "N." and i < len(s) and not (s[i].isspace() or s[i] in "*_"):
        return None, "", cell  # "1.58-bit FLUX": the number is the title's
    rest = s[i:].lstrip(" ")
    if opening and rest.startswith(opening):
        rest = rest[em:].lstrip(" ")  # "**1).**  **Title**": the bold held the number alone
    elif opening:
        rest = opening + rest  # "**1). Title**": the bold goes on around the title
    return number, marker, rest


def _bold_title(s: str, line: int, defects: list[Defect]) -> tuple[str, str]:
    """`**Title** - summary` and its variants; an unbalanced bold is reported and split at the first separator."""
    k = 0
    while k < len(s) and k < 3 and s[k] == "*":
        k += 1
    end = s.find("**", k)
    closing = 2
    if k == 1 and end == -1:
        end, closing = s.find("*", 1), 1
    if s.count("**") % 2:
        defects.append(Defect(line, "unbalanced-bold", s[:80]))
        # Prefer the separator after the opening bold: "**A**: B** - summary" → title "A: B".
        sep = _DASH_SEP.search(s)
        if sep:
            return _title_text(s[: sep.start()]), strip_md(s[sep.end() :])
    if end == -1:
        return _title_text(s), ""
    inner, rest = s[k:end], s[end + closing :].lstrip("*")
    # A separator inside the bold: "**Title -** presents …", "**Title - a** short survey …"; not "… - Part 2".
    last = None
    for m in _DASH_SEP.finditer(inner):
        last = m
    if last is not None:
        after = inner[last.end() :].strip()
        if not after or after[0].islower():
            return _title_text(inner[: last.start()]), strip_md(after + " " + rest.lstrip())
    rest = rest.lstrip()
    m = _LEADING_SEP.match(rest)
    if m:
        rest = rest[m.end() :]
    return _title_text(inner), strip_md(rest)


def _first_dash(s: str, lower_only: bool) -> re.Match[str] | None:
    """The first ` - ` separator (followed by a lower-case word when `lower_only`) within TITLE_MAX."""
    for m in _DASH_SEP.finditer(s, 1, TITLE_MAX + 4):
        if not lower_only or s[m.end() : m.end() + 1].islower():
            return m
    return None


def _plain_title(s: str, line: int, defects: list[Defect]) -> tuple[str, str]:
    """A title without bold: ended by two spaces, ` - `, the summary's opening words, or the first sentence."""
    cuts: list[tuple[int, int]] = []  # (title end, summary start)
    two = s.find("  ", 0, TITLE_MAX + 2)
    if two > 0:
        cuts.append((two, two))
    dash = _first_dash(s, lower_only=True) or (None if two > 0 else _first_dash(s, lower_only=False))
    if dash is not None:
        cuts.append((dash.start(), dash.end()))
    if cuts:
        end, start = min(cuts)
        title, summary = s[:end], s[start:]
        lead = _LEAD.search(title)
        if lead:  # "… in LLMs Introduces a unified …": the two spaces came only later in the summary
            title, summary = s[: lead.start()], s[lead.start() :]
        return _title_text(title), strip_md(summary)
    # No separator: the summary's opening words or the first sentence's end, whichever comes first.
    ends = [m.start() for m in (_LEAD.search(s, 0, TITLE_MAX + 40), _SENTENCE_END.search(s, 0, TITLE_MAX + 2)) if m]
    end = min(ends) if ends and min(ends) <= TITLE_MAX else None
    first = s[:end] if end is not None else s[:TITLE_MAX]
    if len(first.split()) > UNTITLED_WORDS or (end is None and len(s) > TITLE_MAX):
        # No name in the row, only a description: its first sentence stands in, and the row is reported.
        defects.append(Defect(line, "untitled", s[:80]))
    return _title_text(first), strip_md(s[len(first) :].lstrip(".;: "))


def split_title(text: str, line: int = 0) -> tuple[str, str, tuple[Defect, ...]]:
    """(title, summary, defects) of a paper cell whose number is already removed."""
    s = text.strip()
    defects: list[Defect] = []
    if s.startswith("*"):
        title, summary = _bold_title(s, line, defects)
    else:
        title, summary = _plain_title(s, line, defects)
    return title, summary, tuple(defects)


def read_cell(cell: str, line: int = 0) -> Head:
    """A paper cell (`1) **Title** - summary`) → its number, numbering style, title, summary and defects."""
    number, marker, rest = split_number(cell)
    twice: tuple[Defect, ...] = ()
    if number is not None:
        again, _, inner = split_number(rest)
        if again is not None:  # "1) 1) Title": a slip of the pen, reported; the title is what follows
            twice, rest = (Defect(line, "number-style", f"numbered twice: {cell[:40]}"),), inner
    title, summary, defects = split_title(rest, line)
    marked = rest.lstrip().startswith("*")
    defects = twice + defects
    if _number_only(title):
        title = ""
    if not title and summary:
        # A row whose name cannot be found: reported with its line, the summary's first words stand in.
        title, summary, more = split_title(summary, line)
        marked = False
        defects += more if any(d.kind == "untitled" for d in more) else (Defect(line, "untitled", cell[:80]),)
        if _number_only(title):
            title = ""
    return Head(number, marker, title, summary, defects, marked)


def _number_only(title: str) -> bool:
    """`1)`, `(2).`: a list number with nothing after it is no title."""
    n, _, after = split_number(title)
    return n is not None and not after.strip(" *_.)")
