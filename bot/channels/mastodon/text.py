"""Text as Mastodon sees it: the length it counts, and digest text made inert (no link, mention or hashtag).

Pure functions. A Mastodon server turns plain text into entities when it stores a status: `@user` and
`@user@host` into mentions (which notify those accounts), `#tag` into hashtags (which put the status in the tag's
public timeline) and every URL with a scheme (`https://…`, also `gemini://`, `ipfs://`, `xmpp:`, `magnet:`)
into a link. A title or summary from a digest must do none of that, so before a template sees it:
- mentions and hashtags are broken as on X (bot/channels/x/text.py): `@name` → `@ name`, `#tag` → `# tag`
  (`＃` too), `$TICKER` → `$ TICKER`; a plain space survives any normalisation on the way, so nothing can turn
  it back into an entity;
- every `scheme://` becomes `scheme[:]//`, and `xmpp:` / `magnet:` URIs `xmpp[:]`: Mastodon links a URL only
  with its scheme (`extract_url_without_protocol: false`), so a bare `arxiv.org/abs/1` or `Claude.ai` stays as
  typed, readable, and links nothing.

Mastodon counts a status in grapheme clusters, every URL it links as `characters_reserved_per_url` (23 by
default) and a mention as its local part. paperbot counts code points (never fewer than grapheme clusters, so a
status it fits is never over) and its own links as the instance's reserved length when Mastodon links them, else
as typed (a host on a domain that is no real TLD is not linked).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

from bot.channels.x.text import _defuse_tags as defuse_tags  # X's rule for @, # and $: one place for both
from bot.channels.x.text import one_line, shorten, twitter_text

__all__ = ["inert", "length", "one_line", "shorten", "linked"]

_SCHEME = re.compile(r"(?i)([a-z][a-z0-9+.-]*):(?=//)")
_URI = re.compile(r"(?i)\b(xmpp|magnet):(?=[^\s:\[])")


def inert(text: str) -> str:
    """Untrusted one-line text made safe to put in a status: NFC, no URL, mention or hashtag Mastodon would make
    (the configured hashtags are the template's, never the digest's)."""
    text = defuse_tags(unicodedata.normalize("NFC", text))
    text = _SCHEME.sub(r"\1[:]", text)
    return defuse_tags(_URI.sub(r"\1[:]", text))


@functools.lru_cache(maxsize=256)
def linked(url: str) -> bool:
    """True when Mastodon makes `url` (one of paperbot's own, with its scheme) a link: then it counts as the
    instance's reserved length, whatever its own."""
    found = twitter_text.extract_urls_with_indices(url)
    return len(found) == 1 and found[0]["indices"] == [0, len(url)] and "://" in url


def length(text: str, links: Sequence[str], reserved_per_url: int) -> int:
    """The status's length as Mastodon counts it (an upper bound: code points), paperbot's `links` counted as
    Mastodon counts them. Digest text holds no URL (it went through `inert`)."""
    for link in sorted({lk for lk in links if lk}, key=len, reverse=True):
        size = reserved_per_url if linked(link) else len(link)
        text = text.replace(link, "\0" * size)
    return len(text)
