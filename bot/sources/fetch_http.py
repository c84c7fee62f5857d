"""Conditional HTTP GET with one deadline per attempt and bounded retries: the only way paperbot talks HTTP.

Why our own client: feedparser's fetcher has no timeout, and an idle poll must cost one cheap request
(`If-None-Match` / `If-Modified-Since` → 304, no body). Each attempt has one deadline, `timeout`, for all of it:
connect, status line, headers, redirects and body. A socket timeout alone would not do, since it bounds each
read, and a server that drips one byte a second never trips it; so a timer shuts the attempt's sockets down
when its time is up. Transient failures (connection errors, timeouts, 5xx, 408, 429) are retried with a
doubling backoff; anything else (a 404, a redirect to ftp://) fails at once.

Credentials in the URL (`https://user:token@host/…`) are taken out of it and sent as HTTP Basic auth, only to
that same scheme, host and port (never after a redirect elsewhere). `redact` removes them, and query strings,
from any text that is logged or stored. An error says the status code with its standard phrase, never the
reason phrase the server sent (its own text, issue #21).
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from bot import __version__

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_SCHEME_CHAR = re.compile(r"[a-z0-9+.-]", re.IGNORECASE)
_LETTER = re.compile(r"[a-z]", re.IGNORECASE)
_AFTER_SCHEME = re.compile(r"://[^\s?#]*+")
_QUERY_REST = re.compile(r"[^\s#]*+")


def _drop_queries(text: str) -> str:
    r"""`re.sub(r"([a-z][a-z0-9+.-]*://[^\s?#]*)\?[^\s#]*", r"\1?…", text, flags=re.I)` in linear time (issue #20):
    that search tried every letter of a long word as a scheme's start, quadratic on a hostile redirect's
    Location. Each `://` is looked at once: its scheme starts at the first letter of the run before it."""
    out, done, dead_until = [], 0, -1
    c = text.find("://")
    while c != -1:
        if c >= dead_until:
            b = c
            while b > done and _SCHEME_CHAR.match(text, b - 1):
                b -= 1
            while b < c and not _LETTER.match(text, b):
                b += 1
            if b < c:  # a scheme before this `://` (none: a later `://` may still have one, e.g. `://http://?`)
                stop = _AFTER_SCHEME.match(text, c).end()
                if text.startswith("?", stop):
                    end = _QUERY_REST.match(text, stop + 1).end()
                    out.append(text[done:stop] + "?…")
                    done = dead_until = end
                else:
                    dead_until = stop  # a `://` before `stop` finds the same end, with no `?` either
        c = text.find("://", max(c + 1, dead_until))
    out.append(text[done:])
    return "".join(out)


def redact(text: str) -> str:
    """Drop credentials (`user:token@`) and query strings from URLs, so they can be logged and stored."""
    return _drop_queries(_USERINFO.sub("***@", text))


def public_url(url: str) -> str:
    """`url` without credentials, query or fragment: what may be stored, and what relative links resolve
    against, so that no `?token=` can ever become part of a paper's link."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def split_credentials(url: str) -> tuple[str, str | None]:
    """`url` without its `user:password@`, and the `Authorization` value those make (None if there are none)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or {"http": 80, "https": 443}.get(scheme)


@dataclass(frozen=True)
class HttpOptions:
    timeout: float = 30.0  # seconds per attempt, all of it: connect, status line, headers and body
    retries: int = 2  # further attempts after a transient failure
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_bytes: int = 50 * 2**20  # a digest or feed is never this big: refuse rather than fill memory
    user_agent: str = f"paperbot/{__version__}"
    # Before each attempt: the gate of a host that asks for spacing (arXiv, bot/sources/polite.py), else None.
    gate: Callable[[str], AbstractContextManager[None]] | None = None


DEFAULT_OPTIONS = HttpOptions()


@dataclass(frozen=True)
class HttpResponse:
    status: int  # 200, or 304 when the validators still match
    body: bytes  # decoded from gzip; empty for 304
    url: str  # the final URL, after redirects (feeds resolve relative links against its public_url)
    content_type: str
    etag: str | None
    last_modified: str | None
    requests: int  # attempts made, retries included
    bytes_read: int  # bytes received on the wire (body only)


class FetchError(Exception):
    """A fetch that failed for good; carries what it cost so a poll can still report it."""

    def __init__(self, message: str, requests: int = 0, bytes_read: int = 0):
        super().__init__(message)
        self.requests = requests
        self.bytes_read = bytes_read


class _Transient(Exception):
    """One attempt failed in a way worth retrying."""


class _Deadline:
    """The one deadline of an attempt: when it passes, every socket the attempt opened is shut down, which
    ends whatever read is waiting on it (a status line, a header, the body), however slowly bytes arrive."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self.expired = False
        self._done = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def connect(self, address: tuple[str, int], timeout: object = None,
                source_address: tuple[str, int] | None = None) -> socket.socket:
        """socket.create_connection, within what is left of the deadline, and watched until it ends."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock = socket.create_connection(address, left, source_address)
        with self._lock:
            # A duplicate descriptor: TLS detaches the original, and shutdown() acts on the socket itself.
            self._socks.append(sock.dup())
            if self.expired:
                self._shutdown()
        return sock

    def _shutdown(self) -> None:
        for s in self._socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _expire(self) -> None:
        with self._lock:
            if not self._done:
                self.expired = True
                self._shutdown()

    def finish(self) -> bool:
        """Stop the timer and close the watched descriptors; True if the deadline had passed first."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            for s in self._socks:
                s.close()
            self._socks.clear()
            return self.expired


class _TimedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_timed(http.client.HTTPConnection, self.deadline), req)


class _TimedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_timed(http.client.HTTPSConnection, self.deadline), req)


def _timed(cls: type[http.client.HTTPConnection], deadline: _Deadline):
    def make(host: str, **kw: object) -> http.client.HTTPConnection:
        conn = cls(host, **kw)  # type: ignore[arg-type]
        conn._create_connection = deadline.connect  # type: ignore[attr-defined]
        return conn

    return make


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects only, and gives the Basic credentials to the original origin only."""

    def __init__(self, origin: tuple[str, str, int | None], auth: str | None):
        super().__init__()
        self.origin, self.auth = origin, auth

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's signature
        scheme = urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            raise FetchError(f"redirected to {redact(newurl)}: only http and https redirects are followed")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.auth and _origin(new.full_url) == self.origin:
            new.add_unredirected_header("Authorization", self.auth)
        return new


def _opener(deadline: _Deadline, redirects: _Redirects) -> urllib.request.OpenerDirector:
    # HTTP(S) only: no file://, ftp:// or data: handlers, so neither a config value nor a redirect reads elsewhere.
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _TimedHTTPHandler(deadline),
                    _TimedHTTPSHandler(deadline), urllib.request.HTTPDefaultErrorHandler(), redirects,
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def status_text(code: int) -> str:
    """`HTTP 404 Not Found`: the status code with the standard phrase (paperbot's words), never the phrase the
    server sent, which is the server's text: an alert showed one as a Markdown phishing link (issue #21)."""
    try:
        return f"HTTP {code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def _decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(f"unsupported Content-Encoding {encoding!r}")
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error as e:
        raise FetchError(f"body is not valid {encoding}: {e}") from e
    if len(out) > limit:
        raise FetchError(f"body is larger than {limit} bytes once decompressed")
    return out


def _attempt(req: urllib.request.Request, opts: HttpOptions, redirects: _Redirects,
             counter: list[int]) -> HttpResponse:
    deadline = _Deadline(opts.timeout)
    timed_out = f"timed out: no complete answer within {opts.timeout:g}s"
    try:
        r = _exchange(req, opts, _opener(deadline, redirects), counter)
    except (_Transient, FetchError) as e:
        if deadline.finish():  # whatever the cut looked like (a reset, a bad gzip), it was the deadline
            raise _Transient(timed_out) from e
        raise
    finally:
        expired = deadline.finish()
    if expired:  # a cut that looked like a clean end of the body is still a timeout
        raise _Transient(timed_out)
    return r


def _exchange(req: urllib.request.Request, opts: HttpOptions, opener: urllib.request.OpenerDirector,
              counter: list[int]) -> HttpResponse:
    try:
        resp = opener.open(req, timeout=opts.timeout)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 304:
                return HttpResponse(304, b"", e.geturl() or req.full_url, "", e.headers.get("ETag"),
                                    e.headers.get("Last-Modified"), 0, 0)
            reason = status_text(e.code)  # never the server's reason phrase (issue #21)
            if e.code >= 500 or e.code in (408, 429):
                raise _Transient(reason) from e
            raise FetchError(reason) from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        if isinstance(e, http.client.HTTPException) and not isinstance(e, OSError):
            raise _Transient(type(e).__name__) from e  # BadStatusLine & co. quote the server's own line
        reason = getattr(e, "reason", None) or e
        raise _Transient(f"{type(e).__name__}: {reason}" if str(reason) else type(e).__name__) from e
    with resp:
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := resp.read1(65536):
                counter[0] += len(chunk)
                size += len(chunk)
                chunks.append(chunk)
                if size > opts.max_bytes:
                    raise FetchError(f"response is larger than {opts.max_bytes} bytes")
            missing = getattr(resp, "length", None)  # read1 does not raise at a premature end: check it
            if missing:
                raise _Transient(f"connection closed {missing} bytes before the end of the body")
        except (http.client.HTTPException, OSError) as e:
            raise _Transient(f"connection failed while reading the body: {type(e).__name__}: {e}") from e
        body = _decode_body(b"".join(chunks), resp.headers.get("Content-Encoding", "").strip().lower(),
                            opts.max_bytes)
        return HttpResponse(resp.status, body, resp.geturl(), resp.headers.get("Content-Type", ""),
                            resp.headers.get("ETag"), resp.headers.get("Last-Modified"), 0, 0)


def conditional_get(url: str, *, etag: str | None = None, last_modified: str | None = None,
                    options: HttpOptions = DEFAULT_OPTIONS, accept: str = "*/*",
                    stop: threading.Event | None = None) -> HttpResponse:
    """GET `url`, sending the validators of the last good answer. Raises FetchError after the last retry.

    `stop`, when set, cuts a retry backoff short so a daemon can shut down promptly.
    """
    shown = redact(url)
    target, auth = split_credentials(url)
    if _origin(target)[0] not in ("http", "https") or not urlsplit(target).hostname:
        raise FetchError(f"GET {shown}: not an http(s) URL")
    headers = {"User-Agent": options.user_agent, "Accept": accept, "Accept-Encoding": "gzip"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    counter = [0]
    attempts = 0
    delay = options.backoff
    while True:
        attempts += 1
        req = urllib.request.Request(target, headers=headers)
        if auth:
            req.add_unredirected_header("Authorization", auth)
        try:
            with options.gate(target) if options.gate else nullcontext():
                r = _attempt(req, options, _Redirects(_origin(target), auth), counter)
            return HttpResponse(r.status, r.body, r.url, r.content_type, r.etag, r.last_modified,
                                attempts, counter[0])
        except FetchError as e:
            raise FetchError(f"GET {shown}: {redact(str(e))}", attempts, counter[0]) from e
        except _Transient as e:
            if attempts > options.retries:
                raise FetchError(f"GET {shown} failed after {attempts} attempts: {redact(str(e))}",
                                 attempts, counter[0]) from e
            if stop is not None and stop.wait(delay):
                raise FetchError(f"GET {shown}: stopped while waiting to retry ({redact(str(e))})",
                                 attempts, counter[0]) from e
            if stop is None:
                time.sleep(delay)
            delay *= 2
