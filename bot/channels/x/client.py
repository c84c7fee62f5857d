"""The X API through tweepy: a client with OAuth 1.0a user context, a timeout and a chosen API host, three calls
(post, who am I, my recent posts) and what their failures mean for a thread.

tweepy's `Client.request` hard-codes `https://api.twitter.com` and passes no timeout. Both are set through its
public `client.session` (a `requests.Session`): an adapter mounted for every URL gives each request the
timeout and, when `api_base` is another host (an API-compatible server, or a test server on 127.0.0.1),
sends the request there. It does so in `send`, after requests-oauthlib signed the request for the original
`https://api.twitter.com/...` URL, so the other server can check the OAuth 1.0a signature as X would.

Failures are classified once, here, because on X a blind resend is a public duplicate:
- `rate_limited`: a 429; `until` is when X says to come back (the later of the window's and, when spent,
  the 24-hour limit's reset);
- `not_sent`: the request never left (connection refused, DNS, connect timeout, proxy or TLS failure):
  safe to retry;
- `uncertain`: the request went out and no usable answer came back (5xx, read timeout, connection dropped,
  403 "duplicate content", an unreadable success): X may have made the post, so reconcile before resending;
- `refused`: any other 4xx (a bad signature, a text over the limit, a reply X does not allow): never retry
  it as it is.
Credentials come from the environment and never appear in a message, a log line or a repr.
"""

from __future__ import annotations

import html
import logging
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter
from requests.utils import should_bypass_proxies
from urllib3.exceptions import ConnectTimeoutError, ProxyError, SSLError

from bot.channels.x.settings import ENV_VARS
from bot.channels.x.text import twitter_text

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.twitter.com"
X_API_HOSTS = ("https://api.twitter.com", "https://api.x.com")  # what tweepy sends to (now / maybe later)
DEFAULT_TIMEOUT = 30.0
RATE_LIMITED, NOT_SENT, UNCERTAIN, REFUSED = "rate_limited", "not_sent", "uncertain", "refused"
DEFAULT_WINDOW = timedelta(minutes=15)  # X's usual window, when a 429 says no reset
MAX_WAIT = timedelta(hours=24, minutes=15)  # a reset further away than X's longest window is not believed


class CredentialsError(RuntimeError):
    """The X credentials in the environment are missing or incomplete; the message names the variables."""


class XError(Exception):
    """A failed X call, classified: `kind` is rate_limited | not_sent | uncertain | refused."""

    def __init__(self, kind: str, message: str, *, until: datetime | None = None, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.until = until
        self.status = status

    def __str__(self) -> str:
        when = f" until {self.until.isoformat(timespec='seconds')}" if self.until else ""
        return f"{self.kind}{when}: {self.args[0]}"


@dataclass(frozen=True)
class XCredentials:
    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)


class SeenPost(NamedTuple):
    """A post read back from the account's timeline; `text` with links expanded and entities unescaped."""

    id: str
    text: str
    in_reply_to: str | None


def credentials_from_env(environ: Mapping[str, str] | None = None) -> XCredentials | None:
    """The four PAPERBOT_X_* values; None when none is set (no X account: a trial), an error naming the
    missing ones when only some are."""
    env = os.environ if environ is None else environ
    values = {name: env.get(name, "").strip() for name in ENV_VARS}
    missing = [name for name, v in values.items() if not v]
    if len(missing) == len(ENV_VARS):
        return None
    if missing:
        raise CredentialsError(f"X credentials incomplete: {', '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} not set (the other PAPERBOT_X_* are)")
    return XCredentials(*values.values())


def check_api_base(api_base: str) -> str:
    """`api_base` without a trailing slash; ValueError unless it is an http(s) URL with a host."""
    parts = urlsplit(str(api_base).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"x.api_base: {api_base!r} is not an http(s) URL like {DEFAULT_API_BASE}")
    return str(api_base).strip().rstrip("/")


def redirect(url: str, api_base: str) -> str:
    """`url` sent to `api_base` instead of X's own API host (unchanged for other URLs or the default)."""
    for host in X_API_HOSTS:
        if api_base != host and (url == host or url.startswith(host + "/")):
            return api_base + url[len(host):]
    return url


class _XAdapter(HTTPAdapter):
    """Every request gets the timeout; a request to X's API host goes to `api_base` (after it was signed)."""

    def __init__(self, api_base: str, timeout: float):
        super().__init__()  # max_retries=0: urllib3 never resends a request by itself
        self.api_base = api_base
        self.timeout = timeout

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        target = redirect(request.url, self.api_base)
        if target != request.url:
            request.url = target
            if proxies and should_bypass_proxies(target, no_proxy=None):
                proxies = {}  # the proxies were chosen for X's host; honour no_proxy for the real target
        return super().send(request, stream=stream, timeout=self.timeout if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


# Loggers that write the consumer key and access token at DEBUG (the Authorization header, the signature base
# string): kept at INFO, so that `paperbot -vv` never puts credentials in a log.
OAUTH_LOGGERS = ("oauthlib", "requests_oauthlib")


def make_client(credentials: XCredentials, *, api_base: str = DEFAULT_API_BASE,
                timeout: float = DEFAULT_TIMEOUT) -> tweepy.Client:
    """A tweepy Client in OAuth 1.0a user context: no waiting on rate limits (paperbot schedules that),
    `timeout` seconds on every request, requests to X's API host sent to `api_base`."""
    if not timeout or timeout <= 0:
        raise ValueError(f"x.timeout: {timeout!r} must be a positive number of seconds")
    for name in OAUTH_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.INFO, logger.level))
    client = tweepy.Client(
        consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
        access_token=credentials.access_token, access_token_secret=credentials.access_token_secret,
        return_type=requests.Response, wait_on_rate_limit=False,
    )
    adapter = _XAdapter(check_api_base(api_base), float(timeout))
    client.session.mount("https://", adapter)
    client.session.mount("http://", adapter)
    return client


def client_from_env(*, api_base: str = DEFAULT_API_BASE, timeout: float = DEFAULT_TIMEOUT,
                    environ: Mapping[str, str] | None = None) -> tweepy.Client:
    """`make_client` with the credentials from PAPERBOT_X_*; CredentialsError naming what is missing."""
    creds = credentials_from_env(environ)
    if creds is None:
        raise CredentialsError(f"X credentials not set: {', '.join(ENV_VARS)}")
    return make_client(creds, api_base=api_base, timeout=timeout)


def _epoch(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value).strip()), UTC) if value is not None else None
    except (ValueError, OverflowError, OSError):
        return None


def rate_limited_until(headers: Mapping[str, str], now: datetime) -> datetime:
    """When a 429 ends: the reset of every spent limit (the 15-minute window, the 24-hour user or app
    limit), the latest of them; the window's reset if none says it is spent; now + 15 min if none is readable.
    Never more than a day away (a wrong header must not silence the channel for a year)."""
    spent, resets = [], []
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        reset = _epoch(headers.get(f"{prefix}-reset"))
        if reset is None:
            continue
        resets.append(reset)
        if str(headers.get(f"{prefix}-remaining", "")).strip() == "0":
            spent.append(reset)
    until = max(spent) if spent else (resets[0] if resets else now + DEFAULT_WINDOW)
    if until > now + MAX_WAIT:
        log.warning("x: a 429 says to wait until %s; waiting %s instead", until.isoformat(), MAX_WAIT)
        until = now + MAX_WAIT
    return until


def _one_line(text: object) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()[:300]


def _not_sent(e: BaseException) -> bool:
    """True when the exception proves the request never reached the server."""
    if isinstance(e, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError,
                      requests.exceptions.SSLError)):
        return True
    seen: set[int] = set()
    stack: list[BaseException] = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, (ConnectTimeoutError, ProxyError, SSLError)):  # NewConnectionError, DNS included
            return True
        reason = getattr(x, "reason", None)
        stack += [a for a in (*x.args, reason, x.__cause__, x.__context__) if isinstance(a, BaseException)]
    return False


def classify(e: BaseException, now: datetime | None = None) -> XError:
    """What a failed call means (see the module's docstring). For a read (`me`, `recent_posts`) `uncertain`
    simply means "failed, try later": a read has no effect to be unsure about."""
    now = now or datetime.now(UTC)
    if isinstance(e, XError):
        return e
    if isinstance(e, tweepy.errors.HTTPException):
        status = e.response.status_code
        message = _one_line(e)
        if status == 429:
            return XError(RATE_LIMITED, message, until=rate_limited_until(e.response.headers, now), status=status)
        if status >= 500:
            return XError(UNCERTAIN, message, status=status)
        if status == 403 and any("duplicate" in str(m).lower() for m in e.api_messages):
            return XError(UNCERTAIN, message, status=status)  # X has this text already: maybe our post
        return XError(REFUSED, message, status=status)
    if isinstance(e, requests.exceptions.RequestException):
        kind = NOT_SENT if _not_sent(e) else UNCERTAIN
        return XError(kind, f"{type(e).__name__}: {_one_line(e)}")
    return XError(UNCERTAIN, f"{type(e).__name__}: {_one_line(e)}")


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError as e:
        raise XError(UNCERTAIN, f"{response.status_code} answer is not JSON", status=response.status_code) from e
    if not isinstance(body, dict):
        raise XError(UNCERTAIN, f"{response.status_code} answer is not a JSON object", status=response.status_code)
    return body


def create_post(client: tweepy.Client, text: str, reply_to: str | None = None) -> str:
    """Post `text` (as a reply to `reply_to`); the new post's id, or XError."""
    try:
        response = client.create_tweet(text=text, in_reply_to_tweet_id=reply_to, user_auth=True)
        post_id = (_json(response).get("data") or {}).get("id")
    except Exception as e:  # anything after the request may have left is classified, never swallowed
        raise classify(e) from e
    if not post_id:
        raise XError(UNCERTAIN, f"{response.status_code} answer holds no post id", status=response.status_code)
    return str(post_id)


def me(client: tweepy.Client) -> str:
    """The id of the account the credentials belong to."""
    try:
        user_id = (_json(client.get_me(user_auth=True)).get("data") or {}).get("id")
    except Exception as e:
        raise classify(e) from e
    if not user_id:
        raise XError(UNCERTAIN, "GET /2/users/me answered without an id")
    return str(user_id)


def _seen(tweet: dict) -> SeenPost:
    text = html.unescape(str(tweet.get("text", "")))  # X escapes & < > in the text it returns
    for entity in (tweet.get("entities") or {}).get("urls") or []:
        if entity.get("url") and entity.get("expanded_url"):
            text = text.replace(entity["url"], entity["expanded_url"])  # back from t.co to what was sent
    replied = [r.get("id") for r in tweet.get("referenced_tweets") or [] if r.get("type") == "replied_to"]
    return SeenPost(str(tweet.get("id")), text, str(replied[0]) if replied and replied[0] else None)


def recent_posts(client: tweepy.Client, user_id: str, n: int = 20) -> list[SeenPost]:
    """The account's `n` most recent posts (replies included, reposts not), newest first: what reconciling
    an uncertain post reads."""
    out: list[SeenPost] = []
    token = None
    try:
        while len(out) < n:
            response = client.get_users_tweets(
                user_id, max_results=min(max(n - len(out), 5), 100), pagination_token=token, exclude=["retweets"],
                tweet_fields=["conversation_id", "entities", "in_reply_to_user_id", "referenced_tweets"],
                user_auth=True)
            body = _json(response)
            out += [_seen(t) for t in body.get("data") or [] if isinstance(t, dict)]
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                break
    except Exception as e:
        raise classify(e) from e
    return out[:n]


def comparable(text: str) -> str:
    """A post's text in the form that survives the round trip through X: NFC, entities unescaped, every
    link as `<url>` (X returns t.co links; the expanded form may be normalised), spaces collapsed."""
    text = unicodedata.normalize("NFC", html.unescape(text))
    for entity in reversed(twitter_text.extract_urls_with_indices(text)):
        start, end = entity["indices"]
        text = text[:start] + "<url>" + text[end:]
    return re.sub(r"\s+", " ", text).strip()


def same_post(sent: str, seen: str) -> bool:
    """True when `seen` (read back from X) is the post whose text paperbot sent as `sent`."""
    return comparable(sent) == comparable(seen)
