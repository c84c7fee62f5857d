"""What the newsletter templates see: an `Edition` turned into clean values (issue #16's layout).

Pure. Every value from a digest is one clean line (`safetext.clean`), every link a plain http(s) URL, so the
templates only lay things out: the opening (the week's title once, its dates once, the number of papers, the
credit, the editor's note, a contents list), then each paper (its anchor, title, release date, authors, a
summary cut at a sentence end with "Read more" on the web edition, its links), then the footer (the list's
name, the contact, view in browser and unsubscribe). The email and its web copy share one template; the web
copy (`web=True`) keeps every summary whole, so "Read more" lands on the full text.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

from bot.channels.email.settings import local_trial
from bot.channels.email.subscribers import InvalidAddress, normalize_address
from bot.config import Config
from bot.edition.arxiv import author_line, categories, title_and_summary
from bot.edition.credit import edition_credit
from bot.edition.edition import Edition
from bot.edition.excerpt import summary_excerpt, week_heading
from bot.edition.safetext import clean, date_range, safe_url
from bot.track.late import TITLE as LATE_TITLE
from bot.track.late import paper_keys
from bot.track.model import ArxivRecord, Paper

LATE_ANCHOR = "late"
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


def label(text: str) -> str:
    """A link's label; one that is itself a URL is shown as its host name."""
    shown = clean(text, max_len=60)
    if safe_url(text):
        return urlsplit(text.strip()).hostname or "link"
    return shown or "link"


def day(d: date | None) -> str:
    return f"{d.day} {d:%b %Y}" if d else ""


def paper_date(p: Paper) -> str:
    """The paper's release date (3-column digests), else a feed entry's publication date; "" if unknown."""
    if p.release_date:
        return day(p.release_date)
    try:
        return day(date.fromisoformat(p.published[:10])) if p.published else ""
    except ValueError:
        return ""


class Anchors:
    """An id per paper, the same in the email and its web copy however the papers are ordered: from the key
    that identifies the paper across versions (bot/track/late.py), made unique within the edition."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, p: Paper) -> str:
        base = "paper-" + hashlib.sha256(paper_keys(p)[0].encode("utf-8")).hexdigest()[:8]
        anchor, n = base, 1
        while anchor in self.seen:
            n += 1
            anchor = f"{base}-{n}"
        self.seen.add(anchor)
        return anchor


def paper_view(p: Paper, anchor: str = "", *, limit: int = 0, more_url: str | None = None,
               record: ArxivRecord | None = None) -> dict:
    """One paper for a template. `limit` > 0 cuts the summary (`more_url` then links to the rest). `record`:
    arXiv's (#32), for the authors and categories, and a title where the row has none (bot/edition/arxiv.py)."""
    links = [(label(lk.label), u) for lk in p.links if (u := safe_url(lk.url))]
    title, full = title_and_summary(p, record)
    excerpt = summary_excerpt(full, limit)
    return {
        "number": p.number, "title": title or "(untitled)", "summary": excerpt.text,
        "more_url": f"{more_url}#{anchor}" if excerpt.cut and more_url else None,
        "authors": author_line(p, record), "categories": categories(record), "date": paper_date(p),
        "anchor": anchor, "url": links[0][1] if links else None, "links": links[1:], "all_links": links,
    }


def _contact(contact: str) -> dict:
    """The `contact` line for the footer: an address becomes a name and a mailto: link, never `Name <a@b>`."""
    text = clean(contact)
    try:
        address = normalize_address(contact) if contact else None
    except InvalidAddress:
        address = None
    if address is None:
        return {"text": text, "name": "", "email": None}
    name = clean(parseaddr(contact)[0])
    return {"text": text, "name": name or address, "email": address}


LOCAL_TRIAL_FOOTER = ("Local trial: paperbot sent this to the mail server on this machine; it reached no one else, "
                      "and its links work on this machine only.")


def from_header(cfg: Config) -> str:
    """`[email] from` as the From header: its own name, else `[web] title` (issue #25 (13g): one setting names the
    newsletter; `from` needs only the address)."""
    name, address = parseaddr(cfg.email.sender)
    return formataddr((clean(name) or clean(cfg.web.title) or "paperbot", address)) if address else cfg.email.sender


def list_name(cfg: Config) -> str:
    """The newsletter's name: the From header's display name, else the web title."""
    name, _ = parseaddr(cfg.email.sender)
    return clean(name) or clean(cfg.web.title) or "paperbot"


def _paragraphs(note: str) -> list[str]:
    return [p for part in _PARAGRAPHS.split(note or "") if (p := clean(part))]


def headline(edition: Edition) -> str:
    """For the subject: the first paper and how many more ("Sparse Lanterns and 9 more")."""
    if edition.late_only:
        n = edition.late_papers
        return f"{n} paper{'s' if n != 1 else ''} added to earlier weeks"
    if not edition.papers:
        return "no papers this week"
    lead = clean(edition.papers[0].title, max_len=90) or "(untitled)"
    more = len(edition.papers) - 1
    return f"{lead} and {more} more" if more else lead


def context(edition: Edition, cfg: Config, *, web: bool, view_url: str, unsubscribe_url: str | None,
            preheader: str, approval: dict | None = None) -> dict:
    """The templates' values for `edition` (see the comment at the top of newsletter.mjml). `approval` (the
    editor's copy of a week held for approval: `approve` and `skip`, the exact commands) keeps every summary
    whole, as the web copy does: the edition is not on the web yet, so "Read more" would lead nowhere."""
    anchor = Anchors()
    limit = 0 if web or approval else cfg.email.summary_chars
    papers = [paper_view(p, anchor(p), limit=limit, more_url=view_url, record=edition.record(p))
              for p in edition.papers]
    late = [{"title": clean(g.title) or g.key, "heading": week_heading(g.title) or g.key, "key": g.key,
             "dates": date_range(g.first_day, g.last_day),
             "papers": [paper_view(p, anchor(p), limit=limit, more_url=view_url, record=edition.record(p))
                        for p in g.papers]}
            for g in edition.late]
    count = edition.late_papers if edition.late_only else len(edition.papers)
    contents = [p for g in late for p in g["papers"]] if edition.late_only else papers
    credit = edition_credit(cfg.sources, edition)
    contact = _contact(cfg.email.contact)
    return {
        "title": clean(edition.title) or edition.key, "heading": week_heading(edition.title) or edition.key,
        "key": edition.key, "source": edition.source, "dates": date_range(edition.first_day, edition.last_day),
        "count": count, "preheader": preheader, "papers": papers, "web": web, "contents": contents,
        "late": late, "late_only": edition.late_only, "late_title": LATE_TITLE, "late_anchor": LATE_ANCHOR,
        "late_count": edition.late_papers, "credit": {"name": credit.name, "url": credit.url},
        "note": _paragraphs(edition.note), "view_url": view_url, "unsubscribe_url": unsubscribe_url,
        "list_name": list_name(cfg), "sender_name": list_name(cfg), "list_id": cfg.email.list_id,
        "site": urlsplit(cfg.web.base_url).hostname or cfg.web.base_url, "site_url": cfg.web.base_url + "/",
        "contact": contact["text"], "contact_name": contact["name"], "contact_email": contact["email"],
        "approval": approval, "local_trial": LOCAL_TRIAL_FOOTER if not web and local_trial(cfg) else "",
    }
