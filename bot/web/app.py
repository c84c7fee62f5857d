"""The small public web app: unsubscribe links and the "view in browser" copy of each edition.

A GET never changes anything (mail scanners follow links): the unsubscribe link shows one confirm button,
whose POST unsubscribes. Mail providers' RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) unsubscribes
at once and gets a tiny 200. Tokens carry the address and an HMAC (channels/email/tokens.py); a forged one
changes nothing and gets a 400 page.

The event loop only parses requests and writes answers: SQLite and rendering run in worker threads (each with
its own connection), so a database held by a long poll never stalls the server. A page read waits at most
`READ_BUSY` for a lock and then answers 503 with Retry-After. An unsubscribe is never lost: if the write lock
does not come within `WRITE_WAIT`, it is appended (fsynced) to a journal in the state folder and applied as
soon as the lock frees, and again at start. Only released editions are public (see `_released`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from html import escape
from http import HTTPStatus
from pathlib import Path
from typing import Any

import sqlite_utils
from aiohttp import web

from bot.channels.email import subscribers
from bot.channels.email.render import edition_from_store, edition_path, render_web_edition
from bot.channels.email.tokens import load_secret_key, verify_token
from bot.config import Config
from bot.store import Store

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
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "X-Content-Type-Options": "nosniff",
}
SERVER = "paperbot"  # not aiohttp's "Python/3.x aiohttp/3.y"
_STYLE = ("body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:34rem;"
          "margin:3rem auto;padding:0 1rem;color:#1f2933;line-height:1.5;overflow-wrap:anywhere}"
          "button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#12263a;color:#fff;"
          "cursor:pointer}")
_ERRORS = {
    400: ("Bad request", "This request could not be read."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
    408: ("Too slow", "The request did not arrive in time. Please try again."),
    413: ("Too large", "This request is larger than this site accepts."),
    500: ("Something went wrong", "The page could not be made. Please try again later."),
    503: ("Busy", "The site is busy for a moment. Please try again in a few seconds."),
}


def page(title: str, body_html: str, status: int = 200) -> web.Response:
    """A small HTML page. `title` is escaped here; `body_html` must be built from escaped parts."""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body_html}</body></html>")
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, "Cache-Control": "no-store", "Server": SERVER})


def error_page(status: int) -> web.Response:
    """Our page for an error status (aiohttp's own are plain text without our headers)."""
    title, text = _ERRORS.get(status) or (_phrase(status), "This request could not be answered.")
    resp = page(title, f"<p>{escape(text)}</p>", status=status)
    if status == 503:
        resp.headers["Retry-After"] = RETRY_AFTER
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


def _unsubscribe(store: Store, journal: Path, address: str, origin: str, now: datetime) -> bool:
    """Unsubscribe now, or queue it in the journal if the lock does not come within WRITE_WAIT (or the
    database fails). True if queued.

    Earlier queued requests go first, so the journal keeps the order the requests came in."""
    try:
        if _queued(journal):
            _busy_timeout(store, APPLY_BUSY)
            subscribers.apply_queued(store, journal)
        _busy_timeout(store, WRITE_WAIT)
        subscribers.unsubscribe(store, address, now=now, origin=origin)
        return False
    except sqlite3.Error as e:  # locked, or worse: the reader asked, so keep the request until it can be done
        subscribers.queue_unsubscribe(journal, address, now=now, origin=origin)
        (log.warning if isinstance(e, sqlite3.OperationalError) and _is_busy(e) else log.error)(
            "database: %s; an unsubscribe via %s is queued in %s and applied as soon as it can be", e, origin,
            journal)
        return True


def _apply_journal(store: Store, journal: Path) -> int:
    if not _queued(journal):
        return 0
    _busy_timeout(store, APPLY_BUSY)
    return subscribers.apply_queued(store, journal)


async def _drain_journal(app: web.Application) -> None:
    """Apply queued unsubscribes at start and then whenever the lock frees, every APPLY_EVERY seconds."""
    db = app[DB]
    last = ""
    while True:
        problem = ""
        try:
            if await asyncio.to_thread(_queued, db.journal):  # no connection is opened for an empty journal
                await db.write(_apply_journal, db.journal)
        except sqlite3.Error as e:
            problem = "" if isinstance(e, sqlite3.OperationalError) and _is_busy(e) else f"database: {e}"
        except OSError as e:
            problem = f"{db.journal}: {e.strerror or e}"
        if problem and problem != last:  # once per problem, not every half second
            log.error("cannot apply the queued unsubscribes yet (%s); retrying", problem)
        last = problem
        await asyncio.sleep(APPLY_EVERY)


async def unsubscribe_form(request: web.Request) -> web.Response:
    address = verify_token(request.app[KEY], request.match_info["token"])
    if address is None:
        return _bad_token()
    return page("Unsubscribe", f"<p>Stop sending the newsletter to <strong>{escape(address)}</strong>?</p>"
                '<form method="post"><button type="submit">Unsubscribe</button></form>'
                "<p>Nothing changes until you press the button.</p>")


async def _record_unsubscribe(db: Db, address: str, origin: str) -> bool:
    """Unsubscribe `address` now or queue it; True if queued. OSError if neither can be done."""
    now = datetime.now(UTC)
    try:
        return await db.write(_unsubscribe, db.journal, address, origin, now)
    except sqlite3.Error as e:  # not even a connection: queue it all the same
        log.error("database: %s; an unsubscribe via %s is queued in %s", e, origin, db.journal)
        await asyncio.to_thread(subscribers.queue_unsubscribe, db.journal, address, now=now, origin=origin)
        return True


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    address = verify_token(request.app[KEY], request.match_info["token"])
    if address is None:
        return _bad_token()
    try:
        async with asyncio.timeout(request.app[CONFIG].web.header_timeout):
            form = await request.post()
    except TimeoutError:
        resp = error_page(408)
        resp.force_close()
        return resp
    one_click = form.get("List-Unsubscribe") == "One-Click"
    origin = "web:one-click" if one_click else "web"
    try:
        queued = await _record_unsubscribe(request.app[DB], address, origin)
    except OSError as e:  # the database unusable and the journal not writable (a full disk): ask to come back
        log.error("an unsubscribe via %s could not be recorded: %s", origin, e.strerror or e)
        return error_page(503)
    if one_click:
        return web.Response(text="unsubscribe queued\n" if queued else "unsubscribed\n", status=202 if queued
                            else 200, headers={**_HEADERS, "Server": SERVER})
    return page("You are unsubscribed", f"<p><strong>{escape(address)}</strong> will get no more newsletters "
                "from us.</p><p>Changed your mind? Ask the list's contact to add you again.</p>")


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


async def edition(request: web.Request) -> web.Response:
    source, key = request.match_info["source"], request.match_info["key"]
    if not (_NAME.fullmatch(source) and _NAME.fullmatch(key)):
        raise web.HTTPNotFound()
    body = await request.app[EDITIONS].body(source, key)
    if body is None:
        raise web.HTTPNotFound()
    headers = {**_HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
               "img-src https: data:; font-src https:; base-uri 'none'; frame-ancestors 'none'"}
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)


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
    app[KEY] = load_secret_key(cfg.state_dir)
    app.on_response_prepare.append(_security_headers)

    async def open_db(app: web.Application) -> None:
        await asyncio.to_thread(lambda: Store.open(path).close())  # create or migrate it, off the loop
        app[DB] = Db(path, cfg.state_dir / subscribers.JOURNAL)
        app[EDITIONS] = Editions(cfg, app[DB])
        drain = asyncio.get_running_loop().create_task(_drain_journal(app))
        yield
        drain.cancel()
        await asyncio.to_thread(app[EDITIONS].close)
        await asyncio.to_thread(app[DB].close)

    app.cleanup_ctx.append(open_db)
    app.router.add_get("/unsubscribe/{token}", unsubscribe_form)
    app.router.add_post("/unsubscribe/{token}", unsubscribe)
    app.router.add_get("/editions/{source}/{key}", edition)
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
