"""Serving the app: aiohttp's runner with our connection handler (its own errors answered with our pages), the
header timeout, and `paperbot serve` until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import Config
from bot.web.app import make_app
from bot.web.common import error_page

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001  # seconds a thread may keep the GIL while another waits (CPython's default: 0.005)


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
    # Searches and the feed are made on worker threads that hold the GIL while they run Python (highlights,
    # templates); the event loop and the page threads wait for it at every hand-over, up to the switch interval
    # each time. 1 ms instead of CPython's 5 keeps pages and unsubscribes quick while those threads are busy
    # (issue #24; bench/web_load.py measures the hand-over both ways).
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    runner = _Runner(make_app(cfg, store_path), access_log=None, keepalive_timeout=limit, lingering_time=limit)
    await runner.setup()
    host, port = _host(cfg)
    await web.TCPSite(runner, host, port).start()
    real = runner.addresses[0][1] if runner.addresses else port  # issue #25: listen ":0" picks a free port
    shown = f"[{host}]" if ":" in host else host
    log.info("web app listening on http://%s:%d (public address %s)", shown, real, cfg.web.base_url)
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
        finish_tasks(loop)
        loop.close()


def finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still pending on `loop` (a handler, a welcome email being sent) and let it end, so closing
    the loop leaves no "Task was destroyed but it is pending!" in the log (issue #25)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
