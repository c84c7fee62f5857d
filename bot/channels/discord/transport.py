"""What sits under discord.py for paperbot (issue #12): the credentials from the environment, `Route.BASE`, and the
`requests` transport every Discord request goes through.

- `set_api_base` sets `discord.http.Route.BASE` from `[discord] api_base`: every URL discord.py builds starts
  with it (configuration of the class attribute discord.py reads, not a patch of any method; process-wide).
- `_Transport` is a `requests` adapter mounted on the session discord.py's `SyncWebhook` is given (which is how
  `requests` lets a caller shape its connections). It gives every request the timeout, and decides what
  discord.py must not do by itself inside a worker: a 429 asking to wait more than `max_wait` (or one without
  Discord's `Via` header, which discord.py would not retry) ends the call at once as `RateLimited(until=...)`,
  and a 5xx as `ServerError`, instead of discord.py's sleeps (up to 5 tries of `retry_after` each, or
  1+3+5+7+9 s); client.py makes a `ServerError` `Uncertain` for a create (Discord may have stored the message
  before answering 500, issue #21), `TransientError` for anything else. A bucket left with 0 requests whose
  reset is further away than `max_wait` is remembered, and the next request is refused as `RateLimited` rather
  than slept before. A shorter 429 is left to discord.py, which sleeps `retry_after` and resends: one message,
  no duplicate.
- The webhook's token and the bot token never appear in a message or a repr (`Credentials.redact`), and the
  debug lines of discord.py and urllib3, which hold request URLs, are redacted (`Redact`) while a client is open.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import discord
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProxyError, SSLError

from bot.channels.base import RateLimited, TransientError
from bot.channels.discord.settings import TOKEN_ENV, WEBHOOK_ENV  # (re-exported: where the channel finds them)

DEFAULT_API_BASE = "https://discord.com/api/v10"
_WEBHOOK_URL = re.compile(r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/"
                          r"(?P<id>[0-9]{17,20})/(?P<token>[A-Za-z0-9._-]{60,})/?")
MAX_UNTIL = timedelta(hours=24)  # a longer wait than this is not believed
DEFAULT_RETRY = 60.0  # a 429 that says nothing of when


class ServerError(TransientError):
    """Discord answered 5xx: nothing is wrong with the request, and a create may have been stored anyway."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class CredentialsError(RuntimeError):
    """The Discord credentials in the environment are unusable; the message names the variable, never its value."""


@dataclass(frozen=True)
class Credentials:
    webhook_id: int | None = None
    webhook_token: str | None = field(default=None, repr=False)
    bot_token: str | None = field(default=None, repr=False)

    def redact(self, text: object) -> str:
        s = str(text)
        for secret in (self.webhook_token, self.bot_token):
            if secret:
                s = s.replace(secret, "***")
        return s


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The webhook and/or bot token from the environment; None when neither is set (a trial)."""
    env = os.environ if environ is None else environ
    url, token = env.get(WEBHOOK_ENV, "").strip(), env.get(TOKEN_ENV, "").strip()
    if not url and not token:
        return None
    wid = wtoken = None
    if url:
        m = _WEBHOOK_URL.fullmatch(url)
        if m is None:
            raise CredentialsError(f"{WEBHOOK_ENV} is not a Discord webhook URL like "
                                   "https://discord.com/api/webhooks/<id>/<token> (Server Settings > Integrations)")
        wid, wtoken = int(m.group("id")), m.group("token")
    if token and not re.fullmatch(r"[A-Za-z0-9._-]{20,200}", token):
        raise CredentialsError(f"{TOKEN_ENV} does not look like a bot token (Developer Portal > Bot > Reset Token)")
    return Credentials(wid, wtoken, token or None)


def set_api_base(api_base: str) -> None:
    """Point discord.py at `api_base` (a compatible server, or a test's): every Route URL starts with it."""
    discord.http.Route.BASE = api_base.rstrip("/")


class Redact(logging.Filter):
    def __init__(self, creds: Credentials):
        super().__init__()
        self.creds = creds

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.creds.redact(record.getMessage())
        record.args = None
        return True


LOUD_LOGGERS = ("discord.webhook.sync", "urllib3.connectionpool")  # their debug lines hold request URLs


def seconds(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if x == x and x >= 0 else None  # not NaN, not negative


def _route(method: str, path: str) -> str:
    """A request's rate-limit route: a message's id does not make another one (a crosspost, an edit)."""
    return f"{method} {re.sub(r'/messages/[0-9]+', '/messages/{id}', path.split('?')[0])}"


class Transport(HTTPAdapter):
    """Every request gets the timeout; 429s and 5xx are decided here (see the module's docstring)."""

    def __init__(self, timeout: float, max_wait: float, clock: Callable[[], datetime], redact: Callable):
        super().__init__()  # max_retries=0: urllib3 never resends a request by itself
        self.timeout, self.max_wait, self.clock, self.redact = timeout, max_wait, clock, redact
        self.blocked: dict[str, datetime] = {}  # route -> until when its spent bucket resets

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        now, route = self.clock(), _route(request.method, request.path_url)
        where = self.redact(route)
        if (until := self.blocked.get(route)) and until > now:
            raise RateLimited(f"discord: {where}: the rate limit is spent until {until:%H:%M:%S} UTC", until)
        response = super().send(request, stream=stream, timeout=self.timeout, verify=verify, cert=cert,
                                proxies=proxies)
        if response.status_code == 429:
            try:
                body = response.json()
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}
            told = seconds(body.get("retry_after"))  # what discord.py sleeps for (it fails without it)
            wait = next((s for s in (told, seconds(response.headers.get("Retry-After")),
                                     seconds(response.headers.get("X-RateLimit-Reset-After"))) if s is not None),
                        DEFAULT_RETRY)
            if told is None or wait > self.max_wait or not response.headers.get("Via"):
                response.close()
                until = now + min(timedelta(seconds=wait), MAX_UNTIL)
                scope = "globally " if body.get("global") else ""
                raise RateLimited(f"discord: {where} is rate limited {scope}for {wait:.0f} s (429)", until)
        elif response.status_code >= 500:
            response.close()
            raise ServerError(f"discord: {where} answered {response.status_code} {response.reason or ''}".strip(),
                              response.status_code)
        elif response.headers.get("X-RateLimit-Remaining") == "0":
            reset = seconds(response.headers.get("X-RateLimit-Reset-After"))
            if reset is None or reset > self.max_wait:  # discord.py would sleep through it (or fail on no reset)
                del response.headers["X-RateLimit-Remaining"]
                self.blocked[route] = now + min(timedelta(seconds=reset or DEFAULT_RETRY), MAX_UNTIL)
        return response


def never_left(e: BaseException) -> bool:
    """True when the exception proves the request never reached the server (nothing can have been posted)."""
    if isinstance(e, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError,
                      requests.exceptions.SSLError)):
        return True
    seen, stack = set(), [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, (ConnectTimeoutError, NewConnectionError, ProxyError, SSLError)):
            return True
        stack += [a for a in (*x.args, getattr(x, "reason", None), x.__cause__, x.__context__)
                  if isinstance(a, BaseException)]
    return False
