"""Text as Bluesky counts it, rich text with paperbot's own facets, and record keys (TIDs).

Pure functions. A post holds at most 300 graphemes and 3000 bytes of UTF-8 (app.bsky.feed.post's lexicon);
graphemes are extended grapheme clusters (UAX #29), counted with the `regex` module's `\\X`, which follows the
current Unicode release (a family emoji or a flag is one). Only facets make anything live on Bluesky: a URL,
an @handle or a #tag typed in the text stays plain text unless a facet says otherwise, so digest text goes in
as written (cleaned to one line) and the only facets are paperbot's: its links, each over a short anchor text
(byte ranges over the UTF-8 text, start inclusive, end exclusive), and the configured tags.

A record key is a TID: 64 bits (top bit 0, 53 bits of microseconds since the epoch, 10 bits of clock id)
written in base32-sortable as 13 characters. paperbot makes one per planned post, so the post's URI is known
before it is sent and `getRecord` can tell afterwards whether it exists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import regex

MAX_GRAPHEMES = 300
MAX_BYTES = 3000
ELLIPSIS = "…"
LINK = "app.bsky.richtext.facet#link"
TAG = "app.bsky.richtext.facet#tag"
ANCHOR_MAX = 32  # graphemes of a link's anchor text, its ellipsis included

_GRAPHEME = regex.compile(r"\X")
_SPACE = re.compile(r"\s+")
B32 = "234567abcdefghijklmnopqrstuvwxyz"
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def graphemes(text: str) -> list[str]:
    return _GRAPHEME.findall(text)


def grapheme_count(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def byte_length(text: str) -> int:
    return len(text.encode("utf-8"))


def fits(text: str) -> bool:
    """True when Bluesky takes `text` as a post's text: at most 300 graphemes and 3000 bytes."""
    return grapheme_count(text) <= MAX_GRAPHEMES and byte_length(text) <= MAX_BYTES


def one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` graphemes, at a word boundary when one is in the second half, ending
    with "…" when cut. Never splits a grapheme (an emoji sequence, a letter and its marks)."""
    g = graphemes(text)
    if len(g) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS if limit == 1 else ""
    cut = limit - 1
    spaces = [i for i in range(cut + 1) if i < len(g) and g[i] == " "]
    if spaces and spaces[-1] > cut // 2:
        cut = spaces[-1]
    head = "".join(g[:cut]).rstrip(" ,.;:–-")
    return head + ELLIPSIS if head else ELLIPSIS


def anchor(url: str) -> str:
    """A link's short anchor text, as Bluesky's app shows links: host and path without the scheme or `www.`,
    cut to 32 graphemes (`arxiv.org/abs/2302.00001`, `github.com/lab/a-very-long-name-of-a-…`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    shown = host + (parts.path.rstrip("/") if parts.path not in ("", "/") else "")
    if parts.query and grapheme_count(shown) < ANCHOR_MAX:
        shown += "?" + parts.query
    return shorten(shown, ANCHOR_MAX) if grapheme_count(shown) > ANCHOR_MAX else shown


@dataclass(frozen=True)
class Span:
    """A piece of a post: plain text, or text carrying one link (`link`) or one tag (`tag`)."""

    text: str
    link: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Rich:
    """A post's text and its facets (app.bsky.richtext.facet objects, byte ranges over the UTF-8 text)."""

    text: str
    facets: tuple[dict, ...]

    @property
    def graphemes(self) -> int:
        return grapheme_count(self.text)

    @property
    def bytes(self) -> int:
        return byte_length(self.text)


def rich(spans: Sequence[Span]) -> Rich:
    """The text of `spans` joined, each link or tag span a facet over its exact bytes."""
    out, facets, at = [], [], 0
    for s in spans:
        data = s.text.encode("utf-8")
        if s.link and s.text:
            facets.append({"index": {"byteStart": at, "byteEnd": at + len(data)},
                           "features": [{"$type": LINK, "uri": s.link}]})
        elif s.tag and s.text:
            facets.append({"index": {"byteStart": at, "byteEnd": at + len(data)},
                           "features": [{"$type": TAG, "tag": s.tag}]})
        out.append(s.text)
        at += len(data)
    return Rich("".join(out), tuple(facets))


def facet_text(r: Rich, facet: dict) -> str:
    """The text a facet covers (its bytes decoded): what a reader sees as the link or tag."""
    i = facet["index"]
    return r.text.encode("utf-8")[i["byteStart"]:i["byteEnd"]].decode("utf-8")


def tid(micros: int, clock_id: int) -> str:
    """The TID of `micros` (microseconds since the Unix epoch) and `clock_id` (0..1023)."""
    if not 0 <= micros < 2 ** 53 or not 0 <= clock_id < 1024:
        raise ValueError(f"no TID for {micros} µs and clock id {clock_id}")
    n = (micros << 10) | clock_id
    return "".join(B32[(n >> (5 * i)) & 31] for i in range(12, -1, -1))


def tid_micros(key: str) -> int:
    """The microseconds a TID holds; ValueError unless `key` is a valid TID."""
    if not _TID.match(key):
        raise ValueError(f"{key!r} is not a TID")
    n = 0
    for c in key:
        n = n * 32 + B32.index(c)
    return n >> 10


def is_tid(key: str) -> bool:
    return bool(_TID.match(key))
