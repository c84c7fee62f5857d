"""What every handler of the web app shares: our error pages and the middleware that answers with them, the
database off the event loop (`Db`: a page read waits at most `READ_BUSY` for a lock and then answers 503 with
Retry-After), forms read within the header timeout, mail sent after the answer, and the app's keys.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from html import escape
from http import HTTPStatus
from pathlib import Path
from typing import Any

import sqlite_utils
from aiohttp import web

from bot.store import Store
from bot.web import reader
from bot.web.security import CONFIG, HEADERS, SERVER, ClientLimiter

log = logging.getLogger(__name__)


READ_BUSY = 1.0  # seconds a page read waits for a lock before answering 503


WRITE_WAIT = 2.0  # seconds an unsubscribe waits for the write lock before it is queued in the journal


APPLY_BUSY = 0.2  # seconds each attempt to apply the journal waits for the lock


APPLY_EVERY = 0.5  # seconds between those attempts


RETRY_AFTER = "5"


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
                        headers={**HEADERS, "Cache-Control": "no-store", "Server": SERVER})


def error_page(status: int) -> web.Response:
    """Our page for an error status (aiohttp's own are plain text without our headers)."""
    title, text = _ERRORS.get(status) or (phrase(status), "This request could not be answered.")
    back = ('<p><a href="/">Back to the home page</a> · <a href="/editions/">All editions</a></p>'
            if 400 <= status < 500 else "")  # issue #25 (13e): a way back
    resp = page(title, f"<p>{escape(text)}</p>{back}", status=status)
    if status == 503:
        resp.headers["Retry-After"] = RETRY_AFTER
    return resp


def too_many(retry_after: float) -> web.Response:
    resp = error_page(429)
    resp.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return resp


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def is_busy(e: sqlite3.OperationalError) -> bool:
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
        busy_timeout(store, busy)
        return store

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(store, *args)` on a reader thread; sqlite3.OperationalError if a lock lasts over READ_BUSY."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.readers, lambda: fn(self._store(READ_BUSY), *args))

    def here(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(store, *args)` on the calling thread with its own connection (the costly threads' reads)."""
        return fn(self._store(READ_BUSY), *args)

    async def write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(store, *args)` on the writer thread (one at a time, so queued unsubscribes keep their order)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.writer, lambda: fn(self._store(WRITE_WAIT), *args))

    def close(self) -> None:
        self.readers.shutdown(wait=True)
        self.writer.shutdown(wait=True)
        for conn in self._conns:
            _BUSY.pop(id(conn), None)
            conn.close()


_BUSY: dict[int, int] = {}  # id(connection) -> its busy timeout (ms) as last set here; Db.close forgets its own


def busy_timeout(store: Store, seconds: float) -> None:
    """Set the connection's busy timeout, only when it changes: a PRAGMA for every read cost more than many a
    read (issue #29). Every change of a web connection's timeout goes through here."""
    ms, conn = int(seconds * 1000), store.db.conn
    if _BUSY.get(id(conn)) != ms:
        conn.execute(f"PRAGMA busy_timeout = {ms}")
        _BUSY[id(conn)] = ms


async def read_form(request: web.Request) -> Any:
    """The POSTed form, or None if it did not arrive within `[web] header_timeout`."""
    try:
        async with asyncio.timeout(request.app[CONFIG].web.header_timeout):
            return await request.post()
    except TimeoutError:
        return None


def slow() -> web.Response:
    resp = error_page(408)
    resp.force_close()
    return resp


def spawn(request: web.Request, fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` on the mail thread after the answer; errors are logged, never shown."""
    app = request.app
    fut = asyncio.get_running_loop().run_in_executor(app[MAIL], fn, *args)
    app[TASKS].add(fut)
    fut.add_done_callback(app[TASKS].discard)


DB = web.AppKey("db", Db)


SITE = web.AppKey("site", dict)


PAGES = web.AppKey("pages", reader.Templates)


CSS = web.AppKey("css", bytes)


LIMITER = web.AppKey("limiter", ClientLimiter)


MAIL = web.AppKey("mail", ThreadPoolExecutor)


TASKS = web.AppKey("tasks", set)


def route(request: web.Request) -> str:
    """The route's pattern for logs: never the path itself, which may hold a token."""
    route = request.match_info.route
    return getattr(route.resource, "canonical", "?") if route.resource is not None else "?"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
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
        if not is_busy(e):
            log.error("%s %s: database error: %s", request.method, route(request), e)
            return error_page(500)
        log.warning("%s %s: the database is locked; answered 503", request.method, route(request))
        return error_page(503)
    except Exception:
        log.exception("%s %s failed", request.method, route(request))
        return error_page(500)
