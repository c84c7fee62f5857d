"""Which arXiv paper a link names: `https://arxiv.org/abs/2303.08774v2`, `…/pdf/2303.08774.pdf`, `…/html/…`,
`http://www.arxiv.org/abs//2306.13421`, `export.arxiv.org/abs/…`, old-style ids such as `cs/0112017` or
`math.GT/0309136`, with any version, query or fragment (#32).

Pure, and below the store in the layers (docs/architecture.md): the store keys each paper by its arXiv id, so the
same paper in two digests, or in two weeks of one, is recognised as one paper. The id carries no version: every
version of a paper is the same paper.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

_HOSTS = {"arxiv.org", "www.arxiv.org", "export.arxiv.org"}
_KINDS = {"abs", "pdf", "html", "format", "ps"}
# New style (April 2007 on): YYMM.NNNN (to 2014) or YYMM.NNNNN; old style: archive[.SUBJ]/YYMMNNN.
_NEW = re.compile(r"(\d{4}\.\d{4,5})(?:v\d{1,3})?(?:\.pdf)?/?\Z")
_OLD = re.compile(r"([a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?/\d{7})(?:v\d{1,3})?(?:\.pdf)?/?\Z")


def arxiv_id(url: str) -> str | None:
    """The arXiv id (no version) of a link to an arXiv paper's abstract, PDF or HTML page; None for anything else
    (a listing, a search, another site)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or (parts.hostname or "") not in _HOSTS:
        return None
    segments = [s for s in unquote(parts.path).split("/") if s]  # "abs//2306.13421" is the same page
    if len(segments) < 2 or segments[0] not in _KINDS:
        return None
    rest = "/".join(segments[1:])
    m = _NEW.match(rest) or _OLD.match(rest)
    return m.group(1) if m else None


def first_arxiv_id(urls: Iterable[str]) -> str | None:
    """The arXiv id of the first link that names one: a paper row's own paper (its first arXiv link)."""
    for url in urls:
        if found := arxiv_id(url):
            return found
    return None
