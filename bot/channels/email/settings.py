"""`[email]`: the email channel's settings (keys, defaults, validation), read by the channel registry.

Imports no mail library: `paperbot --help` and `status` load every channel's settings. The SMTP password is never
here: it comes from $PAPERBOT_SMTP_PASSWORD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.channels.windows import Window, parse_send_at
from bot.config.values import (
    ConfigError,
    has_control,
    host_and_port,
    line,
    number,
    on_this_machine,
    table,
    unknown,
    whole,
)

CHANNEL = "EmailChannel"  # the class in bot/channels/email/channel.py that the registry makes
CONNECTIONS_MAX = 64
BATCH_MAX = 10_000  # [email] batch: messages per ledger commit and connection
RATE_MAX = 10_000.0  # messages per second
SUMMARY_MIN, SUMMARY_MAX = 80, 10_000  # [email] summary_chars, or 0
_SMTP_URL = re.compile(r"smtps?://[^\s/?#]+/?")
# RFC 2919: list-label "." list-id-namespace, each dot-atom-text (RFC 5322 atext, dots between)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LIST_ID = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})+")
KEYS =  {"smtp_url", "starttls", "from", "subject", "contact", "list_id", "connections", "rate", "send_at",
               "summary_chars", "batch"}


@dataclass(frozen=True)
class EmailSettings:
    """`[email]`. The SMTP password is never here: it comes from $PAPERBOT_SMTP_PASSWORD."""

    smtp_url: str | None = None  # None: messages go to state/outbox/email/ instead
    starttls: bool = True
    sender: str = "ML Papers of the Week <papers@example.org>"  # the `from` key
    subject: str = "{dates}: {headline}"  # not "{title}": the week's title mostly repeats the sender's name
    contact: str = ""
    list_id: str = "papers.example.org"
    connections: int = 2
    rate: float = 0.0  # messages per second at most; 0 = no cap
    send_at: tuple[Window, ...] = ()  # send windows in the top-level timezone; () = as soon as ready
    summary_chars: int = 300  # a longer summary is cut at a sentence end, with "Read more" (0: never cut)
    batch: int = 100  # messages per ledger commit and connection: a kill may send up to this many again on each


Settings = EmailSettings


def live(settings: EmailSettings, environ: Mapping[str, str]) -> bool:
    """Sending for real: an smtp_url (without it every message goes to the outbox, a trial)."""
    return bool(settings.smtp_url)


def enabled(settings: EmailSettings) -> bool:
    """Email is always on: without smtp_url it writes to the outbox (a trial)."""
    return True


LOCAL_TRIAL = "local trial"  # what logs, `status` and the email's footer call a send that stays on this machine


def local_trial(cfg: object) -> bool:
    """A local try-out (issue #25): the mail server (`[email] smtp_url`) and the web app (`[web] base_url`) are
    both on this machine, so nothing sent reaches anyone else and a `localhost` link in an email works. Any
    other live send is real and keeps every check."""
    email, web = getattr(cfg, "email", None), getattr(cfg, "web", None)
    if email is None or web is None or not email.smtp_url:
        return False
    try:
        return on_this_machine(urlsplit(email.smtp_url).hostname) and on_this_machine(urlsplit(web.base_url).hostname)
    except ValueError:
        return False


def parse(e: object, f: str) -> EmailSettings:
    e = table(e, f"{f}: email")
    unknown(f"{f}: [email]", e, KEYS)
    d = EmailSettings()
    smtp_url = e.get("smtp_url")
    if isinstance(smtp_url, str) and re.match(r"smtps?://[^/@]*:[^/@]*@", smtp_url):
        raise ConfigError(f"{f}: email.smtp_url: put no password in the URL; set PAPERBOT_SMTP_PASSWORD instead")
    if smtp_url is not None:
        smtp_form = "like smtp://user@host:587 or smtps://host:465"
        if not (isinstance(smtp_url, str) and _SMTP_URL.fullmatch(smtp_url) and not has_control(smtp_url)):
            raise ConfigError(f"{f}: email.smtp_url: {smtp_url!r} must look {smtp_form}")
        host_and_port(smtp_url, f"{f}: email.smtp_url", repr(smtp_url), f"a URL {smtp_form}")
    for key in ("starttls",):
        if key in e and not isinstance(e[key], bool):
            raise ConfigError(f"{f}: email.{key}: must be true or false")
    for key in ("from", "subject", "contact", "list_id"):
        if key in e:
            line(e[key], f"{f}: email.{key}")
    list_id = e.get("list_id", d.list_id)
    if list_id and not (_LIST_ID.fullmatch(list_id) and len(list_id) <= 255):
        raise ConfigError(f"{f}: email.list_id: {list_id[:80]!r} is not a list id as RFC 2919 has it: a label, "
                          "a dot and a domain you control, in letters, digits and -._ (e.g. papers.example.org), "
                          "no spaces or <>")
    connections = whole(e.get("connections", d.connections), f"{f}: email.connections", 1, CONNECTIONS_MAX)
    rate = number(e.get("rate", d.rate), f"{f}: email.rate", 0, RATE_MAX, " (0 = no cap)")
    batch = whole(e.get("batch", d.batch), f"{f}: email.batch", 1, BATCH_MAX)
    summary_chars = whole(e.get("summary_chars", d.summary_chars), f"{f}: email.summary_chars", 0, SUMMARY_MAX)
    if 0 < summary_chars < SUMMARY_MIN:
        raise ConfigError(f"{f}: email.summary_chars: {summary_chars} is too short to say anything; "
                          f"allowed: 0 (never cut) or {SUMMARY_MIN} to {SUMMARY_MAX}")
    return EmailSettings(
        smtp_url=smtp_url, starttls=e.get("starttls", d.starttls), sender=e.get("from", d.sender),
        subject=e.get("subject", d.subject), contact=e.get("contact", d.contact),
        list_id=list_id, connections=connections, rate=float(rate),
        send_at=parse_send_at(e.get("send_at", ()), f"{f}: email.send_at"), summary_chars=summary_chars,
        batch=batch,
    )
