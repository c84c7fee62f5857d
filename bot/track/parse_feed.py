"""RSS/Atom bytes → papers, grouped into ISO-week editions by publication date.

feedparser does the hard part (encodings, RSS 0.9x/1.0/2.0, Atom, sanitising HTML). It is given *bytes* and
the document's URL, never a string it could mistake for a path. An entry without a date falls into the
week of `as_of`; an entry without an id is known by its link, else by a hash of its title and summary.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from datetime import UTC, date, datetime
from xml.sax import SAXParseException

import feedparser

from bot.track.dates import iso_week_bounds, iso_week_key
from bot.track.lines import is_url
from bot.track.model import Defect, Document, Link, Paper, Week

# Linear by construction (issue #20): no two adjacent quantifiers match the same characters, and no search
# rescans the rest of the text from every `<`.
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<br\s*/?>|</p>", re.IGNORECASE)
_BLANKS = re.compile(r"\n(?:[^\S\n]*\n)+")  # was `\n\s*\n+`: a newline, then blank lines, to the last newline


def _strip_tags(text: str) -> str:
    """`_TAG.sub("", text)`, searched only up to the last `>`: a `<` after it starts no tag, and searching from
    each one of them would rescan the rest of the text every time."""
    end = text.rfind(">") + 1
    return _TAG.sub("", text[:end]) + text[end:]


def plain_text(html_text: str) -> str:
    """Feed summaries are HTML: keep the words, drop the markup."""
    t = _BREAK.sub("\n", html_text or "")
    t = html.unescape(_strip_tags(t))
    t = re.sub(r"[ \t]+", " ", t)
    return _BLANKS.sub("\n", t).strip()


def _published(entry) -> datetime | None:
    for attr in ("published_parsed", "updated_parsed", "created_parsed"):
        st = entry.get(attr)
        if st:
            return datetime.fromtimestamp(calendar.timegm(st), UTC)
    return None


def parse_feed(data: bytes, as_of: date, url: str = "", content_type: str = "") -> Document:
    headers = {"content-location": url} if url else {}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(data, response_headers=headers)
    defects: list[Defect] = []
    exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    line = getattr(exc, "getLineNumber", lambda: 0)() or 0
    useful = [e for e in parsed.entries if e.get("title") or e.get("link") or e.get("id") or e.get("summary")]
    if not parsed.get("version") and not useful or (isinstance(exc, SAXParseException) and not useful):
        # Not a feed at all, or XML so broken nothing usable came out: an error, never "all entries gone".
        reason = str(exc)[:200] if exc else "no RSS or Atom document found"
        return Document(format="feed", weeks=(), defects=(Defect(line, "not-a-feed", reason),))
    if exc is not None and isinstance(exc, SAXParseException):
        defects.append(Defect(line, "malformed-xml", str(exc)[:200]))
    by_week: dict[str, list[Paper]] = {}
    for i, e in enumerate(useful):
        title = plain_text(e.get("title", "")) or "(untitled)"
        link = e.get("link", "") or ""
        summary = plain_text(e.get("summary", "") or (e.get("content") or [{}])[0].get("value", ""))
        when = _published(e)
        uid = e.get("id") or link or hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest()[:16]
        if not e.get("title"):
            defects.append(Defect(i + 1, "untitled-entry", uid[:80]))
        links = (Link("Link", link),) if link and is_url(link) else ()
        authors = e.get("author", "") or ""
        paper = Paper(
            title=title, summary=summary, links=links, authors=authors, uid=uid,
            published=when.isoformat() if when else None, line=i + 1,
        )
        key = iso_week_key(when.date() if when else as_of)
        by_week.setdefault(key, []).append(paper)
    title = plain_text(parsed.feed.get("title", "")) or "Feed"
    weeks = []
    for key in sorted(by_week, reverse=True):
        first, last = iso_week_bounds(key)
        papers = tuple(by_week[key])
        text_hash = hashlib.sha256(repr([p.fingerprint_data() for p in papers]).encode()).hexdigest()[:16]
        weeks.append(
            Week(key=key, title=f"{title}, week {key}", papers=papers, first_day=first, last_day=last,
                 text_hash=text_hash)
        )
    return Document(format="feed", weeks=tuple(weeks), defects=tuple(defects))
