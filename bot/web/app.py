"""The public web app: the reader's pages (home, subscribe with double opt-in, archive, search, feed),
unsubscribe links and the "view in browser" copy of each edition.

Every form carries a CSRF token matching a cookie (double submit, HMAC-signed); subscribe attempts are
limited per client (`[web] subscribe_limit`; X-Forwarded-For is read only from `trusted_proxies`) and
confirmation emails per address (`confirm_per_day`). The subscribe answer is the same whatever the address's
state, and links carry opaque ids, so nothing shows who is subscribed (issue #13).

A GET never changes anything (mail scanners follow links): the unsubscribe and confirmation links show one
button, whose POST acts. Mail providers' RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) unsubscribes
at once and gets a tiny 200. Tokens carry an opaque id and an HMAC (channels/email/tokens.py; old links with
the address still work); a forged one changes nothing and gets a 400 page.

The event loop only parses requests and writes answers: SQLite and rendering run in worker threads (each with
its own connection), so a database held by a long poll never stalls the server. A page read waits at most
`READ_BUSY` for a lock and then answers 503 with Retry-After. An unsubscribe is never lost: if the write lock
does not come within `WRITE_WAIT`, it is appended (fsynced) to a journal in the state folder and applied as
soon as the lock frees, and again at start. Only released editions are public (see `_released`); the
archive, feed and search show the published ones (bot/web/reader.py, `published_filter`). Emails
(confirmation, welcome) are built and sent on a thread of their own, after the answer, so the answer's
timing does not depend on the address either.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
import secrets
import signal
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from html import escape
from http import HTTPStatus
from pathlib import Path
from typing import Any

import sqlite_utils
from aiohttp import web

from bot.channels.email import subscribers, transactional
from bot.channels.email.render import edition_from_store, edition_path, render_web_edition
from bot.channels.email.tokens import (
    confirm_token,
    csrf_token,
    load_secret_key,
    new_nonce,
    subscriber_ref,
    unsubscribe_token,
    unsubscribe_url,
    verify_confirm,
    verify_ref,
    verify_token,
)
from bot.config import Config
from bot.edition.safetext import clean
from bot.store import Store
from bot.web import health, reader

log = logging.getLogger(__name__)

READ_BUSY = 1.0  # seconds a page read waits for a lock before answering 503
WRITE_WAIT = 2.0  # seconds an unsubscribe waits for the write lock before it is queued in the journal
APPLY_BUSY = 0.2  # seconds each attempt to apply the journal waits for the lock
APPLY_EVERY = 0.5  # seconds between those attempts
RETRY_AFTER = "5"
CACHE_SIZE = 16  # rendered editions kept in memory

KEY = web.AppKey("key", bytes)
CONFIG = web.AppKey("config", Config)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
CSRF_COOKIE = "paperbot_csrf"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "X-Content-Type-Options": "nosniff",
}
SERVER = "paperbot"  # not aiohttp's "Python/3.x aiohttp/3.y"
_ERRORS = {
    400: ("Bad request", "This request could not be read."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
    408: ("Too slow", "The request did not arrive in time. Please try again."),
    403: ("Form expired", "This form is out of date or was not sent from our page, so nothing was changed. "
                          "Reload the page and try again."),
    413: ("Too large", "This request is larger than this site accepts."),
    429: ("Too many attempts", "Too many attempts from your network in a short time. Please wait a few "
                               "minutes and try again."),
    500: ("Something went wrong", "The page could not be made. Please try again later."),
    503: ("Busy", "The site is busy for a moment. Please try again in a few seconds."),
}


def page(title: str, body_html: str, status: int = 200) -> web.Response:
    """A small HTML page. `title` is escaped here; `body_html` must be built from escaped parts."""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)}</title><link rel="stylesheet" href="/static/site.css"></head>'
            f'<body><main id="main"><h1>{escape(title)}</h1>{body_html}</main></body></html>')
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, "Cache-Control": "no-store", "Server": SERVER})


def error_page(status: int) -> web.Response:
    """Our page for an error status (aiohttp's own are plain text without our headers)."""
    title, text = _ERRORS.get(status) or (_phrase(status), "This request could not be answered.")
    resp = page(title, f"<p>{escape(text)}</p>", status=status)
    if status == 503:
        resp.headers["Retry-After"] = RETRY_AFTER
    return resp


def _too_many(retry_after: float) -> web.Response:
    resp = error_page(429)
    resp.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return resp


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def _bad_token() -> web.Response:
    return page("This link is not valid", "<p>This unsubscribe link is damaged or was not made by us, so "
                "nothing was changed. Use the link at the bottom of one of our emails, or write to us.</p>",
                status=400)


def _is_busy(e: sqlite3.OperationalError) -> bool:
    return "locked" in str(e) or "busy" in str(e)


class Db:
    """SQLite off the event loop. Reads run on a few threads, writes on one; each thread has its own
    connection (sqlite3 connections belong to the thread that made them), opened on first use."""

    def __init__(self, path: Path, journal: Path, readers: int = 4):
        self.path, self.journal = path, journal
        self.readers = ThreadPoolExecutor(readers, thread_name_prefix="web-db")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="web-db-write")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _store(self, busy: float) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)  # used by this thread only; see close()
            with self._lock:
                self._conns.append(conn)
            store = self._local.store = Store(sqlite_utils.Database(conn))
        _busy_timeout(store, busy)
        return store

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(store, *args)` on a reader thread; sqlite3.OperationalError if a lock lasts over READ_BUSY."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.readers, lambda: fn(self._store(READ_BUSY), *args))

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(store, *args)` on the writer thread (one at a time, so queued unsubscribes keep their order)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.writer, lambda: fn(self._store(WRITE_WAIT), *args))

    def close(self) -> None:
        self.readers.shutdown(wait=True)
        self.writer.shutdown(wait=True)
        for conn in self._conns:
            conn.close()


def _busy_timeout(store: Store, seconds: float) -> None:
    store.db.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


def _queued(journal: Path) -> bool:
    try:
        return journal.stat().st_size > 0
    except FileNotFoundError:
        return False


def _address_for(store: Store, key: bytes, ref: str) -> str | None:
    """The address behind a link's opaque ref, filling the refs of addresses added since (by the CLI)."""
    address = subscribers.address_for_ref(store, ref)
    if address is None and subscribers.fill_refs(store, lambda a: subscriber_ref(key, a)):
        address = subscribers.address_for_ref(store, ref)
    return address


def _unsubscribe(store: Store, journal: Path, who: tuple[str, str], origin: str, now: datetime,
                 key: bytes = b"") -> bool:
    """Unsubscribe `who` (("address", a) from an old link, ("ref", r) from a new one) now, or queue it in the
    journal if the lock does not come within WRITE_WAIT (or the database fails). True if queued.

    Earlier queued requests go first, so the journal keeps the order the requests came in."""
    kind, value = who
    try:
        if _queued(journal):
            _busy_timeout(store, APPLY_BUSY)
            if key:
                subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))
            subscribers.apply_queued(store, journal)
        _busy_timeout(store, WRITE_WAIT)
        address = value if kind == "address" else _address_for(store, key, value)
        if address is not None:  # None: an address erased since; there is nothing to stop
            subscribers.unsubscribe(store, address, now=now, origin=origin)
        return False
    except sqlite3.Error as e:  # locked, or worse: the reader asked, so keep the request until it can be done
        subscribers.queue_unsubscribe(journal, value if kind == "address" else "", now=now, origin=origin,
                                      ref=value if kind == "ref" else None)
        (log.warning if isinstance(e, sqlite3.OperationalError) and _is_busy(e) else log.error)(
            "database: %s; an unsubscribe via %s is queued in %s and applied as soon as it can be", e, origin,
            journal)
        return True


def _apply_journal(store: Store, journal: Path, key: bytes = b"") -> int:
    if not _queued(journal):
        return 0
    _busy_timeout(store, APPLY_BUSY)
    if key:  # a queued new-form link names a ref: map every address to its ref first
        subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))
    return subscribers.apply_queued(store, journal)


async def _drain_journal(app: web.Application) -> None:
    """Apply queued unsubscribes at start and then whenever the lock frees, every APPLY_EVERY seconds."""
    db = app[DB]
    last = ""
    while True:
        problem = ""
        try:
            if await asyncio.to_thread(_queued, db.journal):  # no connection is opened for an empty journal
                await db.write(_apply_journal, db.journal, app[KEY])
        except sqlite3.Error as e:
            problem = "" if isinstance(e, sqlite3.OperationalError) and _is_busy(e) else f"database: {e}"
        except OSError as e:
            problem = f"{db.journal}: {e.strerror or e}"
        if problem and problem != last:  # once per problem, not every half second
            log.error("cannot apply the queued unsubscribes yet (%s); retrying", problem)
        last = problem
        await asyncio.sleep(APPLY_EVERY)


def _who(key: bytes, token: str) -> tuple[str, str] | None:
    """("ref", r) for a new-form link, ("address", a) for one mailed before issue #13; None if forged."""
    ref = verify_ref(key, token)
    if ref is not None:
        return "ref", ref
    address = verify_token(key, token)
    return ("address", address) if address is not None else None


async def unsubscribe_form(request: web.Request) -> web.Response:
    if _who(request.app[KEY], request.match_info["token"]) is None:
        return _bad_token()
    site = request.app[SITE]
    return await _render(request, "web/message.html", "Unsubscribe", paragraphs=[
        f"Stop sending {site['title']} to the address this link was emailed to?"],
        form={"action": request.path, "button": "Unsubscribe"})


async def _record_unsubscribe(db: Db, who: tuple[str, str], origin: str, key: bytes) -> bool:
    """Unsubscribe `who` now or queue it; True if queued. OSError if neither can be done."""
    now = datetime.now(UTC)
    try:
        return await db.write(_unsubscribe, db.journal, who, origin, now, key)
    except sqlite3.Error as e:  # not even a connection: queue it all the same
        log.error("database: %s; an unsubscribe via %s is queued in %s", e, origin, db.journal)
        kind, value = who
        await asyncio.to_thread(subscribers.queue_unsubscribe, db.journal, value if kind == "address" else "",
                                now=now, origin=origin, ref=value if kind == "ref" else None)
        return True


async def _read_form(request: web.Request) -> Any:
    """The POSTed form, or None if it did not arrive within `[web] header_timeout`."""
    try:
        async with asyncio.timeout(request.app[CONFIG].web.header_timeout):
            return await request.post()
    except TimeoutError:
        return None


def _slow() -> web.Response:
    resp = error_page(408)
    resp.force_close()
    return resp


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    key = request.app[KEY]
    who = _who(key, request.match_info["token"])
    if who is None:
        return _bad_token()
    form = await _read_form(request)
    if form is None:
        return _slow()
    one_click = form.get("List-Unsubscribe") == "One-Click"  # RFC 8058: the mail provider posts, no cookie
    if not one_click and not _csrf_ok(request, form):
        return error_page(403)
    origin = "web:one-click" if one_click else "web"
    try:
        queued = await _record_unsubscribe(request.app[DB], who, origin, key)
    except OSError as e:  # the database unusable and the journal not writable (a full disk): ask to come back
        log.error("an unsubscribe via %s could not be recorded: %s", origin, e.strerror or e)
        return error_page(503)
    if one_click:
        return web.Response(text="unsubscribe queued\n" if queued else "unsubscribed\n", status=202 if queued
                            else 200, headers={**_HEADERS, "Server": SERVER})
    site = request.app[SITE]
    contact = f" To reach us, write to {site['contact']}." if site["contact"] else ""
    return await _render(request, "web/message.html", "You are unsubscribed", paragraphs=[
        f"That address will get no more emails from {site['title']}.",
        "Changed your mind? Subscribe again below; we will ask you to confirm." + contact], subscribe=True)


# -- the reader's pages ---------------------------------------------------------------------------------

def _csrf_cookie(request: web.Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a new one (True: set it on the answer)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum():
        return cookie, False
    return secrets.token_urlsafe(24), True


def _csrf_ok(request: web.Request, form: Any) -> bool:
    """The form's `csrf` field is the signature of the cookie this browser holds (an attacker's page can
    neither read our cookie nor make the signature)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    field = form.get("csrf", "")
    return bool(cookie) and isinstance(field, str) and hmac.compare_digest(
        field.encode(), csrf_token(request.app[KEY], cookie).encode())


def _set_cookie(request: web.Request, resp: web.StreamResponse, cookie: str) -> None:
    resp.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="Lax", path="/",
                    secure=request.app[CONFIG].web.base_url.startswith("https:"))


async def _render(request: web.Request, template: str, title: str, status: int = 200, **ctx: Any) -> web.Response:
    """A page from templates/web/, rendered on the render threads, with a CSRF token for its forms."""
    cookie, fresh = _csrf_cookie(request)
    full = {"site": request.app[SITE], "page_title": title, "csrf": csrf_token(request.app[KEY], cookie),
            "paragraphs": [], "form": None, "subscribe": False, **ctx}
    pages = request.app[PAGES]
    body = await asyncio.get_running_loop().run_in_executor(request.app[EDITIONS].pool, pages.render, template, full)
    resp = web.Response(body=body, status=status, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, "Cache-Control": "no-store", "Server": SERVER})
    if fresh:
        _set_cookie(request, resp, cookie)
    return resp


class ClientLimiter:
    """At most `limit` attempts per client address in any `window` seconds (a sliding window in memory)."""

    def __init__(self, limit: int, window: float, max_clients: int = 100_000):
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self.hits: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, client: str, now: float | None = None) -> float:
        """0 if this attempt is allowed (and counted), else the seconds until the next one would be."""
        now = time.monotonic() if now is None else now
        q = self.hits.get(client)
        if q is None:
            q = self.hits[client] = deque()
            while len(self.hits) > self.max_clients:
                self.hits.popitem(last=False)
        self.hits.move_to_end(client)
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return q[0] + self.window - now
        q.append(now)
        return 0.0


def client_address(request: web.Request, trusted: tuple) -> str:
    """The client's IP: the peer's, or, when the peer is a trusted proxy, the right-most X-Forwarded-For
    entry that is not itself a trusted proxy (entries further left are the client's own claims)."""
    peer = request.remote or "?"

    def is_trusted(ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.strip().strip("[]"))
        except ValueError:
            return False
        return any(addr in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop.strip("[]")))
            except ValueError:
                return peer  # garbage from a proxy we trust: count it against the proxy
    return peer


async def home(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    found = await request.app[DB].read(reader.latest, cfg)
    latest = None
    if found is not None:
        row, edition = found
        latest = {"url": row.url, "title": row.title, "dates": row.dates, "n": row.n,
                  "papers": [{"title": clean(p.title) or "(untitled)", "summary": clean(p.summary)}
                             for p in edition.papers]}
    return await _render(request, "web/index.html", cfg.web.title, latest=latest)


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise web.HTTPNotFound()
    return int(raw)


async def archive(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    number = _page_number(request)
    rows, pages = await request.app[DB].read(reader.editions, cfg, number)
    if number > pages:
        raise web.HTTPNotFound()
    return await _render(request, "web/editions.html", "Every edition", editions=rows, page=number, pages=pages,
                         newer=f"/editions/?page={number - 1}" if number > 1 else None,
                         older=f"/editions/?page={number + 1}" if number < pages else None)


async def search_page(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    q = request.query.get("q", "")[:reader.MAX_QUERY].strip()
    total, hits = (await request.app[DB].read(reader.search, cfg, q)) if q else (0, [])
    return await _render(request, "web/search.html", f"Search: {q}" if q else "Search", q=q, total=total, hits=hits)


async def feed(request: web.Request) -> web.Response:
    body = await request.app[DB].read(reader.feed, request.app[CONFIG], request.app[PAGES])
    return web.Response(body=body, content_type="application/atom+xml", charset="utf-8",
                        headers={**_HEADERS, "Cache-Control": "max-age=300", "Server": SERVER})


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CSS], content_type="text/css", charset="utf-8",
                        headers={**_HEADERS, "Cache-Control": "max-age=3600", "Server": SERVER})


def _spawn(request: web.Request, fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` on the mail thread after the answer; errors are logged, never shown."""
    app = request.app
    fut = asyncio.get_running_loop().run_in_executor(app[MAIL], fn, *args)
    app[TASKS].add(fut)
    fut.add_done_callback(app[TASKS].discard)


def _send_confirmation(cfg: Config, key: bytes, address: str, nonce: str) -> None:
    now = datetime.now(UTC)
    url = f"{cfg.web.base_url}/confirm/{confirm_token(key, nonce)}"
    try:
        transactional.send(cfg, transactional.confirmation(cfg, address, url, now), now)
        log.info("sent a confirmation email")
    except Exception as e:  # SMTP down, a template error: logged for the operator; the reader can try again
        log.error("could not send a confirmation email: %s", e)


def _send_welcome(cfg: Config, key: bytes, address: str, edition: Any) -> None:
    now = datetime.now(UTC)
    try:
        url = unsubscribe_url(cfg.web.base_url, unsubscribe_token(key, address))
        transactional.send(cfg, transactional.welcome(cfg, address, edition, url, now), now)
        log.info("sent a welcome email")
    except Exception as e:
        log.error("could not send a welcome email: %s", e)


def _subscribe(store: Store, address: str, now: datetime, cfg: Config, nonce: str) -> bool:
    return subscribers.request_confirmation(store, address, now=now, ttl=timedelta(seconds=cfg.web.confirm_ttl),
                                            per_day=cfg.web.confirm_per_day, nonce=nonce)


async def subscribe(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    wait = request.app[LIMITER].check(client_address(request, cfg.web.trusted_proxies))
    if wait:
        log.warning("subscribe attempts over [web] subscribe_limit from one client; answered 429")
        return _too_many(wait)
    form = await _read_form(request)
    if form is None:
        return _slow()
    if not _csrf_ok(request, form):
        return error_page(403)
    try:
        address = subscribers.normalize_address(str(form.get("email", "")))
    except subscribers.InvalidAddress:
        return await _render(request, "web/message.html", "Check the address", status=400, subscribe=True,
                             paragraphs=["That does not look like an email address. Please check it and try again."])
    nonce = new_nonce()
    send = await request.app[DB].write(_subscribe, address, datetime.now(UTC), cfg, nonce)
    if send:
        _spawn(request, _send_confirmation, cfg, request.app[KEY], address, nonce)
    return await _render(request, "web/message.html", "Check your inbox", paragraphs=[
        "If that address can receive our emails, a message with a confirmation link is on its way.",
        "Open it and press the button to start receiving the newsletter. Nothing is sent until you do."])


_CONFIRM_PAGES = {
    "unknown": ("This link is not valid", "This confirmation link was not made by us, so nothing was changed."),
    "used": ("This link was used already", "This confirmation link has already been used. If you are not "
             "getting the newsletter, subscribe again."),
    "expired": ("This link has expired", "This confirmation link is too old, so nothing was changed. Subscribe "
                "again to get a new one."),
}


def _confirmation_state(store: Store, nonce: str, now: datetime) -> str:
    row = store.db.execute("SELECT expires_at, used_at FROM confirmations WHERE nonce = ?", [nonce]).fetchone()
    if row is None:
        return "unknown"
    if row[1]:
        return "used"
    return "expired" if datetime.fromisoformat(row[0]) <= now else "ok"


async def _confirm_problem(request: web.Request, state: str) -> web.Response:
    title, text = _CONFIRM_PAGES[state]
    return await _render(request, "web/message.html", title, status=400 if state == "unknown" else 410,
                         paragraphs=[text], subscribe=True)


async def confirm_form(request: web.Request) -> web.Response:
    nonce = verify_confirm(request.app[KEY], request.match_info["token"])
    if nonce is None:
        return await _confirm_problem(request, "unknown")
    state = await request.app[DB].read(_confirmation_state, nonce, datetime.now(UTC))
    if state != "ok":
        return await _confirm_problem(request, state)
    return await _render(request, "web/message.html", "Confirm your subscription", paragraphs=[
        f"Press the button to start receiving {request.app[SITE]['title']}."],
        form={"action": request.path, "button": "Confirm my subscription"})


def _confirm(store: Store, nonce: str, now: datetime, key: bytes) -> tuple[str, str | None]:
    result = subscribers.confirm(store, nonce, now=now)
    if result[0] == "confirmed":
        subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))
    return result


async def confirm(request: web.Request) -> web.Response:
    key = request.app[KEY]
    nonce = verify_confirm(key, request.match_info["token"])
    if nonce is None:
        return await _confirm_problem(request, "unknown")
    form = await _read_form(request)
    if form is None:
        return _slow()
    if not _csrf_ok(request, form):
        return error_page(403)
    state, address = await request.app[DB].write(_confirm, nonce, datetime.now(UTC), key)
    if state != "confirmed" or address is None:
        return await _confirm_problem(request, state)
    cfg = request.app[CONFIG]
    found = await request.app[DB].read(reader.latest, cfg)
    _spawn(request, _send_welcome, cfg, key, address, found[1] if found else None)
    return await _render(request, "web/message.html", "You are subscribed", paragraphs=[
        f"Welcome! {request.app[SITE]['title']} will come to your inbox every week.",
        "A welcome email with the latest edition is on its way. Every email has a link to unsubscribe."])


def _released(store: Store, source: str, key: str) -> tuple | None:
    """(state, last_changed, title, n_papers) of a week readers may see, else None.

    Released means published, or ready with a channel that has begun publishing it for real: its emails,
    which link here, are going out before the week is marked published (that waits for every channel to
    finish). Baseline weeks (never to be sent), pending ones (not through the gate), skipped ones (given up)
    and ready ones nobody has begun to send, or that only had a trial (the outbox: issue #10), are not public.
    """
    row = store.db.execute(
        "SELECT state, last_changed, title, n_papers, EXISTS (SELECT 1 FROM publications p "
        "WHERE p.source = w.source AND p.week_key = w.key AND p.trial = 0 AND p.state != 'skipped') "
        "FROM weeks w WHERE w.source = ? AND w.key = ?",
        [source, key]).fetchall()
    if not row:
        return None
    state, changed, title, n, started = row[0]
    return (state, changed, title, n) if state == "published" or (state == "ready" and started) else None


def _stored_copy(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return ("file", str(path), st.st_mtime_ns, st.st_size)


class Editions:
    """Edition pages: looked up and rendered off the event loop, cached by week and version.

    The cache key is the stored copy's identity (path, mtime, size) when it exists (the page the email
    linked to), else the week's last_changed, title and size; one render per key however many ask at once.
    """

    def __init__(self, cfg: Config, db: Db, renderers: int = 2):
        self.cfg, self.db = cfg, db
        self.pool = ThreadPoolExecutor(renderers, thread_name_prefix="web-render")
        self.cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.inflight: dict[tuple, asyncio.Future[bytes]] = {}

    def _lookup(self, store: Store, source: str, key: str) -> tuple | None:
        week = _released(store, source, key)
        if week is None:
            return None
        return _stored_copy(edition_path(self.cfg.state_dir, source, key)) or ("db", source, key, *week[1:])

    def _load(self, store: Store, found: tuple, source: str, key: str) -> bytes | Any:
        if found[0] == "file":
            try:
                return Path(found[1]).read_bytes()
            except FileNotFoundError:
                pass
        return edition_from_store(store, source, key)

    def _render(self, loaded: Any) -> bytes:
        return loaded if isinstance(loaded, bytes) else render_web_edition(loaded, self.cfg).encode("utf-8")

    async def body(self, source: str, key: str) -> bytes | None:
        """The page, or None if there is no released edition `source`/`key`."""
        found = await self.db.read(self._lookup, source, key)
        if found is None:
            return None
        if (body := self.cache.get(found)) is not None:
            self.cache.move_to_end(found)
            return body
        if (pending := self.inflight.get(found)) is None:
            pending = self.inflight[found] = asyncio.ensure_future(self._make(found, source, key))
            pending.add_done_callback(lambda _: self.inflight.pop(found, None))
        return await asyncio.shield(pending)

    async def _make(self, found: tuple, source: str, key: str) -> bytes:
        loaded = await self.db.read(self._load, found, source, key)
        body = await asyncio.get_running_loop().run_in_executor(self.pool, self._render, loaded)
        self.cache[found] = body
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return body

    def close(self) -> None:
        self.pool.shutdown(wait=True)


DB = web.AppKey("db", Db)
EDITIONS = web.AppKey("editions", Editions)
SITE = web.AppKey("site", dict)
PAGES = web.AppKey("pages", reader.Templates)
CSS = web.AppKey("css", bytes)
LIMITER = web.AppKey("limiter", ClientLimiter)
MAIL = web.AppKey("mail", ThreadPoolExecutor)
TASKS = web.AppKey("tasks", set)
_EDITION_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src https: data:; font-src https:; "
                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


async def edition(request: web.Request) -> web.Response:
    source, key = request.match_info["source"], request.match_info["key"]
    if not (_NAME.fullmatch(source) and _NAME.fullmatch(key)):
        raise web.HTTPNotFound()
    body = await request.app[EDITIONS].body(source, key)
    if body is None:
        raise web.HTTPNotFound()
    # The stored page (cached) plus, per request, the archive links and a subscribe form with this browser's
    # CSRF token, placed before </body> (MJML's page keeps its inline styles, hence 'unsafe-inline' here).
    cfg = request.app[CONFIG]
    newer, older = await request.app[DB].read(reader.neighbours, cfg, source, key)
    cookie, fresh = _csrf_cookie(request)
    ctx = {"site": request.app[SITE], "csrf": csrf_token(request.app[KEY], cookie), "newer": newer, "older": older}
    extra = await asyncio.get_running_loop().run_in_executor(
        request.app[EDITIONS].pool, request.app[PAGES].render, "web/edition_extra.html", ctx)
    at = body.rfind(b"</body>")
    at = len(body) if at < 0 else at
    head = b'<link rel="stylesheet" href="/static/site.css">'
    full = body[:at] + head + extra + body[at:]
    resp = web.Response(body=full, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, "Content-Security-Policy": _EDITION_CSP})
    if fresh:
        _set_cookie(request, resp, cookie)
    return resp


async def healthz(request: web.Request) -> web.Response:
    """issue #15: 200 while the daemon's loop turns and a source still works, else 503; JSON either way
    (bot/web/health.py). Read from the database, so `paperbot serve` in another process answers the same."""
    cfg = request.app[CONFIG]
    try:
        snap = await request.app[DB].read(lambda store: health.read(store.db.conn, cfg))
        ok, body = health.verdict(snap, cfg.health, datetime.now(UTC))
    except sqlite3.Error as e:
        ok, body = False, {"status": "unhealthy", "problems": [f"the database cannot be read: {e}"]}
    return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


def _route(request: web.Request) -> str:
    """The route's pattern for logs: never the path itself, which may hold a token."""
    route = request.match_info.route
    return getattr(route.resource, "canonical", "?") if route.resource is not None else "?"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our escaped pages for every error: 404, 405 (keeping `Allow`), 413, 503 for a locked database, 500."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        resp = error_page(e.status)
        if "Allow" in e.headers:
            resp.headers["Allow"] = e.headers["Allow"]
        return resp
    except sqlite3.OperationalError as e:
        if not _is_busy(e):
            log.error("%s %s: database error: %s", request.method, _route(request), e)
            return error_page(500)
        log.warning("%s %s: the database is locked; answered 503", request.method, _route(request))
        return error_page(503)
    except Exception:
        log.exception("%s %s failed", request.method, _route(request))
        return error_page(500)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response the app sends gets our headers and a plain Server name."""
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, answering the errors it makes itself (a malformed request line or
    header: 400; a handler's crash: 500) with our page and headers instead of its plain text."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it; refuses once a response has begun
        resp = error_page(status)
        resp.force_close()
        return resp


class _Server(web.Server):
    def __call__(self) -> _Handler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same object and fields; only the connection handler class differs
        return server


def make_app(cfg: Config, store_path: str | Path | None = None) -> web.Application:
    """The app; the database is migrated when it starts, and its threads and connections end when it stops."""
    path = Path(store_path if store_path is not None else cfg.db_path)
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[CONFIG] = cfg
    app[KEY] = key = load_secret_key(cfg.state_dir)
    app[SITE] = {"title": clean(cfg.web.title), "description": clean(cfg.web.description),
                 "contact": clean(cfg.email.contact)}
    app[LIMITER] = ClientLimiter(*cfg.web.subscribe_limit)
    app[TASKS] = set()
    app.on_response_prepare.append(_security_headers)

    def prepare() -> tuple[reader.Templates, bytes]:
        store = Store.open(path)  # create or migrate it
        try:
            subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))  # new links name these refs
        finally:
            store.close()
        pages = reader.Templates()
        return pages, pages.static("site.css")

    async def open_db(app: web.Application) -> None:
        app[PAGES], app[CSS] = await asyncio.to_thread(prepare)  # off the loop
        app[DB] = Db(path, cfg.state_dir / subscribers.JOURNAL)
        app[EDITIONS] = Editions(cfg, app[DB])
        app[MAIL] = ThreadPoolExecutor(2, thread_name_prefix="web-mail")
        drain = asyncio.get_running_loop().create_task(_drain_journal(app))
        yield
        drain.cancel()
        await asyncio.to_thread(app[MAIL].shutdown, True)
        await asyncio.to_thread(app[EDITIONS].close)
        await asyncio.to_thread(app[DB].close)

    app.cleanup_ctx.append(open_db)
    app.router.add_get("/", home)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_get("/confirm/{token}", confirm_form)
    app.router.add_post("/confirm/{token}", confirm)
    app.router.add_get("/unsubscribe/{token}", unsubscribe_form)
    app.router.add_post("/unsubscribe/{token}", unsubscribe)
    app.router.add_get("/editions/", archive)
    app.router.add_get("/editions/{source}/{key}", edition)
    app.router.add_get("/search", search_page)
    app.router.add_get("/feed.xml", feed)
    app.router.add_get("/static/site.css", stylesheet)
    app.router.add_get("/healthz", healthz)
    return app


def _host(cfg: Config) -> tuple[str, int]:
    host, port = cfg.web.host_port
    return host.strip("[]"), port


async def start_web(cfg: Config, store_path: str | Path | None = None) -> web.AppRunner:
    """Start serving on `[web] listen` inside a running event loop; `await runner.cleanup()` stops it.

    A connection must deliver its request headers within `[web] header_timeout` of opening (or of its
    previous answer): aiohttp's keep-alive timer runs from the connection's start and closes it if no
    whole request has arrived by then, so a client trickling or stalling its headers is dropped. A body gets
    as long (the POST handler's timeout), and so does the draining of one a handler did not read."""
    limit = cfg.web.header_timeout
    runner = _Runner(make_app(cfg, store_path), access_log=None, keepalive_timeout=limit, lingering_time=limit)
    await runner.setup()
    host, port = _host(cfg)
    await web.TCPSite(runner, host, port).start()
    log.info("web app listening on http://%s:%d (public address %s)", host, port, cfg.web.base_url)
    return runner


def serve(cfg: Config, store_path: str | Path | None = None) -> None:
    """Run the web app until SIGINT/SIGTERM."""
    async def main() -> None:
        runner = await start_web(cfg, store_path)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    task = loop.create_task(main())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        log.info("web app stopped")
    finally:
        loop.close()
