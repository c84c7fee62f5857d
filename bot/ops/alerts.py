"""Alerts to the operator: problems found in the state database, sent at most once per problem per `every`.

`detect(cfg, store, now)` (bot/ops/problems.py) only reads: a source failing `failures` polls in a row, a source
with no new week for `quiet`, a version that parsed to fewer than `layout_drop` of the weeks of the version
before (its layout changed), a week held past `max_wait`, deliveries uncertain or failed for good, an edition
whose bounces pass `bounce_rate`. Each problem has a stable key and says what to do. `run(cfg, store, now)`
then logs each problem and sends it by email (`[alerts] email`, over `[email] smtp_url`; without it into
state/outbox/alerts/) and to a Discord webhook ($PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL, a secret: never stored
or logged), recording each (problem, destination) in the `alerts` table so a problem seen at every poll is
sent once per `every`. A destination that fails is tried again at the next poll. The daemon runs `after_poll`
after every poll. Units sent again that may show twice (issue #21) are an event, not a state: each such alert
goes once to each destination, never again every `every`.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr

import requests

from bot.channels.base import ChannelDown, PermanentError, TransientError, Uncertain
from bot.channels.email.headers import CRLF, UnsafeHeader, check_block, mailbox, simple, unstructured
from bot.channels.email.mime import id_domain, qp
from bot.channels.email.smtp import SmtpConnection, SmtpTarget
from bot.config import Config
from bot.ops.problems import Problem, detect
from bot.store import Store, iso, parse_time
from bot.store.files import write_private

log = logging.getLogger(__name__)


WEBHOOK_ENV = "PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL"


WEBHOOK_TIMEOUT = 10.0


_FIELDS = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type",
           "Content-Transfer-Encoding"]


class AlertError(Exception):
    """One destination could not take an alert; the message holds no secret (never the webhook URL)."""


def alert_email(cfg: Config, to: str, p: Problem, now: datetime) -> bytes:
    """A plain-text email for `p`, header lines written and checked by headers.py as the newsletter's are."""
    display, sender = parseaddr(cfg.email.sender)
    subject_line, subject = unstructured("Subject", f"[paperbot] {p.subject}")
    domain = id_domain(cfg.email.list_id, cfg.email.sender)
    head = b"".join([mailbox("From", display, sender), simple("To", parseaddr(to)[1]), subject_line,
                     simple("Date", format_datetime(now)),
                     simple("Message-ID", f"<{secrets.token_hex(16)}@{domain}>"),
                     simple("Auto-Submitted", "auto-generated"), simple("MIME-Version", "1.0"),
                     simple("Content-Type", 'text/plain; charset="utf-8"'),
                     simple("Content-Transfer-Encoding", "quoted-printable")])
    check_block(head, _FIELDS, subject=subject, addresses={"From": sender, "To": parseaddr(to)[1]})
    return head + CRLF + qp(p.text() + "\n-- \npaperbot alerts: [alerts] in the config sets who gets them and "
                            "how often.\n")


class _Mail:
    """Alert emails of one run: one SMTP connection, opened on the first alert; or files in the outbox."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.conn: SmtpConnection | None = None

    def send(self, p: Problem, now: datetime) -> None:
        e = self.cfg.email
        for to in self.cfg.alerts.email:
            try:
                data = alert_email(self.cfg, to, p, now)
            except UnsafeHeader as err:
                raise AlertError(f"email: {err}") from None
            if not e.smtp_url:
                self._outbox(p, to, data, now)
                continue
            try:
                if self.conn is None:
                    self.conn = SmtpConnection(SmtpTarget.from_url(e.smtp_url, e.starttls),
                                               parseaddr(e.sender)[1], timeout=30)
                self.conn.send(parseaddr(to)[1], data)
            except (TransientError, PermanentError, ChannelDown, Uncertain) as err:
                raise AlertError(f"email to {to}: {err}") from None

    def _outbox(self, p: Problem, to: str, data: bytes, now: datetime) -> None:
        folder = self.cfg.state_dir / "outbox" / "alerts"
        name = f"{now:%Y%m%dT%H%M%S}-{p.kind}-{secrets.token_hex(3)}.eml"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (name + ".tmp")
            write_private(tmp, data)
            os.replace(tmp, folder / name)
        except OSError as err:
            raise AlertError(f"email: cannot write {folder / name}: {err.strerror or err}") from None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def post_webhook(url: str, p: Problem) -> None:
    """POST `p` to a Discord webhook: no @mention can ping anyone (allowed_mentions: none), and what a source
    said shows as typed, in a code block (issue #21)."""
    text = p.discord()
    try:
        r = requests.post(url, json={"content": text, "allowed_mentions": {"parse": []}, "username": "paperbot"},
                          timeout=WEBHOOK_TIMEOUT)
    except requests.RequestException as e:  # its message quotes the URL, which holds the webhook's token
        raise AlertError(f"Discord webhook: no answer ({type(e).__name__})") from None
    if not 200 <= r.status_code < 300:
        raise AlertError(f"Discord webhook: HTTP {r.status_code}")


def _row(store: Store, problem: str, destination: str) -> dict | None:
    rows = list(store.db["alerts"].rows_where("problem = ? AND destination = ?", [problem, destination]))
    return rows[0] if rows else None


def _record(store: Store, p: Problem, destination: str, now: datetime, *, sent: bool,
            error: str | None = None) -> None:
    with store.atomic():
        row = _row(store, p.key, destination)
        fields = {"kind": p.kind, "subject": p.subject, "last_seen": iso(now)}
        if sent:
            fields.update(last_sent=iso(now), sends=(row["sends"] if row else 0) + 1, last_error=None)
        elif error is not None:
            fields["last_error"] = error
        if row is None:
            store.db["alerts"].insert({"problem": p.key, "destination": destination, "first_seen": iso(now),
                                       "sends": 0, **fields})
        else:
            store.db["alerts"].update((p.key, destination), fields)


def _due(store: Store, p: Problem, destination: str, now: datetime, every: timedelta) -> bool:
    row = _row(store, p.key, destination)
    return row is None or not row["last_sent"] or (not p.once and now - parse_time(row["last_sent"]) >= every)


def run(cfg: Config, store: Store, now: datetime, env: dict[str, str] | None = None) -> list[Problem]:
    """Detect, then log and send what is due. Returns the problems sent to at least one destination."""
    env = os.environ if env is None else env
    webhook = env.get(WEBHOOK_ENV, "").strip()
    destinations = ["log"] + (["email"] if cfg.alerts.email else []) + (["discord"] if webhook else [])
    mail = _Mail(cfg)
    sent = []
    try:
        for p in detect(cfg, store, now):
            went = False
            for d in destinations:
                if not _due(store, p, d, now, cfg.alerts.every):
                    _record(store, p, d, now, sent=False)
                    continue
                try:
                    if d == "log":
                        log.warning("alert: %s. %s", p.subject, " ".join(p.text().split("\n")[2:]).strip())
                    elif d == "email":
                        mail.send(p, now)
                    else:
                        post_webhook(webhook, p)
                except AlertError as e:
                    log.warning("alert %s not sent by %s: %s; tried again after the next poll", p.key, d, e)
                    _record(store, p, d, now, sent=False, error=str(e))
                    continue
                _record(store, p, d, now, sent=True)
                went = True
            if went:
                sent.append(p)
    finally:
        mail.close()
    return sent


def after_poll(cfg: Config, store: Store, now: datetime) -> None:
    """The daemon's hook (bot/daemon.py): after every poll, after publishing."""
    run(cfg, store, now)
