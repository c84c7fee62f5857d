"""The public web app: its routes, the wiring of what they share, and `GET /healthz`.

The reader's pages, their forms and the editions are split by what a reader does: pages.py (home, archive,
editions in the browser, search, the Atom feed), subscribe.py (double opt-in), unsubscribe.py (the links in
every email, never lost); security.py (CSRF, security headers, rate limits, the client's address) and
common.py (error pages, the database off the event loop) serve them all; server.py runs the app.
The event loop only parses requests and writes answers: SQLite and rendering run in worker threads (each with
its own connection), so a database held by a long poll never stalls the server.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.channels.email import subscribers
from bot.channels.email.tokens import (
    load_secret_key,
    subscriber_ref,
)
from bot.config import Config
from bot.edition.safetext import clean
from bot.store import Store
from bot.web import health, reader
from bot.web.cache import ArchiveVersion, Costly, Pages
from bot.web.common import CSS, DB, LIMITER, MAIL, PAGES, SITE, TASKS, Db, errors
from bot.web.pages import (
    CACHE,
    COSTLY,
    EDITIONS,
    VERSION,
    Editions,
    archive,
    edition,
    feed,
    home,
    search_page,
    stylesheet,
)
from bot.web.security import CONFIG, KEY, ClientLimiter, security_headers
from bot.web.subscribe import confirm, confirm_form, subscribe
from bot.web.unsubscribe import drain_journal, unsubscribe, unsubscribe_form


async def healthz(request: web.Request) -> web.Response:
    """issue #15: 200 while the daemon's loop turns and a source still works, else 503; JSON either way
    (bot/web/health.py; the details only with the token or from this machine). Read from the database, so
    `paperbot serve` in another process answers the same."""
    cfg = request.app[CONFIG]
    try:
        snap = await request.app[DB].read(lambda store: health.read(store.db.conn, cfg))
        ok, body = health.verdict(snap, cfg.health, datetime.now(UTC))
    except sqlite3.Error as e:
        ok, body = False, {"status": "unhealthy", "problems": [f"the database cannot be read: {e}"]}
    if not health.may_see_details(request.remote, request.headers, os.environ.get(health.TOKEN_ENV) or None):
        body = health.anonymous(ok)  # issue #24: no pid, start time or source names to strangers
    return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})


def make_app(cfg: Config, store_path: str | Path | None = None) -> web.Application:
    """The app; the database is migrated when it starts, and its threads and connections end when it stops."""
    path = Path(store_path if store_path is not None else cfg.db_path)
    app = web.Application(middlewares=[errors], client_max_size=64 * 1024)
    app[CONFIG] = cfg
    app[KEY] = key = load_secret_key(cfg.state_dir)
    app[SITE] = {"title": clean(cfg.web.title), "description": clean(cfg.web.description),
                 "contact": clean(cfg.email.contact), "arxiv": cfg.arxiv.enabled}
    app[LIMITER] = ClientLimiter(*cfg.web.subscribe_limit)
    app[TASKS] = set()
    app.on_response_prepare.append(security_headers)

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
        app[VERSION], app[CACHE] = ArchiveVersion(path), Pages()
        app[COSTLY] = Costly(cfg.web.costly_threads, cfg.web.costly_per_client)
        app[MAIL] = ThreadPoolExecutor(2, thread_name_prefix="web-mail")
        drain = asyncio.get_running_loop().create_task(drain_journal(app))
        yield
        drain.cancel()
        await asyncio.to_thread(app[MAIL].shutdown, True)
        await asyncio.to_thread(app[COSTLY].close)
        await asyncio.to_thread(app[VERSION].close)
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
