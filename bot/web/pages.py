"""What a reader reads: the home page, the archive, editions in the browser, search and the Atom feed (what they
show is bot/web/reader.py's). Only released editions are public (see `_released`); the archive, feed and search
show the published ones, the archive and search also the held ones (`reader.published_filter`). A rendered
edition is cached per version (`Editions`); every page here is served from bot/web/cache.py's cache of rendered
bytes, keyed by the archive's version (read per request), and searches and the feed are made on the costly
threads with a limit per client (issues #24, #29).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.channels.email.render import edition_from_store, edition_path, render_web_edition
from bot.channels.email.tokens import (
    csrf_token,
)
from bot.config import Config
from bot.edition.safetext import clean
from bot.store import Store
from bot.web import reader
from bot.web.cache import CSRF, ArchiveVersion, Costly, Pages, join
from bot.web.common import CSS, DB, PAGES, SITE, Db, too_many
from bot.web.security import CONFIG, HEADERS, KEY, SERVER, client_address, csrf_cookie, set_cookie

CACHE_SIZE = 16  # rendered editions kept in memory


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


MAX_SEARCH_PAGE = 50  # pages of search results a reader may ask for (an OFFSET costs what it skips)


def _ctx(request: web.Request, title: str, **ctx: Any) -> dict:
    """A page's template context; its forms carry `CSRF`, replaced per request by the browser's token."""
    return {"site": request.app[SITE], "page_title": title, "csrf": CSRF, "paragraphs": [], "form": None,
            "subscribe": False, **ctx}


async def _render(request: web.Request, template: str, ctx: dict) -> bytes:
    pool = request.app[EDITIONS].pool
    return await asyncio.get_running_loop().run_in_executor(pool, request.app[PAGES].render, template, ctx)


def answer(request: web.Request, parts: tuple[bytes, ...], headers: dict | None = None,
           cache_control: str | None = "no-store") -> web.Response:
    """A cached page with this browser's CSRF token (and its cookie when new)."""
    more = {"Cache-Control": cache_control} if cache_control else {}
    if len(parts) == 1:  # no form on the page: no token, no cookie
        return web.Response(body=parts[0], content_type="text/html", charset="utf-8",
                            headers={**HEADERS, "Server": SERVER, **more, **(headers or {})})
    cookie, fresh = csrf_cookie(request)
    resp = web.Response(body=join(parts, csrf_token(request.app[KEY], cookie)), content_type="text/html",
                        charset="utf-8", headers={**HEADERS, "Server": SERVER, **more, **(headers or {})})
    if fresh:
        set_cookie(request, resp, cookie)
    return resp


async def render(request: web.Request, template: str, title: str, status: int = 200, **ctx: Any) -> web.Response:
    """A page from templates/web/, rendered on the render threads, with a CSRF token for its forms (not cached)."""
    resp = answer(request, tuple((await _render(request, template, _ctx(request, title, **ctx))).split(CSRF.encode())))
    resp.set_status(status)
    return resp


async def cached(request: web.Request, key: tuple, make: Any) -> tuple[bytes, ...] | None:
    """The page `key` at the archive's current version, made by `make()` (async) when not cached."""
    version = await request.app[VERSION].get()
    return await request.app[CACHE].get(version, key, make)


async def home(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]

    async def make() -> bytes:
        found = await request.app[DB].read(reader.latest, cfg)
        latest = None
        if found is not None:
            row, edition = found
            latest = {"url": row.url, "title": row.title, "dates": row.dates, "n": row.n,
                      "papers": [{"title": clean(p.title) or "(untitled)", "summary": clean(p.summary)}
                                 for p in edition.papers]}
        return await _render(request, "web/index.html", _ctx(request, cfg.web.title, latest=latest))

    return answer(request, await cached(request, ("home",), make))


def _page_number(request: web.Request, top: int = 100_000) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise web.HTTPNotFound()
    return int(raw)


async def archive(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    number = _page_number(request)

    async def make() -> bytes | None:
        rows, pages = await request.app[DB].read(reader.editions, cfg, number, reader.PER_PAGE, True)
        if number > pages:
            return None
        return await _render(request, "web/editions.html", _ctx(
            request, "Every edition", editions=rows, page=number, pages=pages,
            newer=f"/editions/?page={number - 1}" if number > 1 else None,
            older=f"/editions/?page={number + 1}" if number < pages else None))

    parts = await cached(request, ("archive", number), make)
    if parts is None:
        raise web.HTTPNotFound()
    return answer(request, parts)


def _client(request: web.Request) -> str:
    """Whose quota a costly request counts against: the one place the per-client key is made."""
    return client_address(request, request.app[CONFIG].web.trusted_proxies)


async def costly(request: web.Request, key: tuple, fn: Any, *args: Any) -> tuple[bytes, ...] | None | web.Response:
    """A search or feed page from the cache, else made by `fn(store, *args)` on the costly threads: a 429
    when this client already has `[web] costly_per_client` of them being made (a cached answer never is)."""
    version = await request.app[VERSION].get()
    pages, pool = request.app[CACHE], request.app[COSTLY]
    found, parts = pages.peek(version, key)
    if found:
        return parts
    if (version, key) not in pages.inflight:
        client = _client(request)
        if not pool.admit(client):
            return too_many(1)
        return await pages.get(version, key, lambda: pool.run(client, request.app[DB].here, fn, *args))
    return await pages.get(version, key, lambda: asyncio.sleep(0))  # being made: wait for it


def _search_body(store: Store, cfg: Config, templates: reader.Templates, ctx: dict, q: str,
                 number: int) -> bytes | None:
    per = reader.PER_PAGE
    total, hits = reader.search(store, cfg, q, per, (number - 1) * per) if q else (0, [])
    pages = max(1, -(-total // per))
    if number > pages:
        return None

    def link(n: int) -> str | None:
        return f"/search?{urlencode({'q': q, 'page': n})}" if 1 <= n <= min(pages, MAX_SEARCH_PAGE) else None
    return templates.render("web/search.html", {**ctx, "q": q, "total": total, "hits": hits, "page": number,
                                                "pages": pages, "first": (number - 1) * per + 1,
                                                "newer": link(number - 1), "older": link(number + 1)})


async def search_page(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    q = request.query.get("q", "")[:reader.MAX_QUERY].strip()
    number = _page_number(request, MAX_SEARCH_PAGE)
    ctx = _ctx(request, f"Search: {q}" if q else "Search")
    got = await costly(request, ("search", q, number), _search_body, cfg, request.app[PAGES], ctx, q, number)
    if isinstance(got, web.Response):
        return got
    if got is None:
        raise web.HTTPNotFound()
    return answer(request, got)


async def feed(request: web.Request) -> web.Response:
    got = await costly(request, ("feed",), reader.feed, request.app[CONFIG], request.app[PAGES])
    if isinstance(got, web.Response):
        return got
    return web.Response(body=got[0], content_type="application/atom+xml", charset="utf-8",
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


@lru_cache(maxsize=4096)
def _copy_path(state_dir: Path, source: str, key: str) -> str:
    """Where the stored copy of an edition is, as a string: every edition request stats it (issue #29: a Path
    made per request cost more than the stat)."""
    return str(edition_path(state_dir, source, key))


def _stored_copy(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return ("file", path, st.st_mtime_ns, st.st_size)


class Editions:
    """Edition pages: looked up and rendered off the event loop, cached by week and version.

    The cache key is the stored copy's identity (path, mtime, size) when it exists (the page the email
    linked to), else the archive's version (a correction, a note); one render per key however many ask at once.
    """

    def __init__(self, cfg: Config, db: Db, renderers: int = 2):
        self.cfg, self.db = cfg, db
        self.pool = ThreadPoolExecutor(renderers, thread_name_prefix="web-render")
        self.cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.inflight: dict[tuple, asyncio.Future[bytes]] = {}

    def _lookup(self, store: Store, source: str, key: str, version: int) -> tuple | None:
        week = _released(store, source, key)
        if week is None:
            return None
        return _stored_copy(_copy_path(self.cfg.state_dir, source, key)) or ("db", source, key, version)

    def _load(self, store: Store, found: tuple, source: str, key: str) -> bytes | Any:
        if found[0] == "file":
            try:
                return Path(found[1]).read_bytes()
            except FileNotFoundError:
                pass
        return edition_from_store(store, source, key)

    def _render(self, loaded: Any) -> bytes:
        return loaded if isinstance(loaded, bytes) else render_web_edition(loaded, self.cfg).encode("utf-8")

    async def body(self, source: str, key: str, version: int) -> bytes | None:
        """The page, or None if there is no released edition `source`/`key`."""
        found = await self.db.read(self._lookup, source, key, version)
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
    cfg = request.app[CONFIG]

    version = await request.app[VERSION].get()

    async def make() -> bytes | None:
        body = await request.app[EDITIONS].body(source, key, version)
        if body is None:
            return None
        # The stored page (cached) plus the archive links and a subscribe form (its CSRF token per request),
        # placed before </body> (MJML's page keeps its inline styles, hence 'unsafe-inline' here).
        newer, older, held = await request.app[DB].read(_around, cfg, source, key)
        ctx = {"site": request.app[SITE], "csrf": CSRF, "newer": newer, "older": older, "held": held}
        extra = await _render(request, "web/edition_extra.html", ctx)
        header = await _render(request, "web/_site_header.html", ctx)  # issue #25 (13f): the site's header too
        at = body.rfind(b"</body>")
        at = len(body) if at < 0 else at
        full = body[:at] + b'<link rel="stylesheet" href="/static/site.css">' + extra + body[at:]
        opening = re.search(rb"<body[^>]*>", full)
        top = opening.end() if opening else 0
        return full[:top] + header + full[top:]

    # The stored copy's identity is part of the key: the page the email linked to, once it is written.
    parts = await request.app[CACHE].get(
        version, ("edition", source, key, _stored_copy(_copy_path(cfg.state_dir, source, key))), make)
    if parts is None:
        raise web.HTTPNotFound()
    return answer(request, parts, {"Content-Security-Policy": _EDITION_CSP}, cache_control=None)


def _around(store: Store, cfg: Config, source: str, key: str) -> tuple:
    """(newer, older, held) of an edition page."""
    return *reader.neighbours(store, cfg, source, key), reader.is_held(store, source, key)


VERSION = web.AppKey("version", ArchiveVersion)


CACHE = web.AppKey("cache", Pages)


COSTLY = web.AppKey("costly", Costly)
