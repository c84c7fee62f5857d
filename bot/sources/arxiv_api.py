"""arXiv's API, asked politely (#32): records by id, in batches, through the shared three-second gate.

Why not the `arxiv` package: its own delay spaces only its own calls, while arXiv's terms count every request
paperbot makes there (a `feed` source on arxiv.org included), and every process; it brings `requests` for one GET
that paperbot's own fetcher already makes with one deadline per attempt, retries with backoff on 429/503, a size
cap and a User-Agent. So: `conditional_get` through the gate (bot/sources/polite.py), and feedparser on the Atom
answer with arXiv's namespace registered, so its fields keep stable names whatever prefix the answer uses.

`parse_answer` is pure: the answer's bytes → the records it holds, or ArxivError for arXiv's error feed (an
Atom feed with one entry whose id is under `http://arxiv.org/api/errors`).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from urllib.parse import quote

import feedparser
from feedparser.mixin import _FeedParserMixin

from bot import __version__
from bot.sources.fetch_http import FetchError, HttpOptions, conditional_get
from bot.sources.polite import PoliteHosts
from bot.track.arxiv_ids import arxiv_id
from bot.track.model import ArxivRecord

log = logging.getLogger(__name__)

ARXIV_NS = "http://arxiv.org/schemas/atom"
# feedparser names a namespace's elements by the prefix it knows for the namespace's URI, else by the document's
# own prefix: registered, `arxiv:primary_category` is `arxiv_primary_category` whatever the answer calls it.
_FeedParserMixin.namespaces.setdefault(ARXIV_NS, "arxiv")
_FeedParserMixin._matchnamespaces.setdefault(ARXIV_NS, "arxiv")
BATCH = 50  # ids per request (max_results is set to the batch's size)
MAX_AUTHORS = 200  # a collaboration paper lists thousands; the rest are "et al."
_SPACES = re.compile(r"\s+")


class ArxivError(Exception):
    """arXiv could not answer (its error feed, a refusal, a timeout after the retries); the text says which."""


@dataclass(frozen=True)
class Answer:
    records: tuple[ArxivRecord, ...]
    missing: tuple[str, ...]  # asked for, and arXiv holds no such paper


def _one_line(text: object) -> str:
    return _SPACES.sub(" ", str(text or "")).strip()


def parse_answer(body: bytes, asked: tuple[str, ...] = ()) -> Answer:
    """The records in one Atom answer; ids asked for and not in it are `missing`. ArxivError for the error
    feed or for an answer that is not an Atom feed at all."""
    parsed = feedparser.parse(body)
    if parsed.get("bozo") and not parsed.get("entries") and not parsed.get("feed"):
        raise ArxivError(f"the answer is not an Atom feed ({type(parsed.get('bozo_exception')).__name__})")
    records: dict[str, ArxivRecord] = {}
    for entry in parsed.entries:
        entry_id = str(entry.get("id", ""))
        if "arxiv.org/api/errors" in entry_id:
            raise ArxivError(f"arXiv answered with an error: {_one_line(entry.get('summary'))[:200]}")
        found = arxiv_id(entry_id) or arxiv_id(str(entry.get("link", "")))
        title = _one_line(entry.get("title"))
        if not found or not title:
            continue
        primary = entry.get("arxiv_primary_category") or {}
        categories = tuple(dict.fromkeys(t["term"] for t in entry.get("tags", []) if t.get("term")))
        authors = tuple(n for a in entry.get("authors", [])[:MAX_AUTHORS] if (n := _one_line(a.get("name"))))
        records[found] = ArxivRecord(
            arxiv_id=found, title=title, authors=authors, abstract=_one_line(entry.get("summary")),
            primary_category=str(primary.get("term", "")) or (categories[0] if categories else ""),
            categories=categories, published=str(entry.get("published", "")), updated=str(entry.get("updated", "")))
    return Answer(tuple(records.values()), tuple(i for i in asked if i not in records))


def user_agent(contact: str) -> str:
    """Who is asking, as arXiv wants to know: the project and whom to contact."""
    if not contact:
        return f"paperbot/{__version__} (a weekly paper digest's publisher; no contact configured)"
    who = f"mailto:{contact}" if "@" in contact and ":" not in contact else contact
    return f"paperbot/{__version__} (a weekly paper digest's publisher; {who})"


class ArxivClient:
    """Records by id from `api_base`, every request through `gate`; `fetch` raises ArxivError."""

    def __init__(self, api_base: str, gate: PoliteHosts, contact: str = "", *, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 3.0):
        self.api_base = api_base
        self.options = HttpOptions(timeout=timeout, retries=retries, backoff=backoff, max_bytes=20 * 2**20,
                                   user_agent=user_agent(contact), gate=gate)

    def fetch(self, ids: list[str] | tuple[str, ...], stop: threading.Event | None = None) -> Answer:
        """arXiv's records of `ids` (at most BATCH: one request, max_results set to their number)."""
        asked = tuple(dict.fromkeys(ids))
        if not asked:
            return Answer((), ())
        if len(asked) > BATCH:
            raise ValueError(f"at most {BATCH} ids per request")
        url = f"{self.api_base}?id_list={quote(','.join(asked), safe=',/.')}&max_results={len(asked)}"
        try:
            r = conditional_get(url, options=self.options, accept="application/atom+xml", stop=stop)
        except FetchError as e:
            raise ArxivError(str(e)) from e
        return parse_answer(r.body, asked)
