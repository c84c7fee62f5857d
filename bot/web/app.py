"""The small public web app: unsubscribe links and the "view in browser" copy of each edition.

A GET never changes anything (mail scanners follow links): the unsubscribe link shows one confirm button,
whose POST unsubscribes. Mail providers' RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) unsubscribes
at once and gets a tiny 200. Tokens carry the address and an HMAC (bot/channels/email/tokens.py); a forged one changes
nothing and gets a 400 page. SQLite calls are short and run on the event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from aiohttp import web

from bot.channels.email import subscribers
from bot.channels.email.render import edition_from_store, edition_path, render_web_edition
from bot.channels.email.tokens import load_secret_key, verify_token
from bot.config import Config
from bot.store import Store

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
KEY = web.AppKey("key", bytes)
CONFIG = web.AppKey("config", Config)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}\Z")  # \Z: `$` would let "name\n" in
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "X-Content-Type-Options": "nosniff",
}
_STYLE = ("body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:34rem;"
          "margin:3rem auto;padding:0 1rem;color:#1f2933;line-height:1.5;overflow-wrap:anywhere}"
          "button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#12263a;color:#fff;"
          "cursor:pointer}")


def page(title: str, body_html: str, status: int = 200) -> web.Response:
    """A small HTML page. `title` is escaped here; `body_html` must be built from escaped parts."""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body_html}</body></html>")
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**_HEADERS, "Cache-Control": "no-store"})


def _bad_token() -> web.Response:
    return page("This link is not valid", "<p>This unsubscribe link is damaged or was not made by us, so "
                "nothing was changed. Use the link at the bottom of one of our emails, or write to us.</p>",
                status=400)


async def unsubscribe_form(request: web.Request) -> web.Response:
    address = verify_token(request.app[KEY], request.match_info["token"])
    if address is None:
        return _bad_token()
    return page("Unsubscribe", f"<p>Stop sending the newsletter to <strong>{escape(address)}</strong>?</p>"
                '<form method="post"><button type="submit">Unsubscribe</button></form>'
                "<p>Nothing changes until you press the button.</p>")


async def unsubscribe(request: web.Request) -> web.Response:
    address = verify_token(request.app[KEY], request.match_info["token"])
    if address is None:
        return _bad_token()
    form = await request.post()
    one_click = form.get("List-Unsubscribe") == "One-Click"
    subscribers.unsubscribe(request.app[STORE], address, now=datetime.now(UTC),
                            origin="web:one-click" if one_click else "web")
    if one_click:
        return web.Response(text="unsubscribed\n", headers=_HEADERS)
    return page("You are unsubscribed", f"<p><strong>{escape(address)}</strong> will get no more newsletters "
                "from us.</p><p>Changed your mind? Ask the list's contact to add you again.</p>")


async def edition(request: web.Request) -> web.Response:
    source, key = request.match_info["source"], request.match_info["key"]
    if not (_NAME.match(source) and _NAME.match(key)):
        raise web.HTTPNotFound()
    cfg = request.app[CONFIG]
    path = edition_path(cfg.state_dir, source, key)
    if path.is_file():
        body = path.read_text(encoding="utf-8")
    else:
        try:
            found = edition_from_store(request.app[STORE], source, key)
        except KeyError:
            raise web.HTTPNotFound() from None
        body = render_web_edition(found, cfg)
    headers = {**_HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
               "img-src https: data:; font-src https:; base-uri 'none'; frame-ancestors 'none'"}
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=headers)


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    """Our own escaped pages for 404 and 405 instead of aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return page("Not found", "<p>There is nothing at this address.</p>", status=404)
    except web.HTTPMethodNotAllowed:
        return page("Not allowed", "<p>This address does not take that kind of request.</p>", status=405)


def make_app(cfg: Config, store_path: str | Path | None) -> web.Application:
    """The app; the store is opened when it starts and closed when it stops."""
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[CONFIG] = cfg
    app[KEY] = load_secret_key(cfg.state_dir)

    async def open_store(app: web.Application) -> None:
        app[STORE] = Store.open(store_path)

    async def close_store(app: web.Application) -> None:
        app[STORE].close()

    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)
    app.router.add_get("/unsubscribe/{token}", unsubscribe_form)
    app.router.add_post("/unsubscribe/{token}", unsubscribe)
    app.router.add_get("/editions/{source}/{key}", edition)
    return app


def _host(cfg: Config) -> tuple[str, int]:
    host, port = cfg.web.host_port
    return host.strip("[]"), port


async def start_web(cfg: Config, store_path: str | Path | None = None) -> web.AppRunner:
    """Start serving on `[web] listen` inside a running event loop; `await runner.cleanup()` stops it."""
    runner = web.AppRunner(make_app(cfg, store_path if store_path is not None else cfg.db_path),
                           access_log=None)
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
