"""Newsletter MIME, built once per week and stamped per recipient. Pure: no I/O, no clock.

Only To, Message-ID and the unsubscribe URL differ between recipients. `MessageTemplate` encodes the
common header block and both bodies once (quoted-printable, split at the unsubscribe placeholder), so a
recipient's message is a `b"".join` of cached bytes plus a few short encoded pieces: about 30x cheaper than
building an `EmailMessage` each time (see bench/email_send.py), and byte-for-byte what the email package
would decode to the same text. Output: multipart/alternative (text, then html), CRLF line ends, no line
longer than 76 octets in the bodies, headers folded by `email.policy.SMTP`.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime, parseaddr
from functools import cached_property

from bot.channels.email.headers import (
    UnsafeHeader,
    check_block,
    field_names,
    mailbox,
    reads_back,
    simple,
    unstructured,
)

CRLF = b"\r\n"
_QP_LINE = 76
_MAILTO = re.compile(r"[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+")
HEAD_FIELDS = ("From", "Subject", "Date", "List-Id", "MIME-Version")
HEAD_FIELDS_NO_LIST = ("From", "Subject", "Date", "MIME-Version")
RECIPIENT_FIELDS = ("To", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "Content-Type")


def message_id(source: str, key: str, address: str, domain: str) -> str:
    """Stable per week and subscriber, so a resend after a crash carries the same id (receivers dedupe)."""
    digest = hashlib.sha256(f"{source}|{key}|{address}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def id_domain(list_id: str, sender: str) -> str:
    """The right-hand side of our Message-IDs: the list id, else the sender's domain."""
    if list_id:
        return list_id
    return parseaddr(sender)[1].rpartition("@")[2] or "paperbot.invalid"


def qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, lines at most 76 octets (RFC 2045)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", CRLF)


def _open_end(encoded: bytes) -> bytes:
    """`encoded` followed by a soft line break, keeping its last line within 76 octets with the '='."""
    start = encoded.rfind(b"\n") + 1
    last = encoded[start:]
    if len(last) < _QP_LINE:
        return encoded + b"=" + CRLF
    cut = _QP_LINE - 1
    if b"=" in last[cut - 2:cut]:  # never split an =XX escape
        cut = last.rindex(b"=", cut - 2, cut)
    return encoded[:start] + last[:cut] + b"=" + CRLF + _open_end(last[cut:])


def qp_segments(text: str, placeholder: str) -> list[bytes]:
    """`text` split at `placeholder`, each piece encoded and ending in a soft break (except the last)."""
    pieces = text.split(placeholder)
    return [_open_end(qp(p)) for p in pieces[:-1]] + [qp(pieces[-1])]


def _check_header_value(value: str) -> str:
    if "\r" in value or "\n" in value or not value.isascii() or not value.isprintable():
        raise UnsafeHeader(f"unsafe header value {value!r}")
    return value


def dot_stuff(piece: bytes) -> bytes:
    """SMTP's transparency (RFC 5321 section 4.5.2) for bytes that start at a line start and end lines in CRLF:
    each line beginning with '.' gets one more, as smtplib's `data()` would do to the whole message."""
    out = piece.replace(b"\r\n.", b"\r\n..")
    return b"." + out if out.startswith(b".") else out


@dataclass(frozen=True)
class MessageTemplate:
    head: bytes  # From, Subject, Date, List-Id, MIME-Version: folded, CRLF, no trailing blank line
    text: tuple[bytes, ...]  # encoded pieces; the URL goes between each two
    html: tuple[bytes, ...]
    boundary: bytes
    mailto: str  # extra List-Unsubscribe target, or ""
    fields: tuple[bytes, ...] = ()  # the header names every message must hold, in order
    on_wire: bool = False  # `wire()`: render() gives SMTP's DATA bytes, dot-stuffed, ending in CRLF.CRLF

    def wire(self) -> MessageTemplate:
        """This template in SMTP's wire form (issue #27): the shared pieces dot-stuffed once per week, so a
        message goes out as rendered, without smtplib scanning each 40 KB copy for lines to stuff. Every piece
        starts at a line start (after a part's headers or a soft line break), so each can be stuffed alone."""
        return replace(self, text=tuple(map(dot_stuff, self.text)), html=tuple(map(dot_stuff, self.html)),
                       on_wire=True)

    def render(self, address: str, msg_id: str, unsubscribe_url: str | None) -> bytes:
        """The full message for one recipient (`address` normalised, ASCII, as bot.subscribers stores it).
        `unsubscribe_url` None: a message to no subscriber (the editor's approval copy), without the
        List-Unsubscribe headers; its bodies must hold no placeholder then."""
        to = _check_header_value(address)
        url = _check_header_value(unsubscribe_url or "")
        msg_id = _check_header_value(msg_id)
        text_url = _open_end(qp(url))
        html_url = _open_end(qp(html.escape(url, quote=True)))
        if self.on_wire:
            text_url, html_url = dot_stuff(text_url), dot_stuff(html_url)
        targets = f"<{url}>, <{self.mailto}>" if self.mailto else f"<{url}>"
        b = self.boundary
        listed = [b"List-Unsubscribe: ", targets.encode(), CRLF,
                  b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", CRLF] if unsubscribe_url else []
        if not unsubscribe_url and (len(self.text) > 1 or len(self.html) > 1):
            raise UnsafeHeader(f"the message to {to} has an unsubscribe link but no List-Unsubscribe header")
        block = b"".join([b"To: ", to.encode(), CRLF,
                          b"Message-ID: ", msg_id.encode(), CRLF,
                          *listed,
                          b'Content-Type: multipart/alternative; boundary="', b, b'"', CRLF])
        # The head was checked when the template was built (`check_block`) and ends in CRLF: checking the
        # recipient's lines checks the whole block, at a fifth of the cost per message.
        fields = [f for f in self.fields[self._head_fields:] if unsubscribe_url or not f.startswith(b"List-Unsub")]
        if self.fields and field_names(block) != fields:
            raise UnsafeHeader(f"the message to {to} would not hold exactly paperbot's headers")
        reads_back("To", to, to)  # issue #24: what a reader's parser takes from To: is the address written
        parts = [self.head, block, CRLF,
                 b"--", b, CRLF,
                 b'Content-Type: text/plain; charset="utf-8"', CRLF,
                 b"Content-Transfer-Encoding: quoted-printable", CRLF, CRLF]
        _join(parts, self.text, text_url)
        parts += [CRLF, b"--", b, CRLF,
                  b'Content-Type: text/html; charset="utf-8"', CRLF,
                  b"Content-Transfer-Encoding: quoted-printable", CRLF, CRLF]
        _join(parts, self.html, html_url)
        parts += [CRLF, b"--", b, b"--", CRLF]
        if self.on_wire:
            parts.append(b".\r\n")
        return b"".join(parts)

    @cached_property
    def _head_fields(self) -> int:
        """How many of `fields` the shared head holds (checked once, here: it must end in CRLF)."""
        if not self.head.endswith(CRLF):
            raise UnsafeHeader("the header block's head does not end its last line")
        return len(field_names(self.head))


def _join(parts: list[bytes], pieces: tuple[bytes, ...], between: bytes) -> None:
    parts.append(pieces[0])
    for p in pieces[1:]:
        parts.append(between)
        parts.append(p)


def build_template(*, sender: str, subject: str, date: datetime, list_id: str, contact: str,
                   text: str, html_body: str, placeholder: str, label: str = "") -> MessageTemplate:
    """Encode everything the recipients share. `placeholder` marks where each one's unsubscribe URL goes.

    The header block is written by bot/mail_headers (never parsed from untrusted text) and checked back;
    UnsafeHeader, naming `label` (the week), refuses the whole message.
    """
    try:
        display, address = parseaddr(sender)
        subject_line, subject_text = unstructured("Subject", subject, max_len=0)
        head = [mailbox("From", display, address), subject_line, simple("Date", format_datetime(date))]
        if list_id:
            head.append(simple("List-Id", f"<{list_id}>"))
        head.append(simple("MIME-Version", "1.0"))
        head_bytes = b"".join(head)
        check_block(head_bytes, list(HEAD_FIELDS if list_id else HEAD_FIELDS_NO_LIST), subject=subject_text,
                    addresses={"From": address})
    except UnsafeHeader as e:
        raise UnsafeHeader(f"{label or 'message'}: refused: {e}") from e
    mailto = ""
    contact_addr = parseaddr(contact)[1] if contact else ""
    if "@" in contact_addr and contact_addr.isascii() and _MAILTO.fullmatch(contact_addr):
        mailto = f"mailto:{contact_addr}?subject=unsubscribe"
    # "=_" never occurs in quoted-printable output, so the boundary cannot collide with a body.
    boundary = f"=_paperbot_{secrets.token_hex(12)}".encode()
    return MessageTemplate(
        head=head_bytes, text=tuple(qp_segments(text, placeholder)),
        html=tuple(qp_segments(html_body, placeholder)), boundary=boundary, mailto=mailto,
        fields=tuple(n.encode() for n in (HEAD_FIELDS if list_id else HEAD_FIELDS_NO_LIST) + RECIPIENT_FIELDS),
    )
