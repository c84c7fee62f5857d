"""Helpers for the source tests: a real HTTP server on 127.0.0.1, configs written to disk, fixture bytes.

Nothing here stands in for the code under test: the server speaks real HTTP over a real socket, the config is
a real TOML file read by `load_config`, the store a real SQLite file.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bot.channels import load_config
from bot.config import Config
from bot.sources.fetch_http import HttpOptions
from bot.sources.poll import PollOptions
from bot.store import Store

SOURCE_FIXTURES = Path(__file__).parent / "fixtures" / "sources"
FAST = PollOptions(http=HttpOptions(timeout=0.5, retries=1, backoff=0.0), git_timeout=30.0, lock_wait=5.0)


def basic_auth(user: str, password: str) -> str:
    """The Authorization value RFC 7617 prescribes (UTF-8), written out here independently of the client."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fixture(name: str) -> bytes:
    return (SOURCE_FIXTURES / name).read_bytes()


def write_config(folder: Path, sources: list[dict], *, settle: str = "1h", max_wait: str = "48h",
                 backfill: int = 0, github_base_url: str | None = None, extra: str = "") -> Config:
    """A paperbot.toml in `folder` (state in folder/state), loaded the way the CLI loads it.

    `extra` is appended as is (say, a [web] table so a daemon's web app takes a free port). Enrichment from
    arXiv is off: a test never reaches the internet (tests/offline_guard.py)."""
    lines = ['state_dir = "state"', "", "[publish]", f'settle = "{settle}"', f'max_wait = "{max_wait}"',
             f"backfill = {backfill}", "", "[arxiv]", "enabled = false", ""]
    if github_base_url:
        lines += ["[github]", f"base_url = {json.dumps(github_base_url)}", ""]
    for s in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in s.items()]
        lines.append("")
    path = folder / "paperbot.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return load_config(path)


def snapshot(store: Store, source: str) -> tuple:
    """Everything a failed poll must leave untouched: weeks, papers, versions, validators, last version."""
    row = store.source(source) or {}
    weeks = sorted(tuple(sorted(r.items())) for r in store.db["weeks"].rows_where("source = ?", [source]))
    papers = sorted(tuple(sorted(r.items())) for r in store.db["papers"].rows_where("source = ?", [source]))
    return weeks, papers, len(store.versions(source)), row.get("validators"), row.get("last_version")


@dataclass
class Resource:
    body: bytes
    content_type: str = "text/markdown; charset=utf-8"
    etag: bool = True
    last_modified: str | None = None
    gzip: bool = False


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived (#32: arXiv's spacing)


@dataclass
class DocServer:
    """A real HTTP server in a thread, answering conditional GETs like a static file host.

    `fail(path, *modes)` queues faults for the next requests of `path`: "500", "stall" (no answer until
    `stall_seconds` pass), "drop" (connection closed without an answer), "truncate" (a body cut short),
    "garbage" (binary bytes with 200). With `auth` (user, password) every request needs those as HTTP Basic
    credentials, else 401. Every request is logged with its headers and the status sent.
    """

    resources: dict[str, Resource] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    stall_seconds: float = 3.0
    auth: tuple[str, str] | None = None
    released: threading.Event = field(default_factory=threading.Event)
    _clock: int = 1_700_000_000

    def __enter__(self) -> DocServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()})
                owner.log.append(req)
                owner.answer(self, req)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, body: bytes, **kw: object) -> None:
        """Serve `body` at `path`, with a Last-Modified one second later than the previous put."""
        self._clock += 1
        kw.setdefault("last_modified", email.utils.formatdate(self._clock, usegmt=True))
        self.resources[path] = Resource(body, **kw)  # type: ignore[arg-type]

    def fail(self, path: str, *modes: str) -> None:
        self.faults.setdefault(path, []).extend(modes)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    # -- answering ---------------------------------------------------------------------------------------
    def answer(self, h: BaseHTTPRequestHandler, req: Request) -> None:
        if self.auth and req.headers.get("authorization") != basic_auth(*self.auth):
            return self._send(h, req, 401, b"who are you?", "text/plain", {"WWW-Authenticate": 'Basic realm="x"'})
        queue = self.faults.get(req.path)
        fault = queue.pop(0) if queue else None
        if fault == "stall":
            self.released.wait(self.stall_seconds)
            fault = None
        if fault == "drop":
            req.status = -1
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "500":
            return self._send(h, req, 500, b"internal error", "text/plain")
        if fault == "garbage":
            junk = bytes((i * 97 + 13) % 256 for i in range(2048))
            return self._send(h, req, 200, junk, "application/octet-stream")
        if req.path in self.redirects:
            return self._send(h, req, 301, b"", "text/plain", {"Location": self.redirects[req.path]})
        res = self.resources.get(req.path)
        if res is None:
            return self._send(h, req, 404, b"not found", "text/plain")
        headers = {}
        etag = f'"{hashlib.sha1(res.body).hexdigest()[:16]}"' if res.etag else None
        if etag:
            headers["ETag"] = etag
        if res.last_modified:
            headers["Last-Modified"] = res.last_modified
        if (etag and req.headers.get("if-none-match") == etag) or (
                not etag and res.last_modified and req.headers.get("if-modified-since") == res.last_modified):
            return self._send(h, req, 304, b"", None, headers)
        body = res.body
        if res.gzip and "gzip" in req.headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if fault == "truncate":
            req.status = 200
            h.send_response(200)
            h.send_header("Content-Length", str(len(body) + 1000))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(h, req, 200, body, res.content_type, headers)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, req: Request, status: int, body: bytes, content_type: str | None,
              headers: dict | None = None) -> None:
        req.status = status
        try:
            h.send_response(status)
            if content_type:
                h.send_header("Content-Type", content_type)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a stall past its timeout): nothing to answer


class TrickleServer:
    """A real server on 127.0.0.1 that answers every request by dripping its status line and headers one byte
    every `interval` seconds, as a slow or hostile host does, and sends a body only after `total` seconds
    (never, by default). `connections` counts the requests it took; closing it drops every connection."""

    def __init__(self, interval: float = 0.1, total: float = 3600.0):
        self.interval, self.total = interval, total
        self.connections = 0
        self.closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> TrickleServer:
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        with self._lock:
            for c in self._socks:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks.append(conn)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60000
            start = time.monotonic()
            for i in range(len(head)):
                if self.closed.wait(self.interval) or time.monotonic() - start > self.total:
                    break
                conn.sendall(head[i:i + 1])
            if not self.closed.is_set():
                conn.sendall(b"\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass  # the client gave up: that is the point
