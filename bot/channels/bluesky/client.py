"""A small XRPC client for the few calls paperbot makes on Bluesky, over `requests`, and what their failures
mean for a thread.

Calls: `com.atproto.server.createSession` (handle + app password), `com.atproto.server.refreshSession`,
`app.bsky.actor.getProfile`, `com.atproto.repo.createRecord` (with paperbot's own record key) and
`com.atproto.repo.getRecord`. Every request has a timeout; urllib3 never resends one by itself.

The session (access and refresh JWTs) is kept in the state folder (`sessions.py`), because createSession is
tightly limited (30 per 5 minutes, a few hundred a day per account): a run reuses it, refreshes it when the
access token's `exp` is near or the server says it expired, and logs in again only when refreshing fails.

Failures are classified once, here:
- `rate_limited`: a 429; `until` is its `ratelimit-reset` (epoch seconds), else 5 minutes, never over a day;
- `not_sent`: the request never left (connection refused, DNS, connect timeout, proxy or TLS failure);
- `uncertain`: it went out and no usable answer came back (5xx, read timeout, dropped connection, an answer
  that is not JSON): a create may have been stored, so `getRecord` decides before any resend;
- `expired`: the access token was refused as expired (refresh, then the call again: nothing was stored);
- `refused`: any other 4xx (bad password, a text over the limits, a facet out of range): never retried as is.
Tokens and the password never appear in a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProxyError, SSLError

from bot.channels.bluesky.settings import ENV_HANDLE, ENV_PASSWORD, ENV_VARS  # noqa: F401 (where they were)

log = logging.getLogger(__name__)

POST = "app.bsky.feed.post"
RATE_LIMITED, NOT_SENT, UNCERTAIN, EXPIRED, REFUSED = "rate_limited", "not_sent", "uncertain", "expired", "refused"
DEFAULT_WAIT = timedelta(minutes=5)
MAX_WAIT = timedelta(hours=24, minutes=15)
REFRESH_AHEAD = timedelta(minutes=2)  # an access token this close to its exp is refreshed before use


class CredentialsError(RuntimeError):
    """The Bluesky credentials in the environment are missing or incomplete; the message names the variables."""


class BskyError(Exception):
    """A failed XRPC call, classified: `kind` is rate_limited | not_sent | uncertain | expired | refused."""

    def __init__(self, kind: str, message: str, *, until: datetime | None = None, status: int | None = None,
                 error: str | None = None):
        super().__init__(message)
        self.kind, self.until, self.status, self.error = kind, until, status, error

    def __str__(self) -> str:
        when = f" until {self.until.isoformat(timespec='seconds')}" if self.until else ""
        return f"{self.kind}{when}: {self.args[0]}"


@dataclass(frozen=True)
class Credentials:
    handle: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Session:
    did: str
    handle: str
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)

    def to_json(self) -> dict:
        return {"did": self.did, "handle": self.handle, "accessJwt": self.access_jwt,
                "refreshJwt": self.refresh_jwt}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Session:
        values = [d.get(k) for k in ("did", "handle", "accessJwt", "refreshJwt")]
        if not all(isinstance(v, str) and v for v in values):
            raise ValueError("a session needs did, handle, accessJwt and refreshJwt")
        return cls(*values)


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The handle and app password; None when neither is set (a trial), an error naming the missing one."""
    env = os.environ if environ is None else environ
    handle, password = (env.get(n, "").strip() for n in ENV_VARS)
    if not handle and not password:
        return None
    if not handle or not password:
        missing = ENV_HANDLE if not handle else ENV_PASSWORD
        raise CredentialsError(f"Bluesky credentials incomplete: {missing} is not set (the other one is)")
    return Credentials(handle.lstrip("@"), password)


def jwt_exp(token: str) -> datetime | None:
    """The `exp` of a JWT's payload (its signature is the server's business), None if unreadable."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(data["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


def rate_limited_until(headers: Mapping[str, str], now: datetime) -> datetime:
    """When a 429 ends: its `ratelimit-reset` (epoch seconds), else `retry-after` seconds, else 5 minutes;
    never more than a day away (a wrong header must not silence the channel for a year)."""
    until = None
    try:
        if headers.get("ratelimit-reset"):
            until = datetime.fromtimestamp(int(str(headers["ratelimit-reset"]).strip()), UTC)
        elif headers.get("retry-after"):
            until = now + timedelta(seconds=int(str(headers["retry-after"]).strip()))
    except (ValueError, OverflowError, OSError):
        until = None
    until = until or now + DEFAULT_WAIT
    if until > now + MAX_WAIT:
        log.warning("bluesky: a 429 says to wait until %s; waiting %s instead", until.isoformat(), MAX_WAIT)
        until = now + MAX_WAIT
    return max(until, now)


def _one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()[:300]


def _not_sent(e: BaseException) -> bool:
    """True when the exception proves the request never reached the server."""
    if isinstance(e, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError |
                  requests.exceptions.SSLError):
        return True
    seen: set[int] = set()
    stack: list[BaseException] = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ConnectTimeoutError | NewConnectionError | ProxyError | SSLError):
            return True
        reason = getattr(x, "reason", None)
        stack += [a for a in (*x.args, reason, x.__cause__, x.__context__) if isinstance(a, BaseException)]
    return False


class _Adapter(HTTPAdapter):
    def __init__(self, timeout: float):
        super().__init__()  # max_retries=0: never a resend behind paperbot's back
        self.timeout = timeout

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        return super().send(request, stream=stream, timeout=self.timeout if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


class Xrpc:
    """One connection to `service` (`https://bsky.social`, or a test server); not shared between threads."""

    def __init__(self, service: str, timeout: float = 30.0):
        self.service = service.rstrip("/")
        self.http = requests.Session()
        adapter = _Adapter(float(timeout))
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        self.http.headers["User-Agent"] = "paperbot (+bluesky channel)"

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, nsid: str, *, params: dict | None = None, body: dict | None = None,
             token: str | None = None, now: datetime | None = None) -> dict:
        """One XRPC call; its JSON answer, or BskyError (see the module's docstring)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = self.http.request(method, f"{self.service}/xrpc/{nsid}", params=params, json=body, headers=headers)
        except requests.exceptions.RequestException as e:
            kind = NOT_SENT if _not_sent(e) else UNCERTAIN
            raise BskyError(kind, f"{nsid}: {type(e).__name__}: {_one_line(e)}") from e
        try:
            answer = r.json() if r.content else {}
        except ValueError:
            answer = None
        if r.status_code == 200 and isinstance(answer, dict):
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        message = answer.get("message") if isinstance(answer, dict) else None
        what = f"{nsid}: {r.status_code} {error or ''} {_one_line(message or '')}".rstrip()
        if r.status_code == 429:
            raise BskyError(RATE_LIMITED, what, until=rate_limited_until(r.headers, now or datetime.now(UTC)),
                            status=429, error=error)
        if r.status_code >= 500 or r.status_code == 200:
            raise BskyError(UNCERTAIN, what if r.status_code >= 500 else f"{nsid}: 200 answer is not a JSON object",
                            status=r.status_code, error=error)
        if error in ("ExpiredToken", "InvalidToken") or (r.status_code == 401 and token and
                                                         error != "AuthenticationRequired"):
            raise BskyError(EXPIRED, what, status=r.status_code, error=error)
        raise BskyError(REFUSED, what, status=r.status_code, error=error)


def at_uri_parts(uri: str) -> tuple[str, str, str]:
    """(repo, collection, rkey) of `at://repo/collection/rkey`; ValueError otherwise."""
    m = re.fullmatch(r"at://([^/\s]+)/([a-zA-Z0-9.-]+)/([A-Za-z0-9._:~-]{1,512})", uri.strip())
    if not m:
        raise ValueError(f"{uri!r} is not an at:// URI of a record")
    return m.group(1), m.group(2), m.group(3)
