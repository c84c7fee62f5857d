"""Mastodon through Mastodon.py: a client for one account, four calls (post a status, who am I, my recent statuses,
the instance's limits) and what their failures mean for a thread.

`Mastodon(..., ratelimit_method="throw")`: a 429 raises at once (the default "wait" sleeps and sends the POST
again, behind the ledger's back); when it comes back is `api.ratelimit_reset`, read from `X-RateLimit-Reset`.
Failures are classified once, here, because a blind resend is a public duplicate:
- `rate_limited`: a 429; `until` is the reset the server announced (now + 5 min if none is readable);
- `not_sent`: the request never left (connection refused, DNS, connect timeout, proxy or TLS failure);
- `uncertain`: the request went out and no usable answer came back (5xx, read timeout, dropped connection, an
  unreadable success): the status may exist, so reconcile before resending;
- `refused`: any other 4xx (422 over the limit, 404 an unknown `in_reply_to_id`, 401 a bad token).
The token comes from $PAPERBOT_MASTODON_TOKEN and never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import html
import logging
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import NamedTuple

import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
)
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProxyError, SSLError

from bot.channels.mastodon.compose import Limits
from bot.channels.mastodon.settings import TOKEN_ENV

log = logging.getLogger(__name__)

RATE_LIMITED, NOT_SENT, UNCERTAIN, REFUSED = "rate_limited", "not_sent", "uncertain", "refused"
DEFAULT_WAIT = timedelta(minutes=5)  # Mastodon's window, when a 429 says no reset
MAX_WAIT = timedelta(hours=24)  # a reset further away is not believed
PAGE = 40  # the most statuses one page of GET /api/v1/accounts/:id/statuses holds


class MastodonFailure(Exception):
    """A failed call, classified: `kind` is rate_limited | not_sent | uncertain | refused."""

    def __init__(self, kind: str, message: str, *, until: datetime | None = None, status: int | None = None):
        super().__init__(message)
        self.kind, self.until, self.status = kind, until, status

    def __str__(self) -> str:
        when = f" until {self.until.isoformat(timespec='seconds')}" if self.until else ""
        return f"{self.kind}{when}: {self.args[0]}"


class SeenStatus(NamedTuple):
    """A status read back from the account: its text as plain text (the server's HTML taken apart)."""

    id: str
    text: str
    in_reply_to: str | None


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get(TOKEN_ENV, "").strip() or None


def make_client(instance: str, token: str, timeout: float) -> Mastodon:
    """A client for `instance` with `token`: no version check (the constructor sends nothing), a 429 raised."""
    return Mastodon(access_token=token, api_base_url=instance, ratelimit_method="throw",
                    request_timeout=timeout, version_check_mode="none", user_agent="paperbot")


def _one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()[:300]


def _not_sent(e: BaseException) -> bool:
    """True when the exception (or one it came from) proves the request never reached the server."""
    seen: set[int] = set()
    stack: list[BaseException] = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError,
                          requests.exceptions.SSLError, ConnectTimeoutError, NewConnectionError, ProxyError,
                          SSLError)):
            return True
        reason = getattr(x, "reason", None)
        stack += [a for a in (*x.args, reason, x.__cause__, x.__context__) if isinstance(a, BaseException)]
    return False


def _until(api: Mastodon, now: datetime) -> datetime:
    reset = getattr(api, "ratelimit_reset", None)
    try:
        until = datetime.fromtimestamp(float(reset), UTC) if reset else now + DEFAULT_WAIT
    except (TypeError, ValueError, OverflowError, OSError):
        until = now + DEFAULT_WAIT
    if until <= now:
        until = now + timedelta(seconds=1)
    if until > now + MAX_WAIT:
        log.warning("mastodon: a 429 says to wait until %s; waiting %s instead", until.isoformat(), MAX_WAIT)
        until = now + MAX_WAIT
    return until


def classify(e: BaseException, api: Mastodon, now: datetime | None = None) -> MastodonFailure:
    """What a failed call means (see the module's docstring)."""
    now = now or datetime.now(UTC)
    if isinstance(e, MastodonFailure):
        return e
    if isinstance(e, MastodonRatelimitError):
        return MastodonFailure(RATE_LIMITED, _one_line(e), until=_until(api, now), status=429)
    if isinstance(e, MastodonAPIError):
        status = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], int) else None
        said = _one_line(e.args[3] if len(e.args) > 3 and e.args[3] else e.args[0] if e.args else e)
        message = f"{status} {said}" if status else said
        if isinstance(e, MastodonServerError) or (status or 0) >= 500:
            return MastodonFailure(UNCERTAIN, message, status=status)
        if status is None:  # an answer that is no JSON: a success unread, or a proxy's page
            return MastodonFailure(UNCERTAIN, message)
        return MastodonFailure(REFUSED, message, status=status)
    if isinstance(e, MastodonNetworkError):
        return MastodonFailure(NOT_SENT if _not_sent(e) else UNCERTAIN, _one_line(e))
    if isinstance(e, MastodonError):
        return MastodonFailure(UNCERTAIN, f"{type(e).__name__}: {_one_line(e)}")
    return MastodonFailure(UNCERTAIN, f"{type(e).__name__}: {_one_line(e)}")


def post_status(api: Mastodon, text: str, *, reply_to: str | None, visibility: str, language: str,
                idempotency_key: str) -> str:
    """Post `text` (a reply to our own `reply_to`: a self-thread, no mention added); the new status's id."""
    try:
        status = api.status_post(text, in_reply_to_id=reply_to, visibility=visibility, language=language,
                                 idempotency_key=idempotency_key)
        status_id = status.get("id") if isinstance(status, dict) else None
    except Exception as e:  # anything after the request may have left is classified, never swallowed
        raise classify(e, api) from e
    if not status_id:
        raise MastodonFailure(UNCERTAIN, "the answer holds no status id")
    return str(status_id)


def me(api: Mastodon) -> dict:
    """The account the token belongs to (GET /api/v1/accounts/verify_credentials): id, acct, bot."""
    try:
        account = api.account_verify_credentials()
    except Exception as e:
        raise classify(e, api) from e
    if not isinstance(account, dict) or not account.get("id"):
        raise MastodonFailure(UNCERTAIN, "verify_credentials answered without an account id")
    return {"id": str(account["id"]), "acct": str(account.get("acct") or account.get("username") or ""),
            "bot": bool(account.get("bot"))}


class _Text(HTMLParser):
    """A status's `content` (Mastodon's HTML: <p> paragraphs, <br> lines, <a> links and entities) as plain text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data):
        self.parts.append(data)


def plain(content: str) -> str:
    parser = _Text()
    parser.feed(content or "")
    parser.close()
    return "".join(parser.parts)


def recent_statuses(api: Mastodon, account_id: str, n: int = 50) -> Iterator[SeenStatus]:
    """The account's `n` most recent statuses (replies included, boosts not), newest first, a page read only
    when the one before is used up (reconciling stops at the status it looks for)."""
    given, max_id = 0, None
    while given < n:
        try:
            page = api.account_statuses(account_id, exclude_reblogs=True, limit=min(PAGE, n - given), max_id=max_id)
        except Exception as e:
            raise classify(e, api) from e
        if not page:
            return
        for s in page:
            reply = s.get("in_reply_to_id")
            max_id = str(s["id"])
            given += 1
            yield SeenStatus(max_id, plain(str(s.get("content") or "")), str(reply) if reply else None)


def comparable(text: str) -> str:
    """A status's text in the form that survives the round trip (NFC, entities unescaped, spaces collapsed)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", html.unescape(text))).strip()


def same_status(sent: str, seen: str) -> bool:
    return comparable(sent) == comparable(seen)


def _number(value: object) -> int | None:
    try:
        n = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def instance_limits(api: Mastodon, instance: str) -> Limits:
    """The instance's limits from GET /api/v2/instance (configuration.statuses), else v1's `max_toot_chars` or its
    configuration, else Mastodon's 500 and 23 with a warning. A 429 or a server that cannot be reached raises."""
    try:
        v2 = api.instance_v2()
    except MastodonNotFoundError:
        v2 = None
    except Exception as e:
        raise classify(e, api) from e
    statuses = ((v2 or {}).get("configuration") or {}).get("statuses") or {}
    chars, per_url = _number(statuses.get("max_characters")), _number(statuses.get("characters_reserved_per_url"))
    if chars:
        return Limits(chars, per_url or 23, f"{instance}/api/v2/instance")
    try:
        v1 = api.instance_v1()
    except MastodonNotFoundError:
        v1 = {}
    except Exception as e:
        raise classify(e, api) from e
    v1_statuses = ((v1 or {}).get("configuration") or {}).get("statuses") or {}
    chars = _number((v1 or {}).get("max_toot_chars")) or _number(v1_statuses.get("max_characters"))
    per_url = _number(v1_statuses.get("characters_reserved_per_url")) or 23
    if chars:
        log.warning("mastodon: %s has no /api/v2/instance limits; using v1's %d characters", instance, chars)
        return Limits(chars, per_url, f"{instance}/api/v1/instance")
    log.warning("mastodon: %s says nothing of its limits; assuming Mastodon's default of 500 characters", instance)
    return Limits(500, 23, "assumed (the instance says nothing of its limits)")
