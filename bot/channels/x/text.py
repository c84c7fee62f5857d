"""Text as X sees it: the weighted length, and digest text made inert (no links, mentions, hashtags, cashtags).

Pure functions. X counts a post in *weighted* characters (twitter-text v3: most scripts 1, CJK and emoji 2,
every URL 23, after NFC normalisation) and links every URL it finds, including bare domains like
`arxiv.org` or `model.py` (`.py` is a country domain). `twitter-text-parser` implements that count.

Untrusted text (a title, a summary) must not add links or mentions to a post:
- a URL in it is "defanged": each `.` of the span X would link becomes `[.]` (`arxiv[.]org/abs/1`), so it
  stays readable, is no longer a link and counts as the characters it has;
- an `@name` becomes `@ name`. X links `@` or the fullwidth `＠` (twitter-text's at signs are `[@＠]`, so
  the fullwidth form is still a mention) when a name follows it directly. An invisible separator (U+200B,
  U+2060) would do as long as nothing strips it, but format characters are exactly what `safetext.clean`,
  the templates' finalizer and possibly X itself remove; a plain space survives any normalisation (NFC,
  NFKC, stripping of invisible characters), so no rewriting on the way can turn it back into a mention;
- a `#tag` or `＃tag` becomes `# tag` and a `$TICKER` becomes `$ TICKER` (issue #21), for the same reason: the
  only hashtags in a post are the configured ones (`[x] hashtags`), and a hostile upstream must not fill the
  account's posts with spam-like hashtags and cashtags. twitter-text links `#` or `＃` followed by a run of
  letters, marks, digits, `_` and a few joiners holding at least one letter or mark (`#1` is no hashtag and
  stays as it is; `#️⃣` is an emoji), and `$` followed by ASCII letters.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import re
import sys
import types
import unicodedata
from importlib import resources


def _load_twitter_text() -> types.ModuleType:
    """Import `twitter_text` even where setuptools no longer ships `pkg_resources` (setuptools >= 82).

    twitter-text-parser 3.0.0 (its latest release) calls `pkg_resources.resource_string` once, at import, to
    read its emoji list. Without `pkg_resources`, a stand-in that offers only that function is put in
    `sys.modules` for the duration of the import and removed afterwards, so no other code ever sees it.
    """
    if "twitter_text" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        import twitter_text
        return twitter_text

    def resource_string(module: str, name: str) -> bytes:
        package = module if hasattr(sys.modules[module], "__path__") else module.rpartition(".")[0]
        return resources.files(package).joinpath(name).read_bytes()

    stand_in = types.ModuleType("pkg_resources")
    stand_in.resource_string = resource_string  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stand_in
    try:
        import twitter_text
    finally:
        if sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]
    return twitter_text


twitter_text = _load_twitter_text()

MAX_WEIGHT = 280  # X's limit for a post, in weighted characters
URL_WEIGHT = 23  # what every URL counts, whatever its length (t.co)
ELLIPSIS = "…"

_AT_NAME = re.compile(r"([@＠])(?=[A-Za-z0-9_])")
_CASH = re.compile(r"\$(?=[A-Za-z])")
_HASH = re.compile(r"[#＃](?![\ufe0f\u20e3])")
# twitter-text's hashtagSpecialChars: they may be part of a hashtag like letters and digits
_TAG_SPECIAL = frozenset("_\u200c\u200d\ua67e\u05be\u05f3\u05f4\uff5e\u301c\u309b\u309c\u30a0\u30fb\u3003"
                         "\u0f0b\u0f0c\u00b7")
_SPACE = re.compile(r"\s+")
_REGIONAL_INDICATORS = "".join(chr(c) for c in range(0x1F1E6, 0x1F200))


_CONFIG = twitter_text.config.config["defaults"]
# Code points X counts 1 (most scripts); every other one counts 2 (CJK, emoji...). © and ® are in the weight-1
# range but X counts them as emoji (2).
_HEAVY = re.compile("[^" + "".join(f"\\U{r['start']:08x}-\\U{r['end']:08x}" for r in _CONFIG["ranges"]
                                   if r["weight"] < _CONFIG["default_weight"]) + "]|[\u00a9\u00ae]")
# What multi-code-point emoji are made of (variation selector, keycap, joiner, skin tones, flags, tags): X
# counts such a sequence 2 in all, less than its code points.
_SEQUENCE = re.compile("[\ufe0f\u20e3\u200d\U0001f3fb-\U0001f3ff\U0001f1e6-\U0001f1ff\U000e0020-\U000e007f]")
# No code point weighs less than 2/3 (a keycap emoji is 3 code points for 2): a longer text never fits.
MAX_CHARS = 3 * MAX_WEIGHT // 2 + 1


def upper_weight(text: str) -> tuple[int, bool]:
    """(an upper bound of `weighted_length` for text without URLs, whether it is exact), counted code point
    by code point: cheap enough to search with, then checked with X's count. It is exact unless the text
    holds emoji sequences, which X counts 2 each whatever their length."""
    text = unicodedata.normalize("NFC", text)
    return len(text) + len(_HEAVY.findall(text)), _SEQUENCE.search(text) is None


@functools.lru_cache(maxsize=1024)
def _parsed(text: str):
    return twitter_text.parse_tweet(text)


def weighted_length(text: str) -> int:
    """The post's length as X counts it."""
    return _parsed(text).weightedLength


def fits(text: str) -> bool:
    """True when X accepts `text` as a post: 1..280 weighted characters, no invalid characters."""
    return _parsed(text).valid


def urls(text: str) -> list[str]:
    """Every URL X would link in `text` (with or without a scheme), in order."""
    return twitter_text.extract_urls(unicodedata.normalize("NFC", text))


def _defang_urls(text: str) -> str:
    for _ in range(8):  # each pass removes every span found; a new span can only come from a rare overlap
        found = twitter_text.extract_urls_with_indices(text)
        if not found:
            return text
        for entity in reversed(found):
            start, end = entity["indices"]
            text = text[:start] + text[start:end].replace(".", "[.]") + text[end:]
    # Still a URL after 8 passes (no such text is known): drop what X would link rather than post it.
    for entity in reversed(twitter_text.extract_urls_with_indices(text)):
        start, end = entity["indices"]
        text = text[:start] + text[end:]
    return text


def _tag_char(c: str) -> bool:
    return c in _TAG_SPECIAL or unicodedata.category(c)[0] in "LMN"


def _hashtag_follows(text: str, at: int) -> bool:
    """True when the `#` at `at` starts a run of hashtag characters holding a letter or mark (a hashtag)."""
    for c in itertools.takewhile(_tag_char, text[at + 1:]):
        if unicodedata.category(c)[0] in "LM":
            return True
    return False


def _defuse_tags(text: str) -> str:
    """`#tag`, `＃tag` → `# tag`, `＃ tag`; `$TICKER` → `$ TICKER`; `@name` → `@ name`: nothing X would link."""
    text = _AT_NAME.sub(r"\1 ", text)
    text = _CASH.sub("$ ", text)
    hashes = [m.start() for m in _HASH.finditer(text) if _hashtag_follows(text, m.start())]
    for at in reversed(hashes):
        text = text[:at + 1] + " " + text[at + 1:]
    return text


def inert(text: str) -> str:
    """Untrusted one-line text made safe to put in a post: NFC, no URL X would link, no @mention, no hashtag
    and no cashtag (the configured hashtags are the template's, never the digest's)."""
    text = unicodedata.normalize("NFC", text)
    text = _defuse_tags(text)
    text = _defang_urls(text)
    return _defuse_tags(text)  # `[.]` never creates an entity, but keep the invariant local


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending with "…" when cut.

    A text without a space in its second half (CJK, one long word) is cut at the limit; a cut never leaves
    a combining mark without its letter or half of a flag.
    """
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS if limit == 1 else ""
    cut = limit - 1
    space = text.rfind(" ", 0, cut + 1)
    if space > cut // 2:
        cut = space
    while cut > 0 and unicodedata.category(text[cut]).startswith("M"):
        cut -= 1  # text[cut] is a mark: cut before its base letter too
    head = text[:cut]
    flags = len(head) - len(head.rstrip(_REGIONAL_INDICATORS))
    if flags % 2:
        head = head[:-1]  # a regional indicator alone is not a flag
    head = head.rstrip(" ,.;:–-")
    return head + ELLIPSIS if head else ELLIPSIS


def one_line(text: str) -> str:
    """Whitespace runs (line breaks included) as single spaces."""
    return _SPACE.sub(" ", text).strip()
