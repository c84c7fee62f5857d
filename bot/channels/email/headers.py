"""Mail header lines built from untrusted text, and the check that a finished header block holds only ours.

Why not let the email package do it: given `Week =?utf-8?q?x=0D=0ABcc:_evil@x.org?=`, its header parser
*decodes* the encoded word first and then, on Python 3.11/3.12, folds the decoded CRLF into the block: a
digest's title becomes a `Bcc:` or ends the header block early (issue #7). So values are encoded here, never
parsed: text is made one clean line (bot/safetext.clean), then written either as plain folded ASCII (only
when it holds no `=?`, which is what starts an encoded word) or entirely as our own base64 encoded words, which
a reader decodes back to exactly that text, `=?…?=` included, as literal characters. Whatever the interpreter's
patch level, no byte of the value can be a line break. `check_block` then parses the finished block back and
refuses it unless it holds exactly the headers paperbot wrote, in order, one of each, and every address header
reads back as exactly the address written (issue #24: an encoded word in an address decodes to something else).
"""

from __future__ import annotations

import base64
import re
from email.headerregistry import HeaderRegistry
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from bot.edition.safetext import clean

CRLF = b"\r\n"
_LINE = 78  # RFC 5322's recommended line length; folded lines stay within it
_EW_BYTES = 39  # UTF-8 bytes per encoded word: 52 base64 chars, 64 with `=?utf-8?b?` and `?=` (RFC 2047: ≤ 75)
_NAME = re.compile(rb"[!-9;-~]+")  # a field name: printable ASCII except ':' (RFC 5322 section 3.6.8)
_PLAIN = re.compile(r"[ -~]*")  # printable ASCII and spaces
_ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc")
_REGISTRY = HeaderRegistry()
_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


class UnsafeHeader(ValueError):
    """A header value or block that is not exactly what paperbot meant to write; the message is refused."""


def _encoded_words(text: str) -> list[str]:
    """`text` as base64 encoded words, each at most `_EW_BYTES` of UTF-8, never splitting a character."""
    words, chunk, size = [], [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if chunk and size + n > _EW_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _fold(name: str, tokens: list[str]) -> bytes:
    """`Name: tok tok …`, folded before a token when the line would pass `_LINE` characters."""
    lines, line = [], f"{name}:"
    for tok in tokens:
        if len(line) + 1 + len(tok) > _LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + tok
    lines.append(line)
    return "\r\n".join(lines).encode("ascii") + CRLF


def is_plain(text: str) -> bool:
    """True when `text` can go into a header as it is: printable ASCII, no `=?`, words that fold."""
    return (bool(_PLAIN.fullmatch(text)) and "=?" not in text
            and all(len(w) <= _LINE - 20 for w in text.split(" ")))


def unstructured(name: str, text: object, *, max_len: int = 200) -> tuple[bytes, str]:
    """A `Subject:`-like header line (folded, CRLF-terminated) and the exact text a reader will see."""
    value = clean(text, max_len=max_len)
    if not value:
        return f"{name}:".encode("ascii") + CRLF, ""
    tokens = value.split(" ") if is_plain(value) else _encoded_words(value)
    return _fold(name, tokens), value


def mailbox(name: str, display: str, address: str) -> bytes:
    """`From: "Display" <addr>` with the display name quoted or encoded; the address must be plain ASCII."""
    if not _ADDR.fullmatch(address):
        raise UnsafeHeader(f"{name}: {address!r} is not a plain ASCII address")
    display = clean(display, max_len=100)
    if not display:
        return _fold(name, [f"<{address}>"])
    if is_plain(display) and '"' not in display and "\\" not in display:
        words = f'"{display}"'.split(" ")
    else:
        words = _encoded_words(display)
    return _fold(name, [*words, f"<{address}>"])


def simple(name: str, value: str) -> bytes:
    """A header whose value paperbot made itself (dates, ids, URLs): refused unless one line of ASCII."""
    if not _PLAIN.fullmatch(value) or len(value) > 900:
        raise UnsafeHeader(f"{name}: unsafe value {value!r}")
    return f"{name}: {value}".encode("ascii") + CRLF


def field_names(block: bytes) -> list[bytes]:
    """The field names of a header block, as a mail reader splits it (continuation lines start with WSP).

    Cheap enough to run on every message sent; raises UnsafeHeader for anything that is not a header line.
    """
    names = []
    lines = block[:-2].split(CRLF) if block.endswith(CRLF) else block.split(CRLF)
    for line in lines:
        if not line:
            raise UnsafeHeader("a blank line inside the header block would end it early")
        if line[:1] in (b" ", b"\t"):
            if not names:
                raise UnsafeHeader("the header block starts with a continuation line")
            continue
        name, colon, _ = line.partition(b":")
        if not colon or not _NAME.fullmatch(name):
            raise UnsafeHeader(f"not a header line: {line[:60]!r}")
        names.append(name)
    if b"\r" in block.replace(CRLF, b"") or b"\n" in block.replace(CRLF, b"") or not block.isascii():
        raise UnsafeHeader("the header block holds a bare CR or LF or a non-ASCII byte")
    return names


def reads_back(name: str, value: str, address: str) -> None:
    """Refuse unless header `name: value`, parsed as a mail reader parses it, names exactly `address`."""
    try:
        got = [a.addr_spec for a in _REGISTRY(name, value).addresses]
    except (ValueError, TypeError, IndexError) as e:  # the parser's own errors on a malformed value
        raise UnsafeHeader(f"{name}: {value[:80]!r} reads back as no address ({e})") from e
    if got != [address]:
        raise UnsafeHeader(f"{name}: reads back as {got!r}, not {address!r}")


def check_block(block: bytes, expected: list[str], *, subject: str | None = None,
                addresses: dict[str, str] | None = None) -> None:
    """Refuse `block` unless it parses to exactly the `expected` headers, in order, `subject` reads back, and
    each address header reads back as the one address in `addresses` (by field name; none without it).

    Both our own line splitter and the email package's parser must agree, so a reader built on either sees
    only what paperbot wrote.
    """
    want = [n.lower() for n in expected]
    got = [n.decode("ascii").lower() for n in field_names(block)]
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(block + CRLF)
    seen = [k.lower() for k in parsed.keys()]
    if got != want or seen != want:
        raise UnsafeHeader(f"the header block holds {seen or got}, expected exactly {want}")
    if subject is not None and str(parsed["Subject"]) != subject:
        raise UnsafeHeader(f"the Subject reads back as {str(parsed['Subject'])!r}, not {subject!r}")
    written = {k.lower(): v for k, v in (addresses or {}).items()}
    for name in _ADDRESS_FIELDS:
        if name not in seen:
            continue
        if name not in written:
            raise UnsafeHeader(f"{name}: an address header paperbot did not write")
        try:
            got_addresses = [a.addr_spec for a in parsed[name].addresses]
        except (ValueError, TypeError, IndexError) as e:  # it decodes to a CR or LF, or to nothing readable
            raise UnsafeHeader(f"{name}: reads back as no address ({e})") from e
        if got_addresses != [written[name]]:
            raise UnsafeHeader(f"{name}: reads back as {got_addresses!r}, not {written[name]!r}")
