"""Search highlights and snippets placed by position, never by marker characters (issues #24 and #29).

FTS5's highlight() wraps matches in marker strings that are later turned into <mark>: a title holding those
characters could open or close <mark> anywhere in the results (#24). Here the text is never marked up in SQL: the
query's words are matched against the text's own tokens (as FTS5's `unicode61 remove_diacritics 2` tokenizer
cuts them: runs of letters and digits, case and accents folded) and the page is built from escaped slices, so
nothing in the data can become markup. Pure functions; the search runs them on one page of hits only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup, escape

_TOKEN = re.compile(r"[^\W_]+")  # letters and digits of any script, as unicode61 cuts tokens
_PART = re.compile(r'"([^"]*)"?|([^\s"]+)')
SNIPPET = 240  # characters of a summary shown around its first match


@dataclass(frozen=True)
class Term:
    """One term of a query: its tokens in order (a phrase when several) and whether the last is a prefix."""

    tokens: tuple[str, ...]
    prefix: bool


def fold(token: str) -> str:
    """A token as the index compares it: case folded, accents removed."""
    decomposed = unicodedata.normalize("NFKD", token.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def terms(q: str, max_terms: int = 16) -> tuple[Term, ...]:
    """The terms `reader.fts_query` makes of `q`: a "quoted" part is a phrase, any other word a prefix term."""
    out = []
    for phrase, word in _PART.findall(q):
        text = (phrase if phrase else word).replace('"', "")
        tokens = tuple(fold(t) for t in _TOKEN.findall(text))
        if tokens:
            out.append(Term(tokens, prefix=not phrase))
        if len(out) == max_terms:
            break
    return tuple(out)


@lru_cache(maxsize=256)
def _ascii_patterns(query: tuple[Term, ...]) -> list[tuple[re.Pattern[str], bool]] | None:
    """Regexes for ASCII text lower-cased (the common case: no token to fold one by one), each with whether
    its matches may overlap: every one-word term in a single pattern (a match of any of them starts at a word's
    start and takes the whole word, so one pass finds them all: issue #29), then one per phrase."""
    if not all(t.isascii() for term in query for t in term.tokens):
        return None
    words, phrases = [], []
    for term in query:
        *head, last = (re.escape(t) for t in term.tokens)
        tail = f"{last}[a-z0-9]*" if term.prefix else f"{last}(?![a-z0-9])"
        (phrases if head else words).append("".join(f"{h}(?![a-z0-9])[^a-z0-9]+" for h in head) + tail)
    out = [(re.compile(f"(?<![a-z0-9])(?:{'|'.join(words)})"), False)] if words else []
    return out + [(re.compile(f"(?<![a-z0-9]){p}"), True) for p in phrases]


def spans(text: str, query: tuple[Term, ...]) -> list[tuple[int, int]]:
    """The (start, end) slices of `text` that match a term, merged, in order."""
    if not query:
        return []
    if text.isascii() and (patterns := _ascii_patterns(query)) is not None:
        lower = text.lower()
        found = [m.span() for pattern, overlaps in patterns
                 for m in (_overlapping(pattern, lower) if overlaps else pattern.finditer(lower))]
    else:
        found = _token_spans(text, query)
    found.sort()
    merged: list[tuple[int, int]] = []
    for a, b in found:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _overlapping(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Every match, also those starting inside an earlier one (a phrase and a word of it)."""
    out, at = [], 0
    while (m := pattern.search(text, at)) is not None:
        out.append(m)
        at = m.start() + 1
    return out


def _token_spans(text: str, query: tuple[Term, ...]) -> list[tuple[int, int]]:
    tokens = [(m.start(), m.end(), fold(m.group())) for m in _TOKEN.finditer(text)]
    found: list[tuple[int, int]] = []
    for i in range(len(tokens)):
        for term in query:
            n = len(term.tokens)
            if i + n > len(tokens):
                continue
            ok = all(tokens[i + j][2] == t for j, t in enumerate(term.tokens[:-1]))
            last = tokens[i + n - 1][2]
            if ok and (last.startswith(term.tokens[-1]) if term.prefix else last == term.tokens[-1]):
                found.append((tokens[i][0], tokens[i + n - 1][1]))
    return found


def mark(text: str, query: tuple[Term, ...], found: list[tuple[int, int]] | None = None) -> Markup:
    """`text` escaped, each match inside <mark>: the only markup in the result is ours. (markupsafe's escape is
    C code, several times html.escape's speed: a search page marks three fields of 20 hits, issue #29.)"""
    found = spans(text, query) if found is None else found
    if not found:
        return escape(text)
    out, at = [], 0
    for a, b in found:
        out += [escape(text[at:a]), "<mark>", escape(text[a:b]), "</mark>"]
        at = b
    out.append(escape(text[at:]))
    return Markup("".join(out))


def snippet(text: str, query: tuple[Term, ...], width: int = SNIPPET) -> Markup:
    """A summary cut to about `width` characters around its first match (whole words, "…" where cut), marked."""
    found = spans(text, query)
    if len(text) <= width:
        return mark(text, query, found)
    start = max(0, (found[0][0] - width // 3) if found else 0)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    inside = [(max(a, start) - start, min(b, end) - start) for a, b in found if a < end and b > start]
    return Markup(("…" if start else "") + mark(text[start:end], query, inside) + ("…" if end < len(text) else ""))
