"""One reused SMTP connection, and the translation of what the server says into retry or bounce.

smtp:// connects in the clear and upgrades with STARTTLS when `starttls = true`; smtps:// is TLS from the
first byte. The user comes from the URL, the password only from $PAPERBOT_SMTP_PASSWORD (never logged).
A 4xx, or a dropped connection or a timeout before the message's data was all sent, is a TransientError (try
again later: nothing was taken); a dropped connection or a timeout after the data's final dot went out and
before the server's answer is Uncertain (issue #21: the server may have queued the message; it is sent again
with the same Message-ID and recorded as a possible duplicate); a 5xx on RCPT is a PermanentError (bounce the
subscriber), a 5xx to DATA a MessageRefused; not being able to connect, log in or use our sender address is
ChannelDown (stop the run: nothing will get through).
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.channels.base import ChannelDown, MessageRefused, PermanentError, TransientError, Uncertain

log = logging.getLogger(__name__)

PASSWORD_ENV = "PAPERBOT_SMTP_PASSWORD"
TIMEOUT = 60.0
_warned_clear: set[str] = set()  # targets already warned about in this process (once per run, not per worker)
_warned_lock = threading.Lock()
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


class _DataMark:
    """Notes when a message's data, final dot included, has been handed to the socket (smtplib's `data()` sends
    it in one `send` of bytes; commands are str): a failure after that is an answer lost, not a message
    refused."""

    data_sent = False

    def send(self, s):
        super().send(s)  # type: ignore[misc]
        if isinstance(s, bytes | bytearray) and bytes(s).endswith(b"\r\n.\r\n"):
            self.data_sent = True


def _after_refusal(smtp: smtplib.SMTP, code: int) -> None:
    """What smtplib's sendmail does after a refused command: a 421 closes, anything else resets."""
    if code == 421:
        smtp.close()
        return
    try:
        smtp.rset()
    except smtplib.SMTPServerDisconnected:
        pass


def _sendmail_wire(smtp: smtplib.SMTP, sender: str, to: str, wire: bytes) -> None:
    """smtplib's `sendmail` for one recipient and a message already in SMTP's wire form (dot-stuffed, ending in
    CRLF.CRLF: `MessageTemplate.wire()`): the same commands, the same replies turned into the same exceptions,
    without `data()` scanning 40 KB per message for lines to stuff, which the template did once per week (issue
    #27). When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write and their replies
    are read in order: two round trips a message instead of four. Addresses that are not plain go through
    smtplib's own quoting."""
    smtp.ehlo_or_helo_if_needed()
    size = f" SIZE={len(wire) - 3}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    mail, rcpt = f"MAIL FROM:{_quote(sender)}{size}", f"RCPT TO:{_quote(to)}"
    if smtp.does_esmtp and smtp.has_extn("pipelining"):
        smtp.send(f"{mail}\r\n{rcpt}\r\nDATA\r\n")
        replies = [smtp.getreply()]  # each read as it comes: a 421 closes the connection after its reply
        if replies[0][0] != 421:
            replies.append(smtp.getreply())
            if replies[1][0] != 421:
                replies.append(smtp.getreply())
    else:
        replies = [smtp.docmd(mail)]
        if replies[0][0] == 250:
            replies.append(smtp.docmd(rcpt))
            if replies[1][0] in (250, 251):
                replies.append(smtp.docmd("DATA"))
    code, resp = replies[0]
    if code != 250:
        _after_refusal(smtp, code)
        raise smtplib.SMTPSenderRefused(code, resp, sender)
    code, resp = replies[1]
    if code not in (250, 251):
        if len(replies) > 2 and replies[2][0] == 354:  # DATA taken with no recipient (RFC 2920): end it empty
            smtp.send(b".\r\n")
            smtp.getreply()
        _after_refusal(smtp, code)
        raise smtplib.SMTPRecipientsRefused({to: (code, resp)})
    code, resp = replies[2]
    if code != 354:
        raise smtplib.SMTPDataError(code, resp)
    smtp.send(wire)
    code, resp = smtp.getreply()
    if code != 250:
        _after_refusal(smtp, code)
        raise smtplib.SMTPDataError(code, resp)


def _quote(address: str) -> str:
    return f"<{address}>" if _PLAIN_ADDRESS.fullmatch(address) else smtplib.quoteaddr(address)


class _SMTP(_DataMark, smtplib.SMTP):
    pass


class _SMTPSSL(_DataMark, smtplib.SMTP_SSL):
    pass


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    user: str | None

    @classmethod
    def from_url(cls, url: str, starttls: bool) -> SmtpTarget:
        u = urlsplit(url)
        implicit = u.scheme == "smtps"
        port = u.port or (465 if implicit else (587 if starttls else 25))
        return cls(host=u.hostname or "localhost", port=port, implicit_tls=implicit,
                   starttls=starttls and not implicit, user=unquote(u.username) if u.username else None)

    @property
    def clear_login(self) -> bool:
        """A login that would cross the network unencrypted: a user, and neither smtps:// nor STARTTLS."""
        return bool(self.user) and not self.implicit_tls and not self.starttls

    def __str__(self) -> str:  # for logs: never the password
        scheme = "smtps" if self.implicit_tls else "smtp"
        who = f"{self.user}@" if self.user else ""
        return f"{scheme}://{who}{self.host}:{self.port}"


def _reply(code: int, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return f"{code} {text}".strip()


def _warn_clear_login(t: SmtpTarget) -> None:
    with _warned_lock:
        if str(t) in _warned_clear:
            return
        _warned_clear.add(str(t))
    log.warning("%s: logging in without TLS (starttls = false): the user name and password cross the network "
                "unencrypted; set [email] starttls = true or use smtps://", t)


def _lost(e: BaseException) -> Uncertain:
    """The whole message went out and the server's answer did not come back."""
    return Uncertain(f"the connection ended after the message was sent, before the server's answer "
                     f"({type(e).__name__}: {e}): it may have been delivered")


class SmtpConnection:
    """Sends byte messages one at a time over a connection opened on first use and reused after."""

    def __init__(self, target: SmtpTarget, envelope_from: str, timeout: float = TIMEOUT):
        self.target = target
        self.envelope_from = envelope_from
        self.timeout = timeout
        self._smtp: _SMTP | _SMTPSSL | None = None
        self._password = os.environ.get(PASSWORD_ENV) if target.user else None
        if target.user and not self._password:
            raise ChannelDown(f"{target}: the URL names a user but {PASSWORD_ENV} is not set")

    def _connect(self) -> _SMTP | _SMTPSSL:
        t = self.target
        try:
            if t.implicit_tls:
                smtp: _SMTP | _SMTPSSL = _SMTPSSL(t.host, t.port, timeout=self.timeout,
                                                  context=ssl.create_default_context())
            else:
                smtp = _SMTP(t.host, t.port, timeout=self.timeout)
            smtp.ehlo()
            if t.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if t.user:
                if t.clear_login:
                    _warn_clear_login(t)
                smtp.login(t.user, self._password or "")
        except smtplib.SMTPAuthenticationError as e:
            raise ChannelDown(f"{t}: login refused: {_reply(e.smtp_code, e.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as e:
            raise ChannelDown(f"{t}: cannot connect: {e}") from None
        log.debug("connected to %s", t)
        return smtp

    def verify(self) -> None:
        """Connect, greet, STARTTLS and log in as a send would, then QUIT without sending anything
        (`paperbot check`). Raises ChannelDown saying what failed."""
        self._smtp = self._connect()
        self.close()

    def send(self, to: str, data: bytes, *, wire: bool = False) -> None:
        """Deliver `data` to `to`, reconnecting once at once if a reused connection turns out to be dead. With
        `wire`, `data` is already in SMTP's wire form (dot-stuffed, ending in CRLF.CRLF)."""
        fresh = self._smtp is None
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._send(to, data, wire)
        except smtplib.SMTPServerDisconnected:
            self.close()
            if fresh:
                raise TransientError("the server closed the connection") from None
            log.debug("connection to %s was dropped; reconnecting", self.target)
            self._smtp = self._connect()
            try:
                self._send(to, data, wire)
            except smtplib.SMTPServerDisconnected:
                self.close()
                raise TransientError("the server closed the connection") from None

    def _send(self, to: str, data: bytes, wire: bool) -> None:
        assert self._smtp is not None
        smtp = self._smtp
        smtp.data_sent = False
        try:
            if wire:
                _sendmail_wire(smtp, self.envelope_from, to, data)
            else:
                smtp.sendmail(self.envelope_from, [to], data)
        except smtplib.SMTPRecipientsRefused as e:
            code, msg = e.recipients.get(to, (0, b""))
            kind = PermanentError if 500 <= code < 600 else TransientError
            raise kind(f"RCPT: {_reply(code, msg)}") from None
        except smtplib.SMTPDataError as e:
            # After a recipient was accepted, a 5xx to DATA refuses the content, not the address: bouncing on
            # it would unsubscribe everyone the moment a filter dislikes one edition.
            kind = MessageRefused if 500 <= e.smtp_code < 600 else TransientError
            raise kind(f"DATA: {_reply(e.smtp_code, e.smtp_error)}") from None
        except smtplib.SMTPSenderRefused as e:
            self.close()
            if 400 <= e.smtp_code < 500:
                raise TransientError(f"MAIL FROM: {_reply(e.smtp_code, e.smtp_error)}") from None
            raise ChannelDown(f"MAIL FROM refused: {_reply(e.smtp_code, e.smtp_error)}") from None
        except smtplib.SMTPServerDisconnected as e:  # smtplib's form of a timeout or a reset while reading
            if smtp.data_sent:
                self.close()
                raise _lost(e) from None
            raise
        except smtplib.SMTPResponseException as e:
            self.close()
            raise TransientError(_reply(e.smtp_code, e.smtp_error)) from None
        except (smtplib.SMTPException, OSError) as e:  # timeouts, resets, TLS errors mid-stream
            self.close()
            raise (_lost(e) if smtp.data_sent else TransientError(f"{type(e).__name__}: {e}")) from None

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            try:
                smtp.close()
            except OSError:
                pass
