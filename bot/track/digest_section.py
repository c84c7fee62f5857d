"""One week of a digest README → its papers and defects: the lines from its heading to the next heading. Pure.

Why its own module: a week's section is the unit both parses share (issue #28). The full parse
(bot/track/parse_digest.py) reads every section; the incremental one (bot/track/digest_cache.py) reads only
the sections whose text changed. What a section's parse gives depends on its text and on the line its heading
is on, nothing else: year inference, which looks across sections, is done after, over every section.

Papers are table rows (`| 1) **Title** - summary | [Paper](url) |`) or, in the oldest form, numbered list items
followed by indented link bullets. Whatever is wrong with a row is reported as a `Defect` and the row is kept as
well as it can be; nothing here raises on bad text. Each line is classified by its first character before any
pattern runs, and the patterns run only where a cheap test (`"XXX" in text`, `"\\" in cell`) says they can match.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.track.dates import DateRange
from bot.track.lines import MAX_LINE, atx_heading, bold_line, is_url, md_images, md_links, too_long
from bot.track.model import Defect, Link, Paper
from bot.track.titles import read_cell, split_title

# No pattern here has two adjacent quantifiers that can match the same characters (issue #20); headings, links
# and images are scanned by bot/track/lines.py.
_LIST_ITEM = re.compile(r"^\s{0,3}(\d{1,3})[.)]\s(.*)")  # group 2 .lstrip(): `\s+(.*)$`
_SUB_BULLET = re.compile(r"^\s++[-*•]\s(.*)")  # group 1 .lstrip(): `^\s+[-*•]\s+(.*)$`
_BARE_URL = re.compile(r"https?://[^\s)\]>|,]+")
_PLACEHOLDER = re.compile(r"\bX{3,}\b")
_PLACEHOLDER_URL = re.compile(r"(x{3,}|todo|tbd)", re.IGNORECASE)  # fullmatch
_SEPARATOR_CELL = re.compile(r"^\s*:?-{2,}:?\s*$")
_PIPE_SPLIT = re.compile(r"(?<!\\)\|")


def _placeholder(text: str) -> bool:
    """`_PLACEHOLDER.search(text)`, run only where it can match: it needs three `X` in a row."""
    return "XXX" in text and _PLACEHOLDER.search(text) is not None


def _split_cells(inner: str) -> list[str]:
    """A row's cells, split at each `|` not escaped as `\\|` (a plain split where no backslash is)."""
    parts = _PIPE_SPLIT.split(inner) if "\\" in inner else inner.split("|")
    return [c.strip() for c in parts]


def heading_text(line: str) -> tuple[str, bool] | None:
    """(text, is_atx) if the line is a heading or a bold-only line; else None."""
    atx = atx_heading(line)
    if atx is not None:
        return atx[1], True
    bold = bold_line(line)
    if bold is not None and "|" not in line:
        return bold, False
    return None


def clean_title(text: str) -> str:
    """A heading's text as a reader sees it: no markup, no trailing colon, no lead-in sentence."""
    t = text.replace("**", "").replace("__", "").strip().rstrip(":").strip()
    rng = re.search(r"\(", t)
    # "Highlighting top ML papers of the week. Top ML Papers of the Week (Jan 1-8)" → the last sentence.
    head = t[: rng.start()] if rng else t
    cut = head.rfind(". ")
    if cut != -1:
        t = t[cut + 2 :].strip()
    return t




def _links(text: str, line_no: int, defects: list[Defect]) -> tuple[Link, ...]:
    out: list[Link] = []
    for m in md_links(text):
        if text[max(0, m.start - 1) : m.start] == "!":
            continue  # an image, not a link
        label, url = m.label.strip(), m.url.strip()
        whole = text[m.start : m.end]
        if _PLACEHOLDER_URL.fullmatch(url) or _placeholder(label) or _placeholder(url):
            defects.append(Defect(line_no, "placeholder", whole))
        elif not is_url(url):
            defects.append(Defect(line_no, "bad-url", whole))
        else:
            out.append(Link(label or "Link", url))
            continue
        # Keep what can be kept: "[Paper]([XXX](https://…))" still carries the paper's address.
        inner = _BARE_URL.search(text, m.start, m.end + 300)
        if inner and is_url(inner.group(0).rstrip(")")):
            out.append(Link(label if not _placeholder(label) else "Link", inner.group(0).rstrip(")")))
    return tuple(out)


_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y", "%Y-%m-%d", "%d %B %Y", "%b. %d, %Y")


def parse_release_date(text: str) -> date | None:
    t = re.sub(r"\s+", " ", text.replace("*", "")).strip()
    t = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", t)
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    return None


@dataclass
class _Section:
    title: str
    line: int
    rng: DateRange
    lines: list[str] = field(default_factory=list)
    papers: list[Paper] = field(default_factory=list)
    defects: list[Defect] = field(default_factory=list)
    markers: list[tuple[int, str]] = field(default_factory=list)  # (line, number marker style)
    columns: dict[str, int] | None = None
    expect_separator_after: int = 0  # line number of a header row waiting for its separator
    untitled_item: int = 0  # line of the last list item left out for want of a title (its bullets go nowhere)


def _names_a_column(cell: str) -> bool:
    """Whether a cell reads `Paper…` or `Link…` once its bold is gone: only its first letters are lowered."""
    head = cell.replace("*", "").strip()[:5].lower()
    return head.startswith("paper") or head.startswith("link")


def _header_columns(cells: list[str]) -> dict[str, int] | None:
    if not any(_names_a_column(c) for c in cells):
        return None
    names = [c.replace("*", "").strip().lower() for c in cells]
    if any(next(md_links(c), None) for c in cells):
        return None
    cols: dict[str, int] = {"paper": 0}
    for i, n in enumerate(names):
        if "release" in n or n == "date":
            cols["release"] = i
        elif n.startswith("link"):
            cols["links"] = i
    cols.setdefault("links", len(cells) - 1)
    return cols


def _table_row(sec: _Section, line: str, line_no: int) -> None:
    body = line.strip()
    ends_with_pipe = body.endswith("|") and not body.endswith("\\|")
    inner = body[1:-1] if ends_with_pipe else body[1:]
    cells = _split_cells(inner)
    if cells[0][:1] in ("-", ":") and all(_SEPARATOR_CELL.match(c) for c in cells):
        sec.expect_separator_after = 0
        return
    if sec.expect_separator_after:
        sec.defects.append(Defect(sec.expect_separator_after, "missing-separator", "table header without separator"))
        sec.expect_separator_after = 0
    header = _header_columns(cells)
    if header is not None:
        sec.columns = header
        sec.expect_separator_after = line_no
        return
    if not any(cells):
        return
    if not ends_with_pipe:
        sec.defects.append(Defect(line_no, "missing-pipe", body[-80:]))
    cols = sec.columns or {"paper": 0, "links": len(cells) - 1 if len(cells) > 1 else 0}
    paper_cell = cells[0]
    links_i = cols.get("links", len(cells) - 1)
    links_cell = cells[links_i] if 0 < links_i < len(cells) else " ".join(cells[1:])
    head = read_cell(paper_cell, line_no)
    defects: list[Defect] = list(head.defects)
    title, summary = head.title, head.summary
    release = None
    if "release" in cols and cols["release"] < len(cells):
        release = parse_release_date(cells[cols["release"]])
    elif sec.columns is None and len(cells) == 3:
        release = parse_release_date(cells[1])
    if not title:
        # Nothing names the row (`| 3) | [Paper](…) |`): a placeholder to fill in, never a paper without a title.
        sec.defects.append(Defect(line_no, "placeholder", body[:80]))
        return
    if _placeholder(title) or _placeholder(summary):
        defects.append(Defect(line_no, "placeholder", title[:80]))
    links = _links(links_cell, line_no, defects)
    if head.marker:
        sec.markers.append((line_no, head.marker))
    sec.defects.extend(defects)
    sec.papers.append(
        Paper(title=title, summary=summary, links=links, number=head.number, release_date=release, line=line_no,
              title_marked=head.marked)
    )


def _list_item(sec: _Section, n: int, text: str, line_no: int) -> None:
    inline = [Link("Link", u) for u in _BARE_URL.findall(text)]
    title, summary, found = split_title(text, line_no)
    if not title:
        sec.defects.append(Defect(line_no, "placeholder", text[:80]))
        sec.untitled_item = line_no
        return
    defects = list(found)
    if _placeholder(text):
        defects.append(Defect(line_no, "placeholder", text[:80]))
    sec.defects.extend(defects)
    sec.markers.append((line_no, "N."))
    sec.papers.append(Paper(title=title, summary=summary, links=tuple(inline), number=n, line=line_no,
                            title_marked=text.lstrip().startswith("*")))


def _sub_bullet(sec: _Section, text: str, line_no: int) -> None:
    """An indented bullet under a list-form paper: its links ("Paper: https://…" or a bare URL)."""
    if not sec.papers:
        return
    last = sec.papers[-1]
    defects: list[Defect] = []
    links = list(_links(text, line_no, defects))
    if not links:
        for url in _BARE_URL.findall(text):
            label = text.split(":", 1)[0].strip() if re.match(r"^[\w /]+:\s*https?://", text) else "Link"
            links.append(Link(label, url.rstrip(".")))
    sec.defects.extend(defects)
    sec.papers[-1] = Paper(
        title=last.title, summary=last.summary, links=last.links + tuple(links), number=last.number,
        release_date=last.release_date, line=last.line, title_marked=last.title_marked,
    )


def _finish(sec: _Section) -> tuple[list[Paper], list[Defect]]:
    defects = list(sec.defects)
    if sec.expect_separator_after:
        defects.append(Defect(sec.expect_separator_after, "missing-separator", "table header without separator"))
    expected = None
    for p in sec.papers:
        if p.number is not None:
            if expected is not None and p.number != expected:
                defects.append(Defect(p.line, "numbering-gap", f"expected {expected}, found {p.number}"))
            expected = p.number + 1
    if sec.markers:
        styles = [m for _, m in sec.markers]
        common = max(set(styles), key=styles.count)
        for ln, m in sec.markers:
            if m != common:
                said, usual = m.replace("N", "#"), common.replace("N", "#")
                defects.append(Defect(ln, "number-style", f"{said} instead of {usual}"))
    defects.extend(_images(sec))
    defects.sort(key=lambda d: d.line)
    return sec.papers, defects


def _images(sec: _Section) -> list[Defect]:
    """A week's banner image left as `XXX` is a placeholder (the week is unfinished); an empty path is not."""
    out = []
    for offset, line in enumerate(sec.lines):
        for start, end, path in md_images(line):
            if _PLACEHOLDER.search(path.upper()) and path.strip("xX") == "":
                out.append(Defect(sec.line + offset, "placeholder", line[start:end]))
            elif not path or path.endswith("/"):
                out.append(Defect(sec.line + offset, "bad-image", line[start:end]))
    return out


def too_long_defect(line: str, line_no: int) -> Defect:
    """An over-long line, unread: the defect says where and how long (its text could be anything)."""
    return Defect(line_no, "line-too-long", f"{len(line):,} characters, over the {MAX_LINE:,} a line may have")


def long_line_stand_in(line: str, line_no: int) -> str:
    """What an over-long line counts as in its week's text hash (issue #20): a digest of it, so an edit of it is
    still an edit. It holds the line's number, so a week holding one is never reused at another line (#28)."""
    return f"<line {line_no}: {hashlib.sha256(line.encode('utf-8', 'replace')).hexdigest()}>"


@dataclass(frozen=True)
class Parsed:
    """One week's section as parsed, before its year is known: the heading's line, title and range, the papers
    and defects (lines counted in the document), and the hash of its text (`Week.text_hash`)."""

    line: int
    title: str
    rng: DateRange
    papers: tuple[Paper, ...]
    defects: tuple[Defect, ...]
    text_hash: str
    long_lines: bool = False  # it holds an over-long line, whose stand-in in the hash names the line


def parse_section(lines: list[str], line: int, htext: str, rng: DateRange) -> Parsed:
    """A week's lines as written (the heading first, at document line `line`; `htext` the heading's text and
    `rng` its range, as the caller found them) → its papers and defects.

    Each line is classified by its first character: a table row starts with `|`, a list item with a digit, a
    link bullet with a space; any other line holds nothing a paper needs, and costs no pattern."""
    sec = _Section(clean_title(htext), line, rng, [lines[0].rstrip()])
    long_lines = False
    for line_no in range(line + 1, line + len(lines)):
        raw = lines[line_no - line]
        if too_long(raw):
            # Not read (issue #20), only reported; it still counts for the week's text hash, by a digest of it.
            sec.defects.append(too_long_defect(raw, line_no))
            sec.lines.append(long_line_stand_in(raw, line_no))
            long_lines = True
            continue
        text = raw.rstrip()
        sec.lines.append(text)
        first = text[:1]
        if first == "|":
            _table_row(sec, text, line_no)
            continue
        if not first:
            continue
        if first.isspace():
            if text.lstrip().startswith("|"):
                _table_row(sec, text, line_no)
                continue
        m = _LIST_ITEM.match(text)
        if m:
            _list_item(sec, int(m.group(1)), m.group(2).lstrip(), line_no)
            continue
        if not first.isspace():
            continue  # a link bullet is indented
        m = _SUB_BULLET.match(text)
        if m and sec.papers and max(sec.untitled_item, line_no - 3) <= sec.papers[-1].line:
            _sub_bullet(sec, m.group(1).lstrip(), line_no)
    papers, defects = _finish(sec)
    text_hash = hashlib.sha256("\n".join(sec.lines).encode("utf-8")).hexdigest()[:16]
    return Parsed(line, sec.title, rng, tuple(papers), tuple(defects), text_hash, long_lines)
