"""A local arXiv API (#32) speaking the documented format of `GET /api/query?id_list=…&max_results=N`
(https://info.arxiv.org/help/api/user-manual.html): an Atom feed with OpenSearch totals, one entry per paper
(`<id>http://arxiv.org/abs/ID vN</id>`, title and summary wrapped over lines as arXiv wraps them, authors,
`arxiv:primary_category`, `category` terms, links), and arXiv's error feed (one entry whose id is under
`http://arxiv.org/api/errors`) for an id of the wrong form. It can answer 429 or 503 (with Retry-After), hang, and
records every request: its time, its query and its User-Agent.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

_ID = re.compile(r"(\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?/\d{7})(v\d+)?\Z")


def _wrap(text: str, width: int = 40) -> str:
    """Wrapped at a space, the next line indented, as arXiv's answers wrap titles."""
    cut = text.rfind(" ", 0, width)
    return text if cut < 0 or len(text) <= width else f"{text[:cut]}\n  {text[cut + 1:]}"


@dataclass
class Paper:
    arxiv_id: str
    title: str
    authors: list[str]
    abstract: str
    primary: str = "cs.CL"
    categories: list[str] = field(default_factory=lambda: ["cs.CL", "cs.LG"])
    version: int = 2


@dataclass
class Seen:
    at: float  # time.monotonic() when the request arrived
    query: dict
    user_agent: str


class ArxivServer:
    """`papers` by id; `fail` a list of statuses to answer next (429/503) before answering normally; `hang` an
    Event: while it is not set, requests wait (a slow arXiv); `prefix` the namespace prefix the answer uses."""

    def __init__(self, papers: list[Paper] | None = None, prefix: str = "arxiv"):
        self.papers = {p.arxiv_id: p for p in papers or []}
        self.fail: list[int] = []
        self.hang: threading.Event | None = None
        self.prefix = prefix
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/query"

    def __enter__(self) -> ArxivServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hang is not None:
            self.hang.set()
        self.server.shutdown()
        self.server.server_close()

    def feed(self, ids: list[str], max_results: int) -> bytes:
        ns = self.prefix
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               f'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
               f'xmlns:{ns}="http://arxiv.org/schemas/atom">',
               f'<link href="http://arxiv.org/api/query?id_list={escape(",".join(ids))}" rel="self" '
               'type="application/atom+xml"/>',
               f'<title type="html">ArXiv Query: id_list={escape(",".join(ids))}</title>',
               "<id>http://arxiv.org/api/Jx1ZbSUZ7s</id>", "<updated>2024-03-01T00:00:00-05:00</updated>"]
        bad = [i for i in ids if not _ID.match(i)]
        if bad:
            out += ["<opensearch:totalResults>1</opensearch:totalResults>",
                    "<opensearch:startIndex>0</opensearch:startIndex>",
                    "<opensearch:itemsPerPage>1</opensearch:itemsPerPage>",
                    f"<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_{escape(bad[0])}</id>",
                    "<title>Error</title>", f"<summary>incorrect id format for {escape(bad[0])}</summary>",
                    "<updated>2024-03-01T00:00:00-05:00</updated>",
                    f'<link href="http://arxiv.org/api/errors#incorrect_id_format_for_{escape(bad[0])}" '
                    'rel="alternate" type="text/html"/>', "<author><name>arXiv api core</name></author></entry>",
                    "</feed>"]
            return "\n".join(out).encode()
        bare = [m.group(1) for i in ids if (m := _ID.match(i))]  # any version asks for the paper
        found = [self.papers[i] for i in bare if i in self.papers][:max_results]
        out += [f"<opensearch:totalResults>{len(found)}</opensearch:totalResults>",
                "<opensearch:startIndex>0</opensearch:startIndex>",
                f"<opensearch:itemsPerPage>{len(found)}</opensearch:itemsPerPage>"]
        for p in found:
            v = f"{p.arxiv_id}v{p.version}"
            words = p.abstract.split(" ")
            wrapped = "\n".join(" ".join(words[i:i + 12]) for i in range(0, len(words), 12))
            out += ["<entry>", f"<id>http://arxiv.org/abs/{v}</id>", "<updated>2024-02-20T17:59:59Z</updated>",
                    "<published>2024-02-01T18:00:00Z</published>",
                    f"<title>{escape(_wrap(p.title))}</title>",
                    f"<summary>  {escape(wrapped)}\n</summary>",
                    *(f"<author><name>{escape(a)}</name></author>" for a in p.authors),
                    f'<link href="http://arxiv.org/abs/{v}" rel="alternate" type="text/html"/>',
                    f'<link title="pdf" href="http://arxiv.org/pdf/{v}" rel="related" type="application/pdf"/>',
                    f'<{ns}:primary_category term="{p.primary}" scheme="http://arxiv.org/schemas/atom"/>',
                    *(f'<category term="{c}" scheme="http://arxiv.org/schemas/atom"/>' for c in p.categories),
                    "</entry>"]
        out.append("</feed>")
        return "\n".join(out).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with server.lock:
                    server.seen.append(Seen(time.monotonic(), query, self.headers.get("User-Agent", "")))
                    status = server.fail.pop(0) if server.fail else 200
                if server.hang is not None:
                    server.hang.wait(60)
                if parts.path != "/api/query":
                    return self._send(404, b"not found", "text/plain")
                if status != 200:
                    return self._send(status, b"busy", "text/plain", {"Retry-After": "3"})
                ids = [i for i in ",".join(query.get("id_list", [""])).split(",") if i]
                max_results = int(query.get("max_results", ["10"])[0])
                self._send(200, server.feed(ids, max_results), "application/atom+xml; charset=utf-8")

            def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler
