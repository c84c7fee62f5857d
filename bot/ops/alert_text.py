"""How an alert reads: paperbot's own words, and text that came from elsewhere shown exactly as typed (issue #21).

Pure functions. An alert quotes what a source or a server said (a git `remote:` line, a parser's complaint, a
delivery's last error). That text is not paperbot's: on Discord it would render as Markdown (a masked link
"login expired - click to re-authorize", `**URGENT**`, a spoiler, a role pill), a convincing phish in the
operator's own channel. So it is never mixed into paperbot's sentences:
- in the plain-text email and the log it stands on its own line, indented (text/plain renders nothing);
- on Discord it is the only thing inside a fenced code block, where Discord renders no Markdown, link or
  mention, and every backtick in it is replaced by `ˋ` (U+02CB, which looks the same) so it cannot close the
  fence. The message is cut to Discord's 2000 characters by cutting the quote, never a fence.
Control and format characters are already gone (`safetext.clean`).
"""

from __future__ import annotations

from bot.edition.safetext import clean

DISCORD_MAX = 2000  # characters in one Discord message (counted as UTF-16 code units, the safe way)
QUOTE_MAX = 1000  # characters of a quote kept anywhere
BACKTICK_STAND_IN = "\u02cb"  # ˋ
FENCE = "```"
ELLIPSIS = "…"
INDENT = "    "


def quoted(text: object) -> str:
    """Text from elsewhere as an alert quotes it: one clean line, at most QUOTE_MAX characters."""
    return clean(text, max_len=QUOTE_MAX)


def plain(subject: str, body: str, quote: str = "", after: str = "") -> str:
    """The alert as plain text (the email's body, the log): the quote on its own line, indented."""
    parts = [body] + ([INDENT + quote] if quote else []) + ([after] if after else [])
    return f"{subject}\n\n" + "\n".join(p for p in parts if p) + "\n"


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def code_block(text: str) -> str:
    """`text` in a fenced code block it cannot close (its backticks replaced)."""
    return f"{FENCE}\n{text.replace('`', BACKTICK_STAND_IN)}\n{FENCE}"


def _cut(text: str, room: int) -> str:
    """The most of `text` that fits in `room` UTF-16 units, ending with "…" when cut."""
    if utf16(text) <= room:
        return text
    if room < 1:
        return ""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if utf16(text[:mid]) + 1 <= room else (lo, mid - 1)
    return text[:lo] + ELLIPSIS


def discord(subject: str, body: str, quote: str = "", after: str = "", limit: int = DISCORD_MAX) -> str:
    """The alert as one Discord message within `limit`: paperbot's words as Markdown, the quote in a code
    block. Too long: the quote is cut first, then paperbot's closing words; the fences always stay whole."""
    head = f"**paperbot: {subject}**\n{body}"
    tail = f"\n{after}" if after else ""
    if not quote:
        return _cut(head + tail, limit)
    quote = quote.replace("`", BACKTICK_STAND_IN)
    frame = utf16(head) + utf16(tail) + utf16(code_block("")) + 1  # + the line break before the fence
    if frame > limit - 40:  # no room to speak of for the quote: shorten paperbot's closing words first
        tail = _cut(tail, max(0, limit - 40 - (frame - utf16(tail))))
        frame = utf16(head) + utf16(tail) + utf16(code_block("")) + 1
    room = limit - frame
    if room < 1:
        return _cut(head, limit)
    return f"{head}\n{code_block(_cut(quote, room))}{tail}"
