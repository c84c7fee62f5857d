"""What a reader reads: the home page, the archive, editions in the browser, search and the Atom feed (what they
show is bot/web/reader.py's). Only released editions are public (see `_released`); the archive, feed and search
show the published ones, the archive and search also the held ones (`reader.published_filter`). A rendered
edition is cached per version (`Editions`).
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.channels.email.render import edition_from_store, edition_path, render_web_edition
from bot.channels.email.tokens import (
    csrf_token,
)
from bot.config import Config
from bot.edition.safetext import clean
from bot.store import Store
from bot.web import reader
from bot.web.common import CSS, DB, PAGES, SITE, Db
from bot.web.security import CONFIG, HEADERS, KEY, SERVER, csrf_cookie, set_cookie

CACHE_SIZE = 16  # rendered editions kept in memory


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


async def render(request: web.Request, template: str, title: str, status: int = 200, **ctx: Any) -> web.Response:
    """A page from templates/web/, rendered on the render threads, with a CSRF token for its forms."""
    cookie, fresh = csrf_cookie(request)
    full = {"site": request.app[SITE], "page_title": title, "csrf": csrf_token(request.app[KEY], cookie),
            "paragraphs": [], "form": None, "subscribe": False, **ctx}
    pages = request.app[PAGES]
    body = await asyncio.get_running_loop().run_in_executor(request.app[EDITIONS].pool, pages.render, template, full)
    resp = web.Response(body=body, status=status, content_type="text/html", charset="utf-8",
                        headers={**HEADERS, "Cache-Control": "no-store", "Server": SERVER})
    if fresh:
        set_cookie(request, resp, cookie)
    return resp


async def home(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    found = await request.app[DB].read(reader.latest, cfg)
    latest = None
    if found is not None:
        row, edition = found
        latest = {"url": row.url, "title": row.title, "dates": row.dates, "n": row.n,
                  "papers": [{"title": clean(p.title) or "(untitled)", "summary": clean(p.summary)}
                             for p in edition.papers]}
    return await render(request, "web/index.html", cfg.web.title, latest=latest)


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise web.HTTPNotFound()
    return int(raw)


async def archive(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    number = _page_number(request)
    rows, pages = await request.app[DB].read(reader.editions, cfg, number, reader.PER_PAGE, True)
    if number > pages:
        raise web.HTTPNotFound()
    return await render(request, "web/editions.html", "Every edition", editions=rows, page=number, pages=pages,
                         newer=f"/editions/?page={number - 1}" if number > 1 else None,
                         older=f"/editions/?page={number + 1}" if number < pages else None)


async def search_page(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    q = request.query.get("q", "")[:reader.MAX_QUERY].strip()
    total, hits = (await request.app[DB].read(reader.search, cfg, q)) if q else (0, [])
    return await render(request, "web/search.html", f"Search: {q}" if q else "Search", q=q, total=total, hits=hits)


async def feed(request: web.Request) -> web.Response:
    body = await request.app[DB].read(reader.feed, request.app[CONFIG], request.app[PAGES])
    return web.Response(body=body, content_type="application/atom+xml", charset="utf-8",
                        headers={**HEADERS, "Cache-Control": "max-age=300", "Server": SERVER})


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=request.app[CSS], content_type="text/css", charset="utf-8",
                        headers={**HEADERS, "Cache-Control": "max-age=3600", "Server": SERVER})


def _released(store: Store, source: str, key: str) -> tuple | None:
    """(state, last_changed, title, n_papers) of a week readers may see, else None.

    Released means published, or ready with a channel that has begun publishing it for real: its emails,
    which link here, are going out before the week is marked published (that waits for every channel to
    finish). Baseline weeks (never to be sent), pending ones (not through the gate), skipped ones (given up)
    and ready ones nobody has begun to send, or that only had a trial (the outbox: issue #10), are not public.
    A week the age guard held (issue #21) is: the archive lists it under its own dates, marked held.
    """
    row = store.db.execute(
        "SELECT state, last_changed, title, n_papers, EXISTS (SELECT 1 FROM publications p "
        "WHERE p.source = w.source AND p.week_key = w.key AND p.trial = 0 AND p.state != 'skipped') "
        "FROM weeks w WHERE w.source = ? AND w.key = ?",
        [source, key]).fetchall()
    if not row:
        return None
    state, changed, title, n, started = row[0]
    if state == "held":  # issue #21: in the archive under its own dates, marked held; never sent until approved
        return state, changed, title, n
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


EDITIONS = web.AppKey("editions", Editions)


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
    held = await request.app[DB].read(reader.is_held, source, key)
    cookie, fresh = csrf_cookie(request)
    ctx = {"site": request.app[SITE], "csrf": csrf_token(request.app[KEY], cookie), "newer": newer, "older": older,
           "held": held}
    loop = asyncio.get_running_loop()
    extra = await loop.run_in_executor(request.app[EDITIONS].pool, request.app[PAGES].render,
                                       "web/edition_extra.html", ctx)
    header = await loop.run_in_executor(request.app[EDITIONS].pool, request.app[PAGES].render,
                                        "web/_site_header.html", ctx)  # issue #25 (13f): the site's header too
    at = body.rfind(b"</body>")
    at = len(body) if at < 0 else at
    head = b'<link rel="stylesheet" href="/static/site.css">'
    full = body[:at] + head + extra + body[at:]
    opening = re.search(rb"<body[^>]*>", full)
    top = opening.end() if opening else 0
    full = full[:top] + header + full[top:]
    resp = web.Response(body=full, content_type="text/html", charset="utf-8",
                        headers={**HEADERS, "Content-Security-Policy": _EDITION_CSP})
    if fresh:
        set_cookie(request, resp, cookie)
    return resp
