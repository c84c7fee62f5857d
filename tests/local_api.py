"""What every local stand-in for a platform's API shares (tests/x_server.py, mastodon_server.py, bluesky_server.py,
discord_server.py): a threaded HTTP server on a free port of 127.0.0.1, started by `with`, stopped on leaving it
(its `stopping` event set first, so a stalled answer ends), and quiet about clients that vanish mid-request."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client killed mid-request (a SIGKILLed `paperbot run` or `publish`) is part of the tests: not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalAPI:
    """Call `_serve(handler)` at the end of `__init__`; `origin` is the server's http://127.0.0.1:PORT."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.stopping = threading.Event()
        self.httpd = QuietHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
