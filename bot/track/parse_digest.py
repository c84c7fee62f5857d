"""Digest README → weeks of papers, one line at a time.

A week starts at a heading (`##`, `###`, or a line that is only bold text) holding a date range, and ends at
the next heading. Inside it, papers are table rows (`| 1) **Title** - summary | [Paper](url) |`) or, in the
oldest form, numbered list items followed by indented link bullets. Whatever is wrong with a row is reported
as a `Defect` and the row is kept as well as it can be; nothing here raises on bad text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.track.dates import DateRange, find_range, resolve_years, week_key
from bot.track.lines import MAX_LINE, atx_heading, bold_line, is_url, md_images, md_links, split_lines, too_long
from bot.track.model import Defect, Document, Link, Paper, Week
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


def _heading_text(line: str) -> tuple[str, bool] | None:
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
        if _PLACEHOLDER_URL.fullmatch(url) or _PLACEHOLDER.search(label) or _PLACEHOLDER.search(url):
            defects.append(Defect(line_no, "placeholder", whole))
        elif not is_url(url):
            defects.append(Defect(line_no, "bad-url", whole))
        else:
            out.append(Link(label or "Link", url))
            continue
        # Keep what can be kept: "[Paper]([XXX](https://…))" still carries the paper's address.
        inner = _BARE_URL.search(text, m.start, m.end + 300)
        if inner and is_url(inner.group(0).rstrip(")")):
            out.append(Link(label if not _PLACEHOLDER.search(label) else "Link", inner.group(0).rstrip(")")))
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


def _header_columns(cells: list[str]) -> dict[str, int] | None:
    names = [c.replace("*", "").strip().lower() for c in cells]
    if not any(n.startswith("paper") or n.startswith("link") for n in names):
        return None
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
    cells = [c.strip() for c in _PIPE_SPLIT.split(inner)]
    if cells and all(_SEPARATOR_CELL.match(c) for c in cells):
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
    if _PLACEHOLDER.search(title) or _PLACEHOLDER.search(summary):
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
    if _PLACEHOLDER.search(text):
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


def _too_long(cur: _Section | None, doc_defects: list[Defect], line: str, line_no: int) -> None:
    """An over-long line is not read (issue #20), only reported; in a week it still counts for the week's text
    hash (by a digest of it), so an edit of it is still an edit."""
    defect = too_long_defect(line, line_no)
    if cur is None:
        doc_defects.append(defect)
        return
    cur.defects.append(defect)
    cur.lines.append(f"<line {line_no}: {hashlib.sha256(line.encode('utf-8', 'replace')).hexdigest()}>")


def parse_digest(text: str, as_of: date) -> Document:
    """Parse one version of a digest README. `as_of` places yearless weeks when nothing else can."""
    sections: list[_Section] = []
    doc_defects: list[Defect] = []
    cur: _Section | None = None
    for line_no, raw in enumerate(split_lines(text), 1):
        if too_long(raw):
            _too_long(cur, doc_defects, raw, line_no)
            continue
        line = raw.rstrip()
        head = _heading_text(line)
        if head is not None:
            htext, is_atx = head
            rng = find_range(htext)
            if rng is not None:
                cur = _Section(clean_title(htext), line_no, rng, [line])
                sections.append(cur)
                continue
            if is_atx:
                # Any other heading ends the week: a year heading, an index, a footer section.
                if re.search(r"papers of the week", htext, re.IGNORECASE) and "(" in htext:
                    doc_defects.append(Defect(line_no, "undated-heading", htext[:80]))
                cur = None
                continue
        if cur is None:
            continue
        cur.lines.append(line)
        stripped = line.lstrip()
        if stripped.startswith("|"):
            _table_row(cur, line, line_no)
            continue
        m = _LIST_ITEM.match(line)
        if m:
            _list_item(cur, int(m.group(1)), m.group(2).lstrip(), line_no)
            continue
        m = _SUB_BULLET.match(line)
        if m and cur.papers and max(cur.untitled_item, line_no - 3) <= cur.papers[-1].line:
            _sub_bullet(cur, m.group(1).lstrip(), line_no)
    spans = resolve_years([s.rng for s in sections], as_of)
    weeks: list[Week] = []
    for sec, span in zip(sections, spans, strict=True):
        if span is None:
            doc_defects.append(Defect(sec.line, "bad-date", sec.title[:80]))
            continue
        papers, defects = _finish(sec)
        text_hash = hashlib.sha256("\n".join(sec.lines).encode("utf-8")).hexdigest()[:16]
        weeks.append(
            Week(
                key=week_key(*span), title=sec.title, papers=tuple(papers), defects=tuple(defects),
                line=sec.line, first_day=span[0], last_day=span[1], text_hash=text_hash,
            )
        )
    return Document(format="digest", weeks=tuple(weeks), defects=tuple(doc_defects))
