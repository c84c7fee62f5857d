"""The web app (bot/web/app.py, served by bot/web/server.py) on its own thread and event loop beside the daemon.

`paperbot run` mails unsubscribe links, so it must also answer them: it starts the app here for as long as
it runs. A web app that cannot start (the port is taken, say) is logged as an error and the daemon goes on
polling and publishing; `paperbot serve` can then run it in a process of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from bot.config import Config
from bot.web.ports import in_use, taken_message

log = logging.getLogger(__name__)


class WebThread:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="web", daemon=True)
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> bool:
        """Start serving on `[web] listen`; False (and an error in the log) if it could not."""
        self.thread.start()
        self.ready.wait(timeout)
        if self.error is not None or not self.ready.is_set():
            if in_use(self.error):  # issue #25: `paperbot serve` beside it could not listen there either
                log.error("the web app (unsubscribe links, editions) did not start: %s; this daemon goes on "
                          "polling and publishing without it", taken_message(self.cfg.web.listen,
                                                                            self.cfg.web.host_port[1]))
                return False
            log.error("the web app (unsubscribe links, editions) did not start on %s: %s; fix it and restart, or "
                      "run `paperbot serve` for it", self.cfg.web.listen, self.error or "timed out")
            return False
        return True

    def _run(self) -> None:
        from bot.web.server import finish_tasks, start_web  # aiohttp: loaded only when the thread runs

        asyncio.set_event_loop(self.loop)
        try:
            runner = self.loop.run_until_complete(start_web(self.cfg))
        except Exception as e:  # a taken port, an unreadable signing key: the daemon goes on without it
            self.error = e
            self.ready.set()
            self.loop.close()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(runner.cleanup())
            finish_tasks(self.loop)
            self.loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self.thread.is_alive() and self.error is None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
