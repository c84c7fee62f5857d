"""The short forms of digest text a newsletter shows (issue #16). Pure functions, channel-neutral.

- `week_heading`: a week's title without the dates its heading repeats ("AI Papers of the Week (May 20 - May
  26) - 2024" → "AI Papers of the Week"), since every channel shows the dates once, written out, beside it.
- `summary_excerpt`: a summary cut at the end of a sentence within a length, so an email shows a few lines per
  paper and links to the full text on the web instead of a wall of 250 words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.edition.safetext import clean
from bot.track.dates import range_span

_ISO_WEEK = re.compile(r",?\s*\bweek\s+\d{4}-W\d{2}\s*$", re.IGNORECASE)  # "Lab blog, week 2026-W47"
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_SPACES = re.compile(r"\s{2,}")
_EDGE = " -–—:,;|·"

# A sentence ends at . ! ? or … (then any closing quotes or brackets) followed by white space...
_END = re.compile(r"[.!?…][\"”’')\]]*(?=\s)")
# ...unless the period ends one of these (lower-cased, without the period), or an initial ("A. Smith").
_ABBREVIATIONS = frozenset(
    "e.g i.e al vs fig figs eq eqs cf approx no nos sec ref refs dr mr mrs ms prof st jr sr inc ltd co resp incl "
    "tab u.s etc ca".split())
MIN_SHARE = 0.25  # a sentence cut shorter than this share of the limit says too little: cut at a word instead
ELLIPSIS = "…"


def week_heading(title: str) -> str:
    """`title` without its date range (and a year written after it) or its ISO-week suffix; the title itself
    if nothing would be left."""
    text = clean(title)
    rest = _ISO_WEEK.sub("", text)
    span = range_span(rest)
    if span is not None:
        rest = rest[: span[0]] + " " + rest[span[1]:]
    rest = _EMPTY_BRACKETS.sub(" ", rest)
    rest = _SPACES.sub(" ", rest).strip(_EDGE).rstrip("([ " + _EDGE).lstrip(")] " + _EDGE)
    dangling = rest.rsplit(" ", 1)[-1].lower() in {"of", "for", "from", "in", "on", "the"}  # "Week of"
    return rest if len(rest) >= 3 and not dangling else text


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end in `text` (not counting its very end)."""
    ends = []
    for m in _END.finditer(text):
        if text[m.start()] == ".":
            before = text[: m.start()].rsplit(None, 1)
            word = before[-1].lower().lstrip("([\"'“‘") if before else ""
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        following = text[m.end():].lstrip()[:1]
        if following.islower():  # "… e.g. the …", "… (see Fig. 2). and …": not a new sentence
            continue
        ends.append(m.end())
    return ends


@dataclass(frozen=True)
class Excerpt:
    text: str
    cut: bool  # something was left out: the reader needs a "Read more" link


def summary_excerpt(text: str, limit: int) -> Excerpt:
    """`text` (one clean line) cut at the last sentence end within `limit` characters; when no sentence ends
    in reach (one long sentence), at the last word within it, with an ellipsis. `limit` 0: never cut."""
    if limit <= 0 or len(text) <= limit:
        return Excerpt(text, False)
    ends = [e for e in sentence_ends(text) if e <= limit]
    if ends and ends[-1] >= limit * MIN_SHARE:
        return Excerpt(text[: ends[-1]].rstrip(), True)
    cut = text.rfind(" ", 0, limit)
    if cut < limit // 2:  # a very long word (a URL): cut inside it
        cut = limit - 1
    return Excerpt(text[:cut].rstrip(" ,;:-–—(") + ELLIPSIS, True)
