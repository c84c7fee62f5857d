"""Single emails the web app sends: the double opt-in confirmation and the welcome with the latest edition.

Built from the newsletter's parts: Jinja2 templates from the same folders as the newsletter (so
$PAPERBOT_TEMPLATES_DIR overrides them), header lines written by headers.py and checked back, bodies in
quoted-printable like mime.py's, and delivery over SmtpConnection, or into state/outbox/email/web/ without
`smtp_url`. Blocking (SMTP, files): the web app calls these from a worker thread, never the event loop.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr
from pathlib import Path

from bot.channels.email.headers import CRLF, UnsafeHeader, check_block, mailbox, simple, unstructured
from bot.channels.email.mime import build_template, id_domain, qp
from bot.channels.email.render import (
    UNSUBSCRIBE_PLACEHOLDER,
    Edition,
    RenderError,
    _render,
    render_newsletter,
    templates_path,
)
from bot.channels.email.settings import local_trial
from bot.channels.email.smtp import SmtpConnection, SmtpTarget
from bot.channels.email.view import LOCAL_TRIAL_FOOTER, from_header
from bot.config import Config
from bot.edition.safetext import clean
from bot.store.files import write_private

log = logging.getLogger(__name__)

CONFIRM_SUBJECT = "confirm_subject.txt"
CONFIRM_TEXT = "confirm.txt"
CONFIRM_HTML = "confirm.html"
ALREADY_SUBJECT = "already_subject.txt"
ALREADY_TEXT = "already.txt"
ALREADY_HTML = "already.html"
WELCOME_TEXT = "welcome.txt"
WELCOME_HTML = "welcome.html"
_FIELDS = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


@dataclass(frozen=True)
class Mail:
    to: str
    kind: str  # "confirm" | "already" | "welcome": the outbox file name says which
    data: bytes


def _ctx(cfg: Config, **extra: object) -> dict:
    return {"title": clean(cfg.web.title), "description": clean(cfg.web.description),
            "contact": clean(cfg.email.contact), "base_url": cfg.web.base_url,
            "local_trial": LOCAL_TRIAL_FOOTER if local_trial(cfg) else "", **extra}


def _message_id(cfg: Config) -> str:
    return f"<{secrets.token_hex(16)}@{id_domain(cfg.email.list_id, cfg.email.sender)}>"


def _single(cfg: Config, to: str, kind: str, names: tuple[str, str, str], ctx: dict, now: datetime,
            templates_dir: Path | None) -> Mail:
    """A one-off email from the (subject, text, html) templates `names`; UnsafeHeader/RenderError refuse it."""
    dirs = templates_path(templates_dir)
    subject = clean(_render(names[0], ctx, dirs, autoescape=False), max_len=200)
    text = _render(names[1], ctx, dirs, autoescape=False)
    html_body = _render(names[2], ctx, dirs, autoescape=True)
    display, sender = parseaddr(from_header(cfg))
    subject_line, subject_text = unstructured("Subject", subject, max_len=0)
    boundary = f"=_paperbot_{secrets.token_hex(12)}"
    head = b"".join([mailbox("From", display, sender), simple("To", to), subject_line,
                     simple("Date", format_datetime(now)), simple("Message-ID", _message_id(cfg)),
                     simple("MIME-Version", "1.0"),
                     simple("Content-Type", f'multipart/alternative; boundary="{boundary}"')])
    check_block(head, _FIELDS, subject=subject_text, addresses={"From": sender, "To": to})
    b = boundary.encode()
    data = b"".join([head, CRLF, b"--", b, CRLF, b'Content-Type: text/plain; charset="utf-8"', CRLF,
                     b"Content-Transfer-Encoding: quoted-printable", CRLF, CRLF, qp(text), CRLF,
                     b"--", b, CRLF, b'Content-Type: text/html; charset="utf-8"', CRLF,
                     b"Content-Transfer-Encoding: quoted-printable", CRLF, CRLF, qp(html_body), CRLF,
                     b"--", b, b"--", CRLF])
    return Mail(to, kind, data)


def confirmation(cfg: Config, to: str, url: str, now: datetime, templates_dir: Path | None = None) -> Mail:
    """The confirmation email for `to` (normalised) with its one link; UnsafeHeader/RenderError refuse it."""
    hours = round(cfg.web.confirm_ttl / 3600)
    ctx = _ctx(cfg, confirm_url=url, expires=f"{hours} hours" if hours != 1 else "1 hour")
    return _single(cfg, to, "confirm", (CONFIRM_SUBJECT, CONFIRM_TEXT, CONFIRM_HTML), ctx, now, templates_dir)


def already_subscribed(cfg: Config, to: str, unsubscribe_url: str, now: datetime,
                       templates_dir: Path | None = None) -> Mail:
    """The answer to a subscribe request for an active mailbox (issue #24): the same work as a confirmation
    (one row, one email), so the web page and its timing say nothing; the reader learns it and can leave."""
    ctx = _ctx(cfg, unsubscribe_url=unsubscribe_url)
    return _single(cfg, to, "already", (ALREADY_SUBJECT, ALREADY_TEXT, ALREADY_HTML), ctx, now, templates_dir)


def welcome(cfg: Config, to: str, edition: Edition | None, unsubscribe_url: str, now: datetime,
            templates_dir: Path | None = None) -> Mail:
    """The welcome email: the latest published edition as the newsletter renders it, with a welcome line on
    top; or, before any edition exists, the short `welcome.*` templates. A list message like the newsletter:
    it carries List-Unsubscribe and the reader's own unsubscribe link."""
    dirs = templates_path(templates_dir)
    ctx = _ctx(cfg, unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER, edition=edition is not None)
    intro_text = _render(WELCOME_TEXT, ctx, dirs, autoescape=False)
    intro_html = _render(WELCOME_HTML, ctx, dirs, autoescape=True)
    if edition is not None:
        email = render_newsletter(edition, cfg, templates_dir)
        subject = f"Welcome to {clean(cfg.web.title)}: {email.subject}"
        text = intro_text.rstrip("\n") + "\n\n" + email.text
        body = email.html
        m = re.search(r"<body[^>]*>", body)
        html_body = body[:m.end()] + intro_html + body[m.end():] if m else intro_html + body
    else:
        subject = f"Welcome to {clean(cfg.web.title)}"
        text, html_body = intro_text, f"<!doctype html><html><body>{intro_html}</body></html>"
    e = cfg.email
    try:
        template = build_template(sender=from_header(cfg), subject=subject, date=now, list_id=e.list_id,
                                  contact=e.contact, text=text, html_body=html_body,
                                  placeholder=UNSUBSCRIBE_PLACEHOLDER, label="welcome")
    except UnsafeHeader as err:
        raise RenderError(str(err)) from err
    return Mail(to, "welcome", template.render(to, _message_id(cfg), unsubscribe_url))


def send(cfg: Config, mail: Mail, now: datetime) -> str:
    """Deliver `mail` over SMTP, or write it to state/outbox/email/web/; returns where it went.
    The SMTP errors of smtp.py (ChannelDown, TransientError, ...) go to the caller."""
    e = cfg.email
    if e.smtp_url:
        conn = SmtpConnection(SmtpTarget.from_url(e.smtp_url, e.starttls), parseaddr(e.sender)[1], timeout=30)
        try:
            conn.send(mail.to, mail.data)
        finally:
            conn.close()
        return "smtp"
    folder = cfg.state_dir / "outbox" / "email" / "web"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}-{mail.kind}-{_UNSAFE.sub('_', mail.to)}.eml"
    path = folder / name
    tmp = path.with_name(path.name + ".tmp")
    write_private(tmp, mail.data)
    os.replace(tmp, path)
    return str(path)

