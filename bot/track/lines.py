r"""Line scanning in linear time for the parsers: headings, bold lines, Markdown links and images, URLs, the cap.

Python's `re` backtracks, and holds the GIL while it does (issue #20): a pattern where two adjacent quantifiers
can match the same characters (`#\s+(.*?)\s*#*\s*$` on `# a` + spaces + `a`) takes cubic time, and a search
that rescans the same text from every `[` takes quadratic time. Each scanner here returns exactly what the
pattern it replaces (quoted in its docstring) returned on one line of text (no `\n`), scanning each character
a bounded number of times; `tests/test_parser_growth.py` checks both. `MAX_LINE` bounds what a line may cost.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import NamedTuple

MAX_LINE = 64 * 1024  # characters; over 20x the longest real line (2,764 in the 2025 dair-ai README)
CHUNK = 1 << 20  # what one call over a whole document covers at most: `re` and `str` hold the GIL while they work

_HTTP = re.compile(r"https?://", re.IGNORECASE)
_LOCALHOST = re.compile(r"localhost", re.IGNORECASE)
_WS = re.compile(r"\s")
_LINK_STOP = re.compile(r"[)>\s]")  # what ends a link's address: `[^)\s>]*`
_IMAGE_STOP = re.compile(r"[)\s]")  # what ends an image's path: `[^)\s]*`


class LinkMatch(NamedTuple):
    start: int
    end: int
    label: str
    url: str


def _lead(line: str) -> int:
    r"""`^\s{0,3}`: up to three leading spaces (a fourth would make an indented code line, not a heading)."""
    i = 0
    while i < 3 and i < len(line) and line[i].isspace():
        i += 1
    return i


def _run(text: str, i: int, ch: str) -> int:
    r"""Where the run of `ch` starting at `i` ends."""
    n = len(text)
    while i < n and text[i] == ch:
        i += 1
    return i


def _ws(text: str, i: int) -> int:
    r"""Where the run of whitespace starting at `i` ends."""
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i


def atx_heading(line: str) -> tuple[int, str] | None:
    r"""(level, text) for `^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$`; None if the line is no ATX heading."""
    start = _lead(line)
    end = _run(line, start, "#")
    level = end - start
    if not 1 <= level <= 6 or end >= len(line) or not line[end].isspace():
        return None
    return level, line[end:].strip().rstrip("#").rstrip()


def bold_line(line: str) -> str | None:
    r"""The text of `^\s{0,3}\*{2,3}(.+?)\*{2,3}\s*:?\s*$` (a line that is only bold text); else None."""
    start = _lead(line)
    opening = _run(line, start, "*") - start
    if opening < 2:
        return None
    body = line.rstrip()
    if body.endswith(":"):
        body = body[:-1].rstrip()
    end = len(body)
    closing = end - len(body.rstrip("*"))
    for stars in (3, 2) if opening >= 3 else (2,):  # the opening run: greedy, then one fewer
        text_start = start + stars
        for close in (3, 2):  # the shortest text first: the longest closing run
            if closing >= close and end - close > text_start:
                return line[text_start : end - close]
    return None


def _close(text: str, i: int) -> int | None:
    r"""`\s*\)` at `i`: where it ends, or None."""
    i = _ws(text, i)
    return i + 1 if i < len(text) and text[i] == ")" else None


def _titled_close(text: str, i: int) -> int | None:
    r"""`(?:\s+"[^"]*")?\s*\)` at `i` (a link's optional title, then its parenthesis): where it ends, or None."""
    q = _ws(text, i)
    if q > i and q < len(text) and text[q] == '"':
        end_quote = text.find('"', q + 1)
        if end_quote != -1 and (end := _close(text, end_quote + 1)) is not None:
            return end
    return _close(text, i)


def _next(pattern: re.Pattern[str], text: str, i: int) -> int:
    m = pattern.search(text, i)
    return m.start() if m else len(text)


def md_links(text: str):
    r"""The matches of `\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)` in `text`, as `re.finditer`
    finds them, each as a `LinkMatch` (label and address as the groups hold them), in linear time.

    What a match after `](` needs depends only on where the `](` is, so each is tried once; and an attempt that
    fails past an address fails the same way for every `](` inside that address, so those are not tried."""
    n, pos, close_bracket = len(text), 0, -1
    failed_at, dead_until = -1, -1
    while True:
        i = text.find("[", pos)
        if i == -1:
            return
        if close_bracket <= i:
            close_bracket = text.find("]", i + 1)
            if close_bracket == -1:
                return
        k = close_bracket + 2
        pos = i + 1
        if k - 1 >= n or text[k - 1] != "(" or k == failed_at or k < dead_until:
            continue
        p = _ws(text, k)
        url_start = p + 1 if p < n and text[p] == "<" else p
        url_end = _next(_LINK_STOP, text, url_start)
        after = url_end + 1 if url_end < n and text[url_end] == ">" else url_end
        end = _titled_close(text, after)
        if end is not None:
            yield LinkMatch(i, end, text[i + 1 : close_bracket], text[url_start:url_end])
            pos = end
            continue
        if p > k and p < n and text[p] == '"':
            # `\s*` gives back a space: an empty address, then a title (`[a]( "title")`).
            end_quote = text.find('"', p + 1)
            if end_quote != -1 and (end := _close(text, end_quote + 1)) is not None:
                yield LinkMatch(i, end, text[i + 1 : close_bracket], "")
                pos = end
                continue
        failed_at, dead_until = k, url_end


def md_images(text: str):
    r"""The matches of `!\[[^\]]*\]\(\s*([^)\s]*)\s*\)` in `text` as (start, end, path), in linear time."""
    n, pos, close_bracket = len(text), 0, -1
    failed_at, dead_until = -1, -1
    while True:
        i = text.find("![", pos)
        if i == -1:
            return
        if close_bracket <= i + 1:
            close_bracket = text.find("]", i + 2)
            if close_bracket == -1:
                return
        k = close_bracket + 2
        pos = i + 1
        if k - 1 >= n or text[k - 1] != "(" or k == failed_at or k < dead_until:
            continue
        p = _ws(text, k)
        path_end = _next(_IMAGE_STOP, text, p)
        end = _close(text, path_end)
        if end is not None:
            yield i, end, text[p:path_end]
            pos = end
            continue
        failed_at, dead_until = k, path_end


def title_link(heading: str) -> tuple[str, str] | None:
    r"""(label, address) of `^\[(.+)\]\(\s*<?([^)\s>]*)>?\s*\)\s*$` (a heading that is one link); else None.

    The label runs to the last `](` (the greedy `.+`); if the address after it does not fit, an earlier `](`
    cannot either, since its address would hold the later `](` and what failed after it."""
    if not heading.startswith("["):
        return None
    mid = heading.rfind("](")
    if mid < 2:
        return None
    rest = heading[mid + 2 :].rstrip()
    if not rest.endswith(")"):
        return None
    url = rest[:-1].strip()
    if url.startswith("<"):
        url = url[1:]
    if url.endswith(">"):
        url = url[:-1]
    if _LINK_STOP.search(url):
        return None
    return heading[1:mid], url


def is_url(url: str) -> bool:
    r"""`https?://[^\s/$.?#][^\s]*\.[^\s]+` or `https?://localhost[^\s]*` (case-insensitive), whole."""
    m = _HTTP.match(url)
    if not m or _WS.search(url):
        return False
    rest = url[m.end() :]
    if _LOCALHOST.match(rest):
        return True
    return len(rest) > 1 and rest[0] not in "/$.?#" and "." in rest[1:-1]


def too_long(line: str) -> bool:
    r"""A line the parsers do not read: over `MAX_LINE` characters (reported as a defect with its number)."""
    return len(line) > MAX_LINE


def decode(data: bytes, chunk: int = CHUNK) -> str:
    """`data.decode("utf-8", errors="replace")`, a megabyte at a time: over a 50 MiB document one call holds the GIL
    (and the daemon's web app waits) for most of a tenth of a second."""
    if len(data) <= chunk:
        return data.decode("utf-8", errors="replace")
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parts = [decoder.decode(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def split_lines(text: str, chunk: int = CHUNK) -> Iterator[str]:
    """`text.splitlines()`, a megabyte at a time (cut after a `\n`, so a `\r\n` stays whole): the same lines,
    without one call over a whole hostile document holding the GIL."""
    start, n = 0, len(text)
    while start < n:
        cut = text.find("\n", start + chunk)
        end = n if cut == -1 else cut + 1
        yield from text[start:end].splitlines()
        start = end
