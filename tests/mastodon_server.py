"""A local server on 127.0.0.1 that speaks the part of the Mastodon API paperbot uses, for tests driven by the
real Mastodon.py client (issue #31).

- `POST /api/v1/statuses` (form or JSON: `status`, `in_reply_to_id`, `visibility`, `language`) → 200 with the
  status, as Mastodon answers; an `Idempotency-Key` seen within the last hour (`key_ttl`) answers the status it
  made, and makes none (`forget_keys()` ends that hour at once); a text over `max_characters` → 422, an unknown
  `in_reply_to_id` → 404, a bad visibility → 422;
- each status is stored as Mastodon stores it: `content` as HTML (paragraphs, `<br />`, links with their
  invisible spans, mentions and hashtags as links) and `mentions`, `tags` and the links it made, found with
  Mastodon's own rules written out here (MENTION_RE, HASHTAG_RE, URLs with a scheme), independently of
  paperbot's code; the length counted as Mastodon counts it (grapheme clusters, a linked URL as
  `characters_reserved_per_url`);
- `GET /api/v1/instance` and `/api/v2/instance` (each can be missing: 404; v1 with `max_toot_chars` as older
  servers and forks answer), `GET /api/v1/accounts/verify_credentials` (with `bot`), `GET
  /api/v1/accounts/:id/statuses` (newest first, `limit` up to 40, `max_id`, `exclude_reblogs`);
- a Bearer token on every request (401 otherwise); `X-RateLimit-Limit/-Remaining/-Reset` (ISO 8601) on every
  answer, 429 when the window is spent;
- scripted faults for the next matching request, or the one after `after` more (`fail_next`): a status (429
  with a reset, 503...), `drop` (read the request, close without answering), `drop_after_create` (make the
  status, then close), `status_after_create` (make it, then answer the status anyway) and `hang`; `refuse` a
  status for every matching request until `allow`; and `chaos(faults)` as tests/x_server.py does it.
"""

from __future__ import annotations

import html
import json
import re
import select
import socket
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from chaos_support import STALL, Faults
from local_api import LocalAPI

from bot.channels.x.text import twitter_text  # twitter-text-parser, which Mastodon's URL rule is built on

STATUSES = "POST /api/v1/statuses"
WINDOW = 5 * 60

# Mastodon's own entity rules (app/models/account.rb MENTION_RE, app/models/tag.rb HASHTAG_RE), in Python.
_USERNAME = r"[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*"
MENTION_RE = re.compile(rf"(?<![=/\w])@(({_USERNAME})(?:@[\w.-]+\w+)?)", re.IGNORECASE)
_SEP = "_\u00b7\u30fb\u200c"
_ALPHA = r"[^\W\d_]"
_TAG_NAME = (rf"(?:[\w_][\w{_SEP}]*(?:{_ALPHA}|[{_SEP}])[\w{_SEP}]*[\w_])|(?:[\w_]*{_ALPHA}[\w_]*)")
HASHTAG_RE = re.compile(rf"(?<![=/)\w])[#＃]({_TAG_NAME})", re.IGNORECASE)  # ＃ too: stricter than Mastodon
_SCHEMES = r"(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://"
_OTHER_URI = re.compile(r"(?i)\b(?:xmpp|magnet):[^\s<>\"]+")
_ANY_SCHEME = re.compile(rf"(?i)\b{_SCHEMES}[^\s<>\"]+")


def find_links(text: str) -> list[tuple[int, int, str]]:
    """The URLs Mastodon would link in `text`, with their spans: twitter-text's URLs that have a scheme, any
    `scheme://…` of the schemes Mastodon links, `xmpp:` and `magnet:` URIs (a superset, so a test is strict)."""
    found = [(e["indices"][0], e["indices"][1], e["url"]) for e in twitter_text.extract_urls_with_indices(text)
             if re.match(_SCHEMES, e["url"], re.IGNORECASE)]
    for rx in (_ANY_SCHEME, _OTHER_URI):
        for m in rx.finditer(text):
            if not any(s <= m.start() < e for s, e, _ in found):
                found.append((m.start(), m.end(), m.group(0)))
    return sorted(found)


def find_mentions(text: str) -> list[str]:
    return [m.group(1) for m in MENTION_RE.finditer(text)]


def find_tags(text: str) -> list[str]:
    return [m.group(1) for m in HASHTAG_RE.finditer(text)]


def graphemes(text: str) -> int:
    """Grapheme clusters, near enough for counting: marks, joiners, variation selectors, skin tones and tag
    characters join the character before; a joiner joins the next one too; regional indicators pair."""
    n, join_next, ri = 0, False, 0
    for c in text:
        cp = ord(c)
        if join_next:
            join_next = False
            continue
        if c == "\u200d":
            join_next = True
            continue
        if (unicodedata.category(c) in ("Mn", "Me", "Mc") or 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF
                or 0xE0020 <= cp <= 0xE007F):
            continue
        if 0x1F1E6 <= cp <= 0x1F1FF:
            ri += 1
            if ri % 2 == 0:
                continue
        else:
            ri = 0
        n += 1
    return n


def mastodon_length(text: str, reserved: int) -> int:
    """StatusLengthValidator: linked URLs count `reserved`, the rest in grapheme clusters."""
    out, pos = [], 0
    for start, end, _ in find_links(text):
        out.append(text[pos:start] + "x" * reserved)
        pos = end
    out.append(text[pos:])
    return graphemes("".join(out))


def to_html(text: str, host: str) -> str:
    """The status's text as Mastodon's TextFormatter renders it."""
    spans: list[tuple[int, int, str]] = []
    for start, end, url in find_links(text):
        shown = re.sub(r"^[a-z]+://", "", url)
        scheme = url[:len(url) - len(shown)]
        spans.append((start, end, f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener">'
                                  f'<span class="invisible">{html.escape(scheme)}</span>'
                                  f'<span class="">{html.escape(shown)}</span></a>'))
    for m in MENTION_RE.finditer(text):
        spans.append((m.start(), m.end(), f'<span class="h-card"><a href="https://{host}/@{m.group(1)}" '
                                          f'class="u-url mention">@<span>{html.escape(m.group(1))}</span></a></span>'))
    for m in HASHTAG_RE.finditer(text):
        spans.append((m.start(), m.end(), f'<a href="https://{host}/tags/{m.group(1)}" class="mention hashtag" '
                                          f'rel="tag">#<span>{html.escape(m.group(1))}</span></a>'))
    out, pos = [], 0
    for start, end, markup in sorted(spans):
        if start < pos:
            continue  # overlapping entities: the first wins, as Mastodon's extractor removes overlaps
        out.append(html.escape(text[pos:start], quote=False) + markup)
        pos = end
    out.append(html.escape(text[pos:], quote=False))
    body = "".join(out)
    paras = [p.replace("\n", "<br />") for p in re.split(r"\n\n+", body.strip())]
    return "".join(f"<p>{p}</p>" for p in paras)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict
    headers: dict[str, str]
    status: int | None = None  # None: dropped without an answer
    at: float = 0.0


@dataclass
class StoredStatus:
    id: str
    text: str
    account_id: str
    in_reply_to: str | None
    visibility: str
    language: str | None
    created_at: str
    content: str
    mentions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    length: int = 0


@dataclass
class Fault:
    route: str
    kind: str  # status | drop | drop_after_create | status_after_create | hang | stall
    status: int = 503
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    after: int = 0
    lasting: bool = False


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MastodonServer(LocalAPI):
    """Start with `with MastodonServer(token) as m:`; point `[mastodon] instance` at `m.base_url`."""

    def __init__(self, token: str, *, account_id: str = "109000000000000001", username: str = "paperbot",
                 bot: bool = True, max_characters: int = 500, reserved: int = 23, v2: bool = True,
                 v1_max_toot_chars: int | None = None, limit: int = 300, key_ttl: float = 3600.0):
        self.token, self.account_id, self.username, self.bot = token, account_id, username, bot
        self.max_characters, self.reserved, self.v2 = max_characters, reserved, v2
        self.v1_max_toot_chars = v1_max_toot_chars
        self.limit, self.key_ttl = limit, key_ttl
        self.requests: list[Seen] = []
        self.statuses: dict[str, StoredStatus] = {}  # in creation order
        self.keys: dict[str, tuple[str, float]] = {}  # Idempotency-Key -> (status id, when)
        self.faults: list[Fault] = []
        self.plan: Faults | None = None
        self.injected: Counter[str] = Counter()
        self.resets: list[tuple[float, float]] = []
        self.replays = 0  # POSTs answered from an Idempotency-Key
        self._window: tuple[float, int] = (0.0, 0)
        self._next_id = 110000000000000000
        self.lock = threading.Lock()
        self._serve(self._handler())

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    # -- scripting ----------------------------------------------------------------------------------------
    def fail_next(self, route: str, kind: str = "status", *, after: int = 0, **kw) -> None:
        with self.lock:
            self.faults.append(Fault(route, kind, after=after, **kw))

    def refuse(self, route: str, status: int = 403, **kw) -> None:
        with self.lock:
            self.faults.append(Fault(route, "status", status=status, lasting=True, **kw))

    def allow(self, route: str) -> None:
        with self.lock:
            self.faults = [f for f in self.faults if not (f.lasting and f.route == route)]

    def forget_keys(self) -> None:
        """The hour is over: the server no longer knows any Idempotency-Key."""
        with self.lock:
            self.keys.clear()

    def chaos(self, faults: Faults | None) -> None:
        with self.lock:
            if self.plan is not None and faults is None:
                self.plan.stop()
            self.plan = faults

    def add_status(self, text: str, reply_to: str | None = None) -> str:
        """A status the account posted by hand."""
        with self.lock:
            return self._store(text, reply_to, "public", "en").id

    def ours(self) -> list[StoredStatus]:
        with self.lock:
            return list(self.statuses.values())

    def thread(self, head_id: str) -> list[StoredStatus]:
        """The thread from `head_id` following replies; AssertionError if it branches."""
        with self.lock:
            out = [self.statuses[head_id]]
            while True:
                replies = [s for s in self.statuses.values() if s.in_reply_to == out[-1].id]
                assert len(replies) <= 1, f"status {out[-1].id} has {len(replies)} replies: the thread branches"
                if not replies:
                    return out
                out.append(replies[0])

    def early(self) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if any(at < r.at < reset for at, reset in self.resets)]

    # -- internals ----------------------------------------------------------------------------------------
    def _fault(self, route: str) -> Fault | None:
        for f in self.faults:
            if not route.startswith(f.route):
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if not f.lasting:
                self.faults.remove(f)
            return f
        return None

    def _chaos_fault(self, route: str) -> tuple[Fault | None, float]:
        d = self.plan.next("create" if route == STATUSES else "read") if self.plan else None
        if d is None:
            return None, 0.0
        if d.fault:
            self.injected[d.fault] += 1
        if d.fault == "429":
            return Fault(route, "status", status=429, body={"error": "Too many requests"},
                         headers=self._limited(time.time() + d.wait)), 0.0
        if d.fault in ("5xx", "stored_5xx"):
            return Fault(route, "status" if d.fault == "5xx" else "status_after_create", status=503), d.latency
        return (Fault(route, d.fault, seconds=STALL) if d.fault else None), d.latency

    def _limited(self, reset: float) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": iso(reset)}

    def _rate(self) -> tuple[bool, dict[str, str]]:
        now = time.time()
        start, used = self._window
        if now >= start + WINDOW:
            start, used = now, 0
        allowed = used < self.limit
        used += allowed
        self._window = (start, used)
        return allowed, {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.limit - used),
                         "X-RateLimit-Reset": iso(start + WINDOW)}

    def _store(self, text: str, reply_to: str | None, visibility: str, language: str | None) -> StoredStatus:
        self._next_id += 1
        sid = str(self._next_id)
        s = StoredStatus(sid, text, self.account_id, reply_to, visibility, language, iso(time.time()),
                         to_html(text, self.host), find_mentions(text), find_tags(text),
                         [u for _, _, u in find_links(text)], mastodon_length(text, self.reserved))
        self.statuses[sid] = s
        return s

    def _account(self) -> dict:
        return {"id": self.account_id, "username": self.username, "acct": self.username,
                "display_name": "paperbot", "locked": False, "bot": self.bot, "discoverable": True,
                "group": False, "created_at": "2024-01-01T00:00:00.000Z", "note": "", "url":
                f"https://{self.host}/@{self.username}", "avatar": "", "avatar_static": "", "header": "",
                "header_static": "", "followers_count": 0, "following_count": 0,
                "statuses_count": len(self.statuses), "last_status_at": None, "emojis": [], "fields": []}

    def _json(self, s: StoredStatus) -> dict:
        return {"id": s.id, "uri": f"https://{self.host}/users/{self.username}/statuses/{s.id}",
                "url": f"https://{self.host}/@{self.username}/{s.id}", "created_at": s.created_at,
                "account": self._account(), "content": s.content, "visibility": s.visibility,
                "sensitive": False, "spoiler_text": "", "language": s.language, "in_reply_to_id": s.in_reply_to,
                "in_reply_to_account_id": self.account_id if s.in_reply_to else None,
                "media_attachments": [], "application": {"name": "paperbot", "website": None},
                "mentions": [{"id": "1", "username": m.split("@")[0], "acct": m, "url": f"https://{self.host}/@{m}"}
                             for m in s.mentions],
                "tags": [{"name": t.lower(), "url": f"https://{self.host}/tags/{t.lower()}"} for t in s.tags],
                "emojis": [], "reblogs_count": 0, "favourites_count": 0, "replies_count": 0, "reblog": None,
                "poll": None, "card": None, "edited_at": None}

    def _instance(self, version: int) -> tuple[int, dict]:
        if version == 2 and not self.v2:
            return 404, {"error": "Record not found"}
        stat = {"max_characters": self.max_characters, "characters_reserved_per_url": self.reserved}
        if version == 2:
            return 200, {"domain": self.host, "title": "test", "version": "4.3.0", "source_url": "",
                         "description": "", "configuration": {"statuses": stat, "urls": {"streaming": ""}}}
        body = {"uri": self.host, "title": "test", "version": "4.3.0", "description": "", "email": "",
                "urls": {}, "stats": {}, "languages": ["en"]}
        if self.v1_max_toot_chars is not None:
            body["max_toot_chars"] = self.v1_max_toot_chars
        elif self.v2:
            body["configuration"] = {"statuses": stat}
        return 200, body

    def _create(self, seen: Seen, drop_after_create: bool) -> tuple[int | None, dict | None]:
        key = seen.headers.get("Idempotency-Key")
        now = time.time()
        if key and key in self.keys and now - self.keys[key][1] < self.key_ttl:
            self.replays += 1
            return 200, self._json(self.statuses[self.keys[key][0]])
        text = str(seen.body.get("status") or "")
        if not text.strip():
            return 422, {"error": "Validation failed: Text can't be blank"}
        visibility = str(seen.body.get("visibility") or "public")
        if visibility not in ("public", "unlisted", "private", "direct"):
            return 422, {"error": f"Validation failed: Visibility {visibility} is not valid"}
        size = mastodon_length(text, self.reserved)
        if size > self.max_characters:
            return 422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}
        reply_to = str(seen.body.get("in_reply_to_id") or "") or None
        if reply_to and reply_to not in self.statuses:
            return 404, {"error": "Record not found"}
        s = self._store(text, reply_to, visibility, seen.body.get("language") or None)
        if key:
            self.keys[key] = (s.id, now)
        if drop_after_create:
            return None, None
        return 200, self._json(s)

    def _timeline(self, account_id: str, query: dict[str, list[str]]) -> tuple[int, object]:
        if account_id != self.account_id:
            return 404, {"error": "Record not found"}
        limit = min(int((query.get("limit") or ["20"])[0]), 40)
        ours = list(reversed(list(self.statuses.values())))
        if query.get("max_id"):
            below = int(query["max_id"][0])
            ours = [s for s in ours if int(s.id) < below]
        return 200, [self._json(s) for s in ours[:limit]]

    def _route(self, method: str, path: str, seen: Seen, drop_after_create: bool):
        path = path.rstrip("/")
        if method == "POST" and path == "/api/v1/statuses":
            return self._create(seen, drop_after_create)
        if method == "GET" and path in ("/api/v1/instance", "/api/v2/instance"):
            return self._instance(2 if "/v2/" in path else 1)
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            return 200, self._account()
        m = re.fullmatch(r"/api/v1/accounts/(\d+)/statuses", path)
        if method == "GET" and m:
            return self._timeline(m.group(1), seen.query)
        return 404, {"error": "Record not found"}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self, seen: Seen, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if status == 429 and (headers or {}).get("X-RateLimit-Reset"):
                    reset = datetime.fromisoformat(headers["X-RateLimit-Reset"].replace("Z", "+00:00")).timestamp()
                    with server.lock:
                        server.resets.append((time.time(), reset))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True
                    return
                seen.status = status

            def _drop(self) -> None:
                self.close_connection = True

            def _hung_up(self) -> bool:
                try:
                    ready, _, _ = select.select([self.connection], [], [], 0)
                    return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _body(self) -> dict:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not raw:
                    return {}
                if "json" in (self.headers.get("Content-Type") or ""):
                    try:
                        body = json.loads(raw)
                        return body if isinstance(body, dict) else {}
                    except ValueError:
                        return {}
                return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                body = self._body()
                with server.lock:
                    seen = Seen(method, parts.path, parse_qs(parts.query), body, dict(self.headers), at=time.time())
                    server.requests.append(seen)
                    route = f"{method} {parts.path.rstrip('/')}"
                    fault, latency = server._fault(route), 0.0
                    if fault is None:
                        fault, latency = server._chaos_fault(route)
                if fault and fault.kind == "hang":
                    server.stopping.wait(fault.seconds)
                    fault = None
                if fault and fault.kind == "stall":
                    server.stopping.wait(fault.seconds)
                    if self._hung_up():
                        return self._drop()
                    fault = None
                if fault and fault.kind == "drop":
                    return self._drop()
                if fault and fault.kind == "status":
                    return self._answer(seen, fault.status, fault.body or {"error": f"scripted {fault.status}"},
                                        fault.headers)
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._answer(seen, 401, {"error": "The access token is invalid"})
                with server.lock:
                    ok, headers = server._rate()
                    if not ok:
                        status, answer = 429, {"error": "Too many requests"}
                        headers["X-RateLimit-Remaining"] = "0"
                    else:
                        status, answer = self_route(method, parts.path, seen, fault)
                if latency:
                    server.stopping.wait(latency)
                if status is None:
                    return self._drop()
                if fault and fault.kind == "status_after_create":
                    status, answer = fault.status, fault.body or {"error": "scripted after create"}
                    headers = {**headers, **fault.headers}
                self._answer(seen, status, answer, headers)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        def self_route(method: str, path: str, seen: Seen, fault: Fault | None):
            return server._route(method, path, seen, bool(fault and fault.kind == "drop_after_create"))

        return Handler
