"""Research-notes page → papers: each `###` section is one paper.

The page has topic headings (`##` or a line underlined with `---`/`===`), and under them `### [Title](url)`
sections with an author line and summary bullets. A notes page has no weeks of its own: the papers form one
edition keyed by the ISO week of `as_of`; the tracker later files each paper under the week it was first seen.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

from bot.track.dates import iso_week_bounds, iso_week_key
from bot.track.lines import atx_heading, is_url, split_lines, title_link, too_long
from bot.track.model import Defect, Document, Link, Paper, Week
from bot.track.parse_digest import too_long_defect

# No two adjacent quantifiers here can match the same characters (issue #20): `###` headings and their links are
# scanned by bot/track/lines.py, and each pattern below says the one it replaces.
_H12 = re.compile(r"^\s{0,3}#{1,2}\s+\S")
_SETEXT = re.compile(r"^\s{0,3}(-{3,}|={3,})\s*$")
# `^[>\s*\-]*\**\s*authors?\s*\**\s*:\s*\**\s*(.+)$`, the end done by _authors()
_AUTHORS = re.compile(r"^[>\s*\-]*+authors?\s*+\**+\s*+:(.*)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*+(?:[*\-+]|\d++\.)\s(.*)")  # group 1 .lstrip(): `\s+(.*)$`


def _authors(line: str) -> str | None:
    r"""The names on an author line (`> * Authors: A, B`), as `_AUTHORS`' old `\s*\**\s*(.+)$` took them."""
    m = _AUTHORS.match(line)
    if not m or not m.group(1):
        return None
    rest = m.group(1)
    names = rest.lstrip().lstrip("*").lstrip()
    return names or rest[-1]


def _h3(line: str) -> str | None:
    """The text of a `###` heading (exactly three `#`), else None."""
    atx = atx_heading(line)
    return atx[1] if atx is not None and atx[0] == 3 else None


def _uid(title: str, url: str) -> str:
    basis = url or re.sub(r"\W+", " ", title).strip().lower()
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def parse_notes(text: str, as_of: date) -> Document:
    papers: list[Paper] = []
    defects: list[Defect] = []
    doc_defects: list[Defect] = []
    lines = list(split_lines(text))
    cur: dict | None = None

    def close() -> None:
        if cur is None:
            return
        summary = "\n".join(cur["bullets"]).strip()
        links = (Link("Paper", cur["url"]),) if cur["url"] else ()
        papers.append(
            Paper(
                title=cur["title"], summary=summary, links=links, number=None, authors=cur["authors"],
                uid=_uid(cur["title"], cur["url"]), line=cur["line"],
            )
        )

    for i, raw in enumerate(lines):
        line_no = i + 1
        if too_long(raw):
            doc_defects.append(too_long_defect(raw, line_no))  # not read (issue #20); the rest still is
            continue
        line = raw.rstrip()
        h3 = _h3(line)
        if h3 is not None:
            close()
            heading = h3.strip()
            lm = title_link(heading)
            title, url = (lm[0].strip(), lm[1].strip()) if lm else (heading, "")
            title = title.replace("**", "").strip()
            if not lm:
                defects.append(Defect(line_no, "unlinked", heading[:80]))
            elif not is_url(url):
                defects.append(Defect(line_no, "bad-url", heading[:80]))
                url = ""
            cur = {"title": title, "url": url, "authors": "", "bullets": [], "line": line_no}
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) and not too_long(lines[i + 1]) else ""
        if _H12.match(line) or (line.strip() and _SETEXT.match(nxt) and not _BULLET.match(line)):
            close()  # a topic heading ends the paper before it
            cur = None
            continue
        if cur is None or not line.strip() or _SETEXT.match(line):
            continue
        names = _authors(line)
        if names is not None and not cur["authors"]:
            cur["authors"] = names.replace("**", "").strip()
            continue
        bm = _BULLET.match(line)
        item = (bm.group(1).lstrip() if bm else line.lstrip("> ")).strip()
        if item:
            cur["bullets"].append(item.replace("**", ""))
    close()
    key = iso_week_key(as_of)
    first, last = iso_week_bounds(key)
    week = Week(
        key=key, title=f"Notes, week {key}", papers=tuple(papers), defects=tuple(defects),
        first_day=first, last_day=last,
        text_hash=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
    )
    return Document(format="notes", weeks=(week,) if papers else (), defects=tuple(doc_defects))
