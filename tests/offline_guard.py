"""The test run never reaches the internet: every peer a test needs runs on 127.0.0.1.

A test that reached a real host (api.twitter.com, export.arxiv.org, ...) passed or failed with the machine's
DNS and network: CI, which has no route out, once timed out on retries that a laptop answered at once. So the
run sets HTTP(S)_PROXY, for itself and every process it starts, to a stand-in proxy on 127.0.0.1 that refuses
every request at once (403) and writes down the host and the test; loopback addresses go direct (NO_PROXY).
conftest.py fails the run, naming them, if anything tried. Clients that ignore proxy variables (aiohttp's
default) only ever talk to local servers in these tests.
"""

from __future__ import annotations

import os
import socketserver
import threading

NO_PROXY = "127.0.0.1,localhost,::1"
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


class _Refuse(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").split()
        if len(line) >= 2:
            method, target = line[0], line[1]
            host = target if method == "CONNECT" else target.split("://", 1)[-1].split("/", 1)[0]
            test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").rsplit(" (", 1)[0]
            self.server.tried.append((test, method, host))  # type: ignore[attr-defined]
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class OfflineGuard:
    """Start with `start()`; `tried` lists "test: METHOD host" for every request meant for the internet but those
    a test declared with `@pytest.mark.reaches_internet("host", ...)` (the default config tracks the real digest:
    a test of it sees the poll refused, as on a machine without a network)."""

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Refuse)
        self.server.tried = []  # type: ignore[attr-defined]
        self.allowed: dict[str, set[str]] = {}  # test id -> hosts it may try

    @property
    def tried(self) -> list[str]:
        return [f"{test}: {method} {host}" for test, method, host in self.server.tried  # type: ignore[attr-defined]
                if host.rsplit(":", 1)[0] not in self.allowed.get(test, set())]

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        for name in VARIABLES:
            os.environ[name] = url
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = NO_PROXY

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
