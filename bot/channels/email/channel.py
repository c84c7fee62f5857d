"""The email channel: one newsletter per active subscriber, over SMTP or into the outbox folder.

A week is rendered once (render.py) and encoded once (mime.py); each unit is then one
subscriber, stamped with their address, their Message-ID and their unsubscribe link. Without `smtp_url`
each message is written to state/outbox/email/<source>/<key>/ instead, with the HTML once beside them as
edition.html; with no subscribers yet, one sample goes to the `from` address, so a new user sees real output.
Writing to the outbox is a trial (`live` is False): the ledger records it as `trial`, never as sent.
`send_copy` sends one test copy of any week to any address, outside the ledger (`paperbot publish --to`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path

from bot.channels.base import ChannelDown, ChannelLimits, PermanentError, Unit, storage_error, write_file
from bot.channels.email import subscribers
from bot.channels.email.headers import UnsafeHeader
from bot.channels.email.mime import MessageTemplate, build_template, id_domain, message_id
from bot.channels.email.render import (
    SIZE_LIMIT,
    UNSUBSCRIBE_PLACEHOLDER,
    Edition,
    RenderedEmail,
    RenderError,
    edition_from_store,
    edition_path,
    personalize,
    render_newsletter,
    save_web_edition,
)
from bot.channels.email.roster import Roster
from bot.channels.email.smtp import SmtpConnection, SmtpTarget
from bot.channels.email.tokens import ENV_KEY, KEY_FILE, load_secret_key, unsubscribe_token, unsubscribe_url
from bot.channels.email.view import from_header
from bot.config import CheckResult, Config
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)

SAMPLE = "sample"  # the `ref` of the one message written to the outbox when there are no subscribers
_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


@dataclass(frozen=True)
class EmailRendition:
    source: str
    key: str
    edition: Edition
    email: RenderedEmail
    template: MessageTemplate
    secret: bytes
    base_url: str
    domain: str  # Message-ID right-hand side

    def message(self, address: str) -> tuple[str, bytes]:
        """(Message-ID, bytes) of the message for one subscriber."""
        url = unsubscribe_url(self.base_url, unsubscribe_token(self.secret, address))
        mid = message_id(self.source, self.key, address, self.domain)
        return mid, self.template.render(address, mid, url)

    def wire_message(self, address: str) -> tuple[str, bytes]:
        """`message` in SMTP's wire form (dot-stuffed, ending in CRLF.CRLF), from the template stuffed once."""
        url = unsubscribe_url(self.base_url, unsubscribe_token(self.secret, address))
        mid = message_id(self.source, self.key, address, self.domain)
        return mid, self.on_wire.render(address, mid, url)

    @cached_property
    def on_wire(self) -> MessageTemplate:
        return self.template.wire()

    def unsubscribe_url(self, address: str) -> str:
        return unsubscribe_url(self.base_url, unsubscribe_token(self.secret, address))


def outbox_dir(cfg: Config, source: str, key: str) -> Path:
    return cfg.state_dir / "outbox" / "email" / source / key


def copies_dir(cfg: Config, source: str, key: str) -> Path:
    """Where `paperbot publish WEEK --to ADDRESS` writes its copy without smtp_url: apart from the week's
    outbox folder, so a test copy is never taken for one of the week's own messages."""
    return cfg.state_dir / "outbox" / "test" / "email" / source / key


def _message(r: EmailRendition, address: str, *, wire: bool = False) -> tuple[str, bytes]:
    """One recipient's message (`wire`: in SMTP's wire form, #27); an address whose To: would not read back as
    itself (issue #24: one stored before encoded words were refused) is refused for good, that reader alone."""
    try:
        return r.wire_message(address) if wire else r.message(address)
    except UnsafeHeader as e:
        raise PermanentError(f"not sent: {e}") from e


class _SmtpSender:
    def __init__(self, rendition: EmailRendition, conn: SmtpConnection):
        self.r, self.conn = rendition, conn

    def send(self, unit: Unit) -> str:
        mid, data = _message(self.r, unit.key, wire=True)
        self.conn.send(unit.key, data, wire=True)
        return mid

    def close(self) -> None:
        self.conn.close()


class _OutboxSender:
    def __init__(self, rendition: EmailRendition, folder: Path):
        self.r, self.folder = rendition, folder

    def send(self, unit: Unit) -> str:
        mid, data = _message(self.r, unit.key)
        write_file(self.folder / f"{unit.row_id:06d}-{_UNSAFE.sub('_', unit.key)}.eml", data)
        return mid

    def close(self) -> None:
        pass


class EmailChannel:
    name = "email"
    audience = "active subscribers"
    waits_for_audience = True  # issue #25: live, with nobody subscribed, a week waits for the first subscriber
    ordered = False  # one unit per subscriber, in parallel

    def __init__(self, cfg: Config, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.cfg = cfg
        self.clock = clock
        e = cfg.email
        self.live = live = bool(e.smtp_url)  # without smtp_url every message goes to the outbox: a trial
        self.limits = ChannelLimits(
            connections=e.connections if live else 1, rate=e.rate if live else 0.0, max_attempts=4,
            backoff=1.0, backoff_max=60.0, down_after=max(5, 2 * e.connections), max_size=SIZE_LIMIT,
            batch=e.batch,
        )

    @property
    def sender_address(self) -> str:
        return parseaddr(self.cfg.email.sender)[1]

    def plan(self, store: Store, week: WeekRow) -> Roster | list[Unit]:
        try:  # an unsubscribe the web app had to queue counts before anyone is planned
            subscribers.apply_queued(store, self.cfg.state_dir / subscribers.JOURNAL)
        except sqlite3.OperationalError as e:
            log.warning("could not apply queued unsubscribes yet (%s); the web app applies them when it can", e)
        units = Roster(store, self.cfg.db_path, week.source, week.key, self.name)  # never all in memory (#27)
        if not self.cfg.email.smtp_url and self.sender_address and not units:
            return [Unit(key=self.sender_address, ref=SAMPLE)]
        return units

    def render(self, store: Store, week: WeekRow, *, dry: bool = False,
               approval: dict | None = None) -> EmailRendition:
        """The week's message for every subscriber; with `approval` the editor's approval copy instead (no
        List-Id, no unsubscribe: it goes to no subscriber; see `render_newsletter`)."""
        e = self.cfg.email
        edition = edition_from_store(store, week.source, week.key, self.name)
        email = render_newsletter(edition, self.cfg, approval=approval)
        try:
            template = build_template(sender=from_header(self.cfg), subject=email.subject, date=self.clock(),
                                      list_id="" if approval else e.list_id, contact=e.contact, text=email.text,
                                      html_body=email.html, placeholder=UNSUBSCRIBE_PLACEHOLDER,
                                      label=f"{week.source}:{week.key}")
        except UnsafeHeader as err:
            raise RenderError(str(err)) from err
        return EmailRendition(
            source=week.source, key=week.key, edition=edition, email=email, template=template,
            secret=self.preview_secret()[0] if dry else self._secret_key(),
            base_url=self.cfg.web.base_url, domain=id_domain(e.list_id, e.sender))

    def _secret_key(self) -> bytes:
        try:
            return load_secret_key(self.cfg.state_dir)
        except OSError as e:  # creating state/secret.key on a full or read-only disk
            raise storage_error(e, "read or create the signing key", e.filename or self.cfg.state_dir) from e

    def prepare(self, rendition: EmailRendition) -> None:
        try:
            save_web_edition(self.cfg, rendition.edition)
        except OSError as e:
            path = edition_path(self.cfg.state_dir, rendition.source, rendition.key)
            try:
                path.with_name(path.name + ".tmp").unlink(missing_ok=True)  # what a full disk left half-written
            except OSError:
                pass
            raise storage_error(e, "write the web edition", path) from e
        if not self.cfg.email.smtp_url:
            html, _ = personalize(rendition.email, rendition.unsubscribe_url(self.sender_address))
            folder = outbox_dir(self.cfg, rendition.source, rendition.key)
            write_file(folder / "edition.html", html.encode("utf-8"))

    def open_sender(self, rendition: EmailRendition) -> _SmtpSender | _OutboxSender:
        e = self.cfg.email
        if not e.smtp_url:
            return _OutboxSender(rendition, outbox_dir(self.cfg, rendition.source, rendition.key))
        return _SmtpSender(rendition, SmtpConnection(SmtpTarget.from_url(e.smtp_url, e.starttls),
                                                     self.sender_address))

    def on_permanent(self, store: Store, unit: Unit, error: str, now: datetime) -> None:
        if unit.ref != SAMPLE:
            subscribers.mark_bounced(store, unit.key, now=now, reason=error)

    def preview_secret(self) -> tuple[bytes, bool]:
        """The real signing key if there is one; else a throwaway one, so a preview creates no key file."""
        if os.environ.get(ENV_KEY, "").strip() or (self.cfg.state_dir / KEY_FILE).exists():
            return load_secret_key(self.cfg.state_dir), True
        return secrets.token_urlsafe(32).encode(), False

    def send_copy(self, store: Store, week: WeekRow, address: str, *, approval: dict | None = None) -> str:
        """Send one copy of `week` to `address` (over SMTP, or into the outbox's `test/` folder without
        smtp_url) and return a line saying where it went. Reads the database, never writes it: no ledger row,
        no subscriber, no web edition, no signing key (without one, the copy's unsubscribe link uses a
        throwaway key, as `preview` does). The copy has a Message-ID of its own, so a mail client never takes
        the real edition, sent later to the same address, for a duplicate of the test. With `approval` it is the
        editor's approval copy (issue #21): no unsubscribe link or header, the commands at the top.

        Raises TransientError/PermanentError/ChannelDown (SMTP), StorageError (outbox) or RenderError."""
        r = self.render(store, week, dry=True, approval=approval)
        stamp = f"{self.clock().astimezone(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"  # two copies never collide
        mid = message_id(week.source, week.key, f"{address}|test|{stamp}", r.domain)
        data = r.template.render(address, mid, None if approval else r.unsubscribe_url(address))
        e = self.cfg.email
        if e.smtp_url:
            target = SmtpTarget.from_url(e.smtp_url, e.starttls)
            conn = SmtpConnection(target, self.sender_address)
            try:
                conn.send(address, data)
            finally:
                conn.close()
            return f"email {week.source}:{week.key}: one test copy sent to {address} via {target} ({mid})"
        path = copies_dir(self.cfg, week.source, week.key) / f"{stamp}-{_UNSAFE.sub('_', address)}.eml"
        write_file(path, data)
        return f"email {week.source}:{week.key}: one test copy written to {path} (no smtp_url; {mid})"

    def _goes_to(self, store: Store, week: WeekRow, n: int) -> str:
        """Who the week would reach, by its state: a baseline or skipped week never goes out, a published one
        has gone (issue #14: preview said "would go to 5 active subscribers" of both)."""
        name = f"{week.source}:{week.key}"
        if week.state in ("baseline", "skipped"):
            return (f"  would go to nobody: {name} is {week.state}, never published (`paperbot publish "
                    f"{name} --to ADDRESS` sends yourself a test copy)")
        if week.state == "published":
            sent = store.db.execute("SELECT count(*) FROM deliveries WHERE source = ? AND week_key = ? AND "
                                    "channel = ? AND state = 'sent'", [week.source, week.key, self.name]).fetchone()[0]
            return f"  already published: sent to {sent} (see `paperbot history {name}`); nothing more goes out"
        when = " once it is ready" if week.state == "pending" else ""
        sample = "" if n or self.cfg.email.smtp_url else \
            f" (none yet: one sample to {self.sender_address} in the outbox)"
        return f"  would go to {n} active subscriber(s){when}{sample}"

    def check(self) -> list[CheckResult]:
        """`paperbot check`: log in to the SMTP server as a send would (EHLO, STARTTLS, AUTH), then QUIT;
        nothing is sent. Without smtp_url there is nothing to try: the outbox is a trial."""
        e = self.cfg.email
        out = []
        if not os.environ.get(ENV_KEY, "").strip() and not (self.cfg.state_dir / KEY_FILE).exists():
            out.append(CheckResult("email signing key", True, f"no ${ENV_KEY} and no {KEY_FILE} yet: one is made "
                                   f"in {self.cfg.state_dir / KEY_FILE} at the first send; back it up", note=True))
        if not e.smtp_url:
            return [*out, CheckResult("email smtp", True, "no smtp_url: messages are written to the outbox (a "
                                      "trial); nothing to log in to", note=True)]
        target = SmtpTarget.from_url(e.smtp_url, e.starttls)
        try:
            SmtpConnection(target, self.sender_address, timeout=30).verify()
        except ChannelDown as err:
            return [*out, CheckResult("email smtp", False, str(err))]
        how = "TLS" if target.implicit_tls else "STARTTLS" if target.starttls else "no TLS"
        who = f"logged in as {target.user}" if target.user else "no login"
        return [*out, CheckResult("email smtp", True, f"{target}: connected ({how}), {who}; QUIT, nothing sent")]

    def preview(self, store: Store, week: WeekRow, out: Path | None) -> list[str]:
        real = self.preview_secret()[1]
        r = self.render(store, week, dry=True)
        to = self.sender_address
        mid, data = r.message(to)
        n = subscribers.count(store, "active")
        how = "smtp" if self.cfg.email.smtp_url else f"outbox {self.cfg.state_dir / 'outbox'}"
        lines = [f"email: {week.source}:{week.key}", f"  subject: {r.email.subject}",
                 f"  preheader: {r.email.preheader}",
                 f"  html: {len(r.email.html.encode('utf-8')) // 1024} KB; text: {len(r.email.text)} chars; "
                 f"message: {len(data) // 1024} KB",
                 self._goes_to(store, week, n), f"  sending: {how}"]
        if r.email.size_warning:
            lines.append(f"  warning: {r.email.size_warning}")
        if not real:
            lines.append("  (no signing key yet: the sample's unsubscribe link uses a throwaway key)")
        if out is not None:
            folder = out / "email" / week.source / week.key
            html, text = personalize(r.email, r.unsubscribe_url(to))
            write_file(folder / "edition.html", html.encode("utf-8"))
            write_file(folder / "edition.txt", text.encode("utf-8"))
            write_file(folder / "sample.eml", data)
            lines.append(f"  wrote {folder}/edition.html, edition.txt, sample.eml (to {to}, {mid})")
        return lines
