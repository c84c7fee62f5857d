"""What arXiv's record adds to a paper as readers see it (#32): pure, over the curator's `Paper` and the cached
`ArxivRecord`. The curator's words come first: arXiv's title stands in only for a row with no title, or for a
title not set off by markup that arXiv's title begins (the row was split in the wrong place); arXiv's authors only
where the row names none; the abstract is for search, never instead of the curator's summary.
"""

from __future__ import annotations

import re
import unicodedata

from bot.edition.safetext import clean
from bot.track.model import ArxivRecord, Paper

MAX_NAMES = 8  # names shown before "and N more"
_FOLD = re.compile(r"[\W_]+", re.UNICODE)


def _folded(text: str) -> str:
    return _FOLD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def title_and_summary(paper: Paper, record: ArxivRecord | None) -> tuple[str, str]:
    """The title and summary to show: the row's, or arXiv's title where the row has none or where a title not set
    off by markup begins with arXiv's (what follows it then opens the summary)."""
    title, summary = clean(paper.title), clean(paper.summary)
    theirs = clean(record.title) if record else ""
    if not theirs:
        return title, summary
    if not title:
        return theirs, summary
    if paper.title_marked:
        return title, summary
    mine, prefix = _folded(title), _folded(theirs)
    if mine == prefix or not mine.startswith(prefix + " "):
        return title, summary
    # Cut the row's own text after as many word characters as arXiv's title holds, keeping the row's spelling.
    need, i = len(prefix.replace(" ", "")), 0
    while i < len(title) and need > 0:
        need -= len(_FOLD.sub("", unicodedata.normalize("NFKC", title[i]).casefold()))
        i += 1
    rest = title[i:].lstrip(" .:;,-–—")
    return theirs, f"{rest} {summary}".strip() if rest else summary


def author_line(paper: Paper, record: ArxivRecord | None, max_names: int = MAX_NAMES) -> str:
    """The row's authors, else arXiv's: the first `max_names`, then "and N more"."""
    if paper.authors or record is None or not record.authors:
        return clean(paper.authors, max_len=300)
    names = [n for a in record.authors if (n := clean(a, max_len=80))]
    more = len(names) - max_names
    shown = ", ".join(names[:max_names])
    return clean(f"{shown} and {more} more" if more > 0 else shown, max_len=600)


def categories(record: ArxivRecord | None) -> list[str]:
    """arXiv's categories, the primary one first."""
    if record is None:
        return []
    ordered = dict.fromkeys(c for c in (record.primary_category, *record.categories) if c)
    return [t for c in ordered if (t := clean(c, max_len=40))]
