"""A local server on 127.0.0.1 that speaks the part of Discord's REST API paperbot uses, for tests driven by the
real discord.py client with `Route.BASE` pointed at `api_base` (issue #12).

- webhooks: `POST /webhooks/{id}/{token}` (`wait`, `thread_id`; `thread_name` in the body opens a post in a
  forum webhook's channel, whose id is the first message's, as on Discord), `GET`/`PATCH
  /webhooks/{id}/{token}/messages/{message_id}` (`thread_id` needed for a message inside a thread); 404 code
  10015 for an unknown webhook, 401 code 50027 for a wrong token;
- bot: `POST /channels/{id}/messages` (`nonce` + `enforce_nonce`: the same nonce again within `nonce_window`
  seconds returns the first message; later it makes a new one, as Discord forgets a nonce after minutes),
  `GET` it (`after`, `limit`: newest first), `GET`/`PATCH .../messages/{id}`, `POST
  .../messages/{id}/crosspost` (announcement channels; 40033 when done already), `GET /channels/{id}`, `GET
  /users/@me`; `Authorization: Bot <token>` or 401;
- Discord's limits, checked here independently of paperbot's code (lengths in UTF-16 units, the stricter
  count): 400 with code 50035 and the offending fields; an empty message is 50006;
- rate limits per webhook or channel (`rate`: requests per `per` seconds) with `X-RateLimit-*` headers, 429 with
  `retry_after` in a JSON body, `Retry-After` and `Via` (as Discord's own answers carry; discord.py retries only
  then), `Content-Type: application/json` exactly;
- scripted faults for the next matching request (`fail_next`): a status (429, 5xx, 404...) with any body and
  headers, `drop` (close without answering), `drop_after_create`, `status_after_create` (make the message, then
  answer the status anyway, as Discord does with a 500 now and then: issue #21), `hang` (answer after a delay),
  `hang_after_create` (make the message, then answer after `seconds`: past a client's timeout);
- a record of every request (`requests`) and every message (`messages`), with what a reader sees: `pings`
  (who its content would notify, by Discord's rules for `allowed_mentions`) and `shown()` (text unescaped);
- slow creates, for killing a client mid-announcement: `create_delay` (a create waits this long before the
  message is made, and is not made if the client hung up meanwhile: the request never got through) and
  `answer_delay` (the message is made, and its answer waits this long: a client killed then never learns its
  id); `idle()` waits until no request is being handled;
- `chaos(faults)` (issues #15, #22): the requests no fault is scripted for fail as tests/chaos_support.py's
  schedule says (a pure function of the seed and the request's number): a 429 asking to wait a few seconds, a
  5xx before the message is made or after (`stored_5xx`), a stall past the client's timeout after which a
  request whose client hung up is dropped unmade, a dropped connection before or after the message is made;
  and each takes the schedule's latency (a message is made, then answered that much later). Faults are counted
  by kind in `injected`; every wait a 429 announced is kept (`resets`), and `early()` lists requests that came
  before it. Each message keeps whether its create was answered with it (`Message.answered`): one that was not
  is a lost answer, which a webhook can only resend.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from chaos_support import STALL, Faults
from local_api import LocalAPI

BASE_PATH = "/api/v10"
TEXT, NEWS, FORUM = 0, 5, 15  # channel types
LIMITS = {"content": 2000, "embeds": 10, "total": 6000, "title": 256, "description": 4096, "fields": 25,
          "field.name": 256, "field.value": 1024, "footer": 2048, "author": 256, "thread_name": 100}


def n(text: object) -> int:
    return len(str(text or "").encode("utf-16-le")) // 2


def shown(text: str) -> str:
    """What Discord displays for escaped markdown: every backslash escape removed."""
    return re.sub(r"\\(.)", r"\1", text or "")


def pings(content: str, allowed: dict | None) -> list[str]:
    """Whom `content` notifies: @everyone/@here, <@user> and <@&role> not escaped, filtered the way Discord
    filters them by `allowed_mentions` (absent: everything in the text pings)."""
    found = [m.group(0) for m in re.finditer(r"(?<!\\)(@everyone|@here|<@!?\d+>|<@&\d+>)", content or "")]
    if allowed is None:
        return found
    parse = set(allowed.get("parse") or [])
    roles, users = {str(r) for r in allowed.get("roles") or []}, {str(u) for u in allowed.get("users") or []}
    out = []
    for m in found:
        ident = re.sub(r"\D", "", m)
        if (m in ("@everyone", "@here") and "everyone" in parse or m.startswith("<@&") and ("roles" in parse or ident
                in roles) or re.match(r"<@!?\d", m) and ("users" in parse or ident in users)):
            out.append(m)
    return out


def limit_errors(body: dict, *, edit: bool = False) -> dict:
    """Discord's `errors` object for every limit `body` breaks ({} if none)."""
    errors: dict = {}
    embeds = body.get("embeds") or []
    if n(body.get("content")) > LIMITS["content"]:
        errors["content"] = "Must be 2000 or fewer in length."
    if len(embeds) > LIMITS["embeds"]:
        errors["embeds"] = "Must be 10 or fewer in length."
    total = 0
    for i, e in enumerate(embeds):
        parts = {"title": e.get("title"), "description": e.get("description"),
                 "footer": (e.get("footer") or {}).get("text"), "author": (e.get("author") or {}).get("name")}
        for k, v in parts.items():
            if n(v) > LIMITS[k]:
                errors[f"embeds.{i}.{k}"] = f"Must be {LIMITS[k]} or fewer in length."
        fields = e.get("fields") or []
        if len(fields) > LIMITS["fields"]:
            errors[f"embeds.{i}.fields"] = "Must be 25 or fewer in length."
        for j, f in enumerate(fields):
            if n(f.get("name")) > LIMITS["field.name"] or n(f.get("value")) > LIMITS["field.value"]:
                errors[f"embeds.{i}.fields.{j}"] = "Must be 256 / 1024 or fewer in length."
        total += sum(n(v) for v in parts.values()) + sum(n(f.get("name")) + n(f.get("value")) for f in fields)
    if total > LIMITS["total"]:
        errors["embeds"] = "Embed size exceeds maximum size of 6000"
    if "thread_name" in body and not 1 <= n(body["thread_name"]) <= LIMITS["thread_name"]:
        errors["thread_name"] = "Must be between 1 and 100 in length."
    return errors


@dataclass
class Seen:
    method: str
    path: str  # without BASE_PATH
    query: dict[str, list[str]]
    body: object
    headers: dict[str, str]
    status: int | None = None  # None: dropped without an answer
    at: float = 0.0


@dataclass
class Message:
    id: str
    channel_id: str
    content: str
    embeds: list[dict]
    allowed_mentions: dict | None
    webhook_id: str | None = None
    author_id: str = ""
    nonce: str | None = None
    made: float = 0.0  # time.monotonic() when it was made (a nonce is honoured for `nonce_window` after)
    crossposted: bool = False
    pings: list[str] = field(default_factory=list)
    edits: int = 0
    answered: bool = False  # its create was answered with it (else its answer was lost: a 5xx, a drop, a stall)

    def json(self) -> dict:
        author = {"id": self.author_id, "username": "paperbot", "discriminator": "0000", "avatar": None,
                  "bot": True}
        d = {"id": self.id, "channel_id": self.channel_id, "type": 0, "content": self.content, "embeds": self.embeds,
             "author": author, "attachments": [], "mentions": [], "mention_roles": [], "mention_everyone": False,
             "pinned": False, "tts": False, "timestamp": "2026-12-01T10:00:00.000000+00:00",
             "edited_timestamp": None, "flags": 1 if self.crossposted else 0, "components": []}
        if self.webhook_id:
            d["webhook_id"] = self.webhook_id
        if self.nonce:
            d["nonce"] = self.nonce
        return d


@dataclass
class Fault:
    route: str  # a prefix of "METHOD path" (path without BASE_PATH)
    kind: str = "status"  # status | drop | drop_after_create | status_after_create | hang | hang_after_create
    # (and for chaos, #22: stall, a request whose client hung up meanwhile is never made)
    status: int = 503
    body: dict | None = None
    headers: dict[str, str | None] = field(default_factory=dict)  # a None value leaves that header out
    seconds: float = 0.0


class DiscordServer(LocalAPI):
    """`with DiscordServer() as d:`; set `[discord] api_base = d.api_base`, the webhook URL `d.webhook_url()`."""

    def __init__(self, *, rate: int = 5, per: float = 2.0, nonce_window: float = 300.0):
        self.webhook_id, self.webhook_token = "1200000000000000001", "T" * 68
        self.bot_token, self.bot_id = "bot-token-" + "x" * 40, "1200000000000000002"
        self.channels: dict[str, dict] = {"1200000000000000010": {"type": TEXT, "name": "announcements"}}
        self.webhook_channel = "1200000000000000010"
        self.rate, self.per = rate, per
        self.nonce_window = nonce_window  # seconds Discord remembers a message's nonce ("a few minutes")
        self.requests: list[Seen] = []
        self.messages: dict[str, Message] = {}  # in creation order
        self.faults: list[Fault] = []
        self._windows: dict[str, tuple[float, int]] = {}
        self._next = 1300000000000000000
        self.create_delay = self.answer_delay = 0.0
        self.busy = 0  # requests being handled
        self.holding = 0  # creates waiting out `create_delay` (no message made yet)
        self.answering = 0  # creates whose message is made and whose answer waits out `answer_delay`
        self.plan: Faults | None = None  # chaos: the seed's fault schedule
        self.injected: Counter[str] = Counter()  # chaos faults injected, by kind
        self.resets: list[tuple[float, float]] = []  # (when a 429 was answered, when its wait ends)
        self.lock = threading.Lock()
        self._serve(_handler(self))

    @property
    def api_base(self) -> str:
        return self.origin + BASE_PATH

    def webhook_url(self) -> str:
        """As Discord shows it (discord.py parses the id and token from this form; requests go to api_base)."""
        return f"https://discord.com/api/webhooks/{self.webhook_id}/{self.webhook_token}"

    def idle(self, timeout: float = 10.0) -> None:
        """Wait until every request that arrived has been handled (answered, or dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.busy == 0:
                    return
            assert time.monotonic() < deadline, "the server is still handling a request"
            time.sleep(0.01)

    def fail_next(self, route: str, kind: str = "status", **kw) -> None:
        with self.lock:
            self.faults.append(Fault(route, kind, **kw))

    def chaos(self, faults: Faults | None) -> None:
        """Fail the requests no fault is scripted for as `faults` schedules (None: no more faults)."""
        with self.lock:
            if self.plan is not None and faults is None:
                self.plan.stop()
            self.plan = faults

    def _chaos_fault(self, creates: bool) -> tuple[Fault | None, float]:
        """The schedule's fault for this request and its latency (under the lock)."""
        d = self.plan.next("create" if creates else "read") if self.plan else None
        if d is None:
            return None, 0.0
        if d.fault:
            self.injected[d.fault] += 1
        if d.fault == "429":
            return Fault("", "status", status=429, body={"message": "You are being rate limited.",
                                                         "retry_after": d.wait, "global": False},
                         headers={"Retry-After": str(round(d.wait)), "X-RateLimit-Limit": str(self.rate),
                                  "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{d.wait:.3f}",
                                  "X-RateLimit-Scope": "user"}), 0.0
        if d.fault in ("5xx", "stored_5xx"):  # before the message is made, or after
            return Fault("", "status" if d.fault == "5xx" else "status_after_create",
                         status=(500, 502, 503)[int(d.latency * 1000) % 3]), d.latency
        return (Fault("", d.fault, seconds=STALL) if d.fault else None), d.latency

    def early(self) -> list[Seen]:
        """The requests that reached the server after a 429 and before the end of the wait it announced."""
        with self.lock:
            return [r for r in self.requests if any(at < r.at < until for at, until in self.resets)]

    def make_forum(self) -> None:
        """The webhook's channel becomes a forum: each message needs a thread_name or a thread_id."""
        self.channels[self.webhook_channel]["type"] = FORUM

    def in_channel(self, channel_id: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages.values() if m.channel_id == channel_id]

    def posts(self, method: str = "POST") -> list[Seen]:
        """The requests that made (or tried to make) a message, in order."""
        return [s for s in self.requests if s.method == method and (s.path.startswith("/webhooks/")
                or s.path.endswith("/messages"))]

    # -- state changes (under the lock) ------------------------------------------------------------------------
    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    def _bucket(self, key: str) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        start, used = self._windows.get(key, (now, 0))
        if now >= start + self.per:
            start, used = now, 0
        ok = used < self.rate
        used += ok
        self._windows[key] = (start, used)
        reset_after = max(start + self.per - now, 0.0)
        return ok, {"X-RateLimit-Limit": str(self.rate), "X-RateLimit-Remaining": str(max(self.rate - used, 0)),
                    "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}", "X-RateLimit-Reset-After":
                    f"{reset_after:.3f}", "X-RateLimit-Bucket": key}

    def _store(self, channel_id: str, body: dict, **kw) -> Message:
        m = Message(self._id(), channel_id, body.get("content") or "", body.get("embeds") or [],
                    body.get("allowed_mentions"), made=time.monotonic(), **kw)
        m.pings = pings(m.content, m.allowed_mentions)
        self.messages[m.id] = m
        return m


def _err(status: int, code: int, message: str, errors: dict | None = None) -> tuple[int, dict]:
    body: dict = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return status, body


def _handler(server: DiscordServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()  # headers and body in two writes: without this, 40 ms (delayed ACK) each
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self, seen: Seen, status: int, body: dict | None, headers: dict | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            if status == 429 and isinstance(body, dict) and body.get("retry_after") is not None:
                now = time.time()
                with server.lock:
                    server.resets.append((now, now + float(body["retry_after"])))
            self.send_response(status)
            out = {"Content-Type": "application/json", "Content-Length": str(len(data)), "Via": "1.1 google",
                   **(headers or {})}
            for k, v in out.items():
                if v is not None:
                    self.send_header(k, v)
            seen.status = status  # before the client can read it and the test look
            try:
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (its timeout): it never saw this answer
                seen.status = None
                self.close_connection = True

        def _hung_up(self) -> bool:
            """The client closed its end (a killed process): nothing more to read, ever."""
            try:
                ready, _, _ = select.select([self.connection], [], [], 0)
                return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _wait(self, seconds: float) -> bool:
            """Wait `seconds`; False as soon as the client hangs up."""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if self._hung_up():
                    return False
                time.sleep(0.01)
            return not self._hung_up()

        def _handle(self, method: str) -> None:
            with server.lock:
                server.busy += 1
            try:
                self._handle_one(method)
            finally:
                with server.lock:
                    server.busy -= 1

        def _handle_one(self, method: str) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            path = parts.path[len(BASE_PATH):] if parts.path.startswith(BASE_PATH) else parts.path
            seen = Seen(method, path, parse_qs(parts.query), body, dict(self.headers), at=time.time())
            creates = method == "POST" and (re.fullmatch(r"/webhooks/\d+/[^/]+", path) is not None
                                            or re.fullmatch(r"/channels/\d+/messages", path) is not None)
            latency = 0.0
            with server.lock:
                server.requests.append(seen)
                fault = next((f for f in server.faults if f"{method} {path}".startswith(f.route)), None)
                if fault:
                    server.faults.remove(fault)
                else:
                    fault, latency = server._chaos_fault(creates)
            if fault and fault.kind == "stall":  # past the client's timeout: a client that hung up never got through
                if not self._wait(fault.seconds):
                    self.close_connection = True
                    return
                fault = None
            if fault and fault.kind == "hang":
                server.stopping.wait(fault.seconds)
                fault = None
            if fault and fault.kind == "drop":
                self.close_connection = True
                return
            if fault and fault.kind == "status":
                answer = fault.body if fault.body is not None else {"message": f"scripted {fault.status}", "code": 0}
                return self._answer(seen, fault.status, answer, fault.headers)
            if not parts.path.startswith(BASE_PATH):
                return self._answer(seen, 404, {"message": "404: Not Found", "code": 0})
            if creates and server.create_delay:
                with server.lock:
                    server.holding += 1
                try:
                    if not self._wait(server.create_delay):
                        self.close_connection = True  # the client is gone before the message was made
                        return
                finally:
                    with server.lock:
                        server.holding -= 1
            with server.lock:
                status, answer, headers = _route(server, method, path, seen)
                if status is not None and fault and fault.kind == "drop_after_create":
                    status = None
                if status is not None and fault and fault.kind == "status_after_create":
                    status, answer, headers = fault.status, fault.body or {"message": "500: Internal Server Error",
                                                                           "code": 0}, fault.headers
            if latency:
                server.stopping.wait(latency)  # made (a create), answered only now
            if status is None:
                self.close_connection = True
                return
            if fault and fault.kind == "hang_after_create":
                server.stopping.wait(fault.seconds)
            if creates and server.answer_delay:
                with server.lock:
                    server.answering += 1
                try:
                    server.stopping.wait(server.answer_delay)
                finally:
                    with server.lock:
                        server.answering -= 1
            self._answer(seen, status, answer, headers)
            made = server.messages.get(str((answer or {}).get("id"))) if creates and status == 200 else None
            if made is not None and seen.status == 200:
                made.answered = True

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


def _too_many(headers: dict) -> tuple[int, dict, dict]:
    wait = float(headers["X-RateLimit-Reset-After"])
    return 429, {"message": "You are being rate limited.", "retry_after": wait, "global": False}, {
        **headers, "Retry-After": str(max(1, round(wait))), "X-RateLimit-Scope": "user"}


def _route(server: DiscordServer, method: str, path: str, seen: Seen):
    """(status, body, headers) for one request; status None: drop the connection after acting."""
    body = seen.body if isinstance(seen.body, dict) else {}
    q = {k: v[-1] for k, v in seen.query.items()}
    m = re.fullmatch(r"/webhooks/(\d+)/([^/]+)(?:/messages/(\d+))?", path)
    if m:
        if m.group(1) != server.webhook_id:
            return (*_err(404, 10015, "Unknown Webhook"), {})
        if m.group(2) != server.webhook_token:
            return (*_err(401, 50027, "Invalid Webhook Token"), {})
        ok, headers = server._bucket(f"webhook:{m.group(1)}")
        if not ok:
            return _too_many(headers)
        if m.group(3):
            return (*_webhook_message(server, method, m.group(3), q.get("thread_id"), body), headers)
        if method == "POST":
            status, answer = _execute(server, body, q)
            return status, answer, headers
        if method == "GET":  # Get Webhook with Token
            return 200, {"id": server.webhook_id, "type": 1, "channel_id": server.webhook_channel,
                         "guild_id": "1100000000000000001", "name": "paperbot", "avatar": None,
                         "token": server.webhook_token, "application_id": None}, headers
    if path == "/users/@me" or path.startswith("/channels/"):
        if seen.headers.get("Authorization") != f"Bot {server.bot_token}":
            return (*_err(401, 0, "401: Unauthorized"), {})
        if path == "/users/@me":
            return 200, {"id": server.bot_id, "username": "paperbot", "discriminator": "0000", "bot": True,
                         "avatar": None}, {}
        m = re.fullmatch(r"/channels/(\d+)(/messages(?:/(\d+)(/crosspost)?)?)?", path)
        if m and m.group(1) in server.channels:
            ok, headers = server._bucket(f"channel:{m.group(1)}")
            if not ok:
                return _too_many(headers)
            return (*_channel(server, method, m.group(1), m.group(3), bool(m.group(2)), bool(m.group(4)), body, q),
                    headers)
        if m:
            return (*_err(404, 10003, "Unknown Channel"), {})
    return (*_err(404, 0, f"404: Not Found ({method} {path})"), {})


def _invalid(body: dict) -> tuple[int, dict] | None:
    if errors := limit_errors(body):
        return _err(400, 50035, "Invalid Form Body", errors)
    if not (body.get("content") or body.get("embeds")):
        return _err(400, 50006, "Cannot send an empty message")
    return None


def _execute(server: DiscordServer, body: dict, q: dict) -> tuple[int, dict | None]:
    if bad := _invalid(body):
        return bad
    parent = server.webhook_channel
    thread, name = q.get("thread_id"), body.get("thread_name")
    forum = server.channels[parent]["type"] == FORUM
    if thread and server.channels.get(thread, {}).get("parent") != parent:
        return _err(404, 10003, "Unknown Channel")
    if name and not forum:
        return _err(400, 220003, "Webhooks can only create threads in forum channels")
    if forum and not (thread or name):
        return _err(400, 220001, "Webhooks posted to forum channels must have a thread_name or thread_id")
    msg = server._store(thread or parent, body, webhook_id=server.webhook_id, author_id=server.webhook_id)
    if name:  # a forum post: the thread's id is its first message's
        server.channels[msg.id] = {"type": 11, "name": name, "parent": parent}
        msg.channel_id = msg.id
    return (200, msg.json()) if q.get("wait") in ("1", "true", "True") else (204, None)


def _webhook_message(server: DiscordServer, method: str, mid: str, thread: str | None, body: dict):
    msg = server.messages.get(mid)
    if msg is None or msg.webhook_id != server.webhook_id or msg.channel_id != (thread or server.webhook_channel):
        return _err(404, 10008, "Unknown Message")
    if method == "PATCH":
        return _edit(msg, body)
    return 200, msg.json()


def _edit(msg: Message, body: dict) -> tuple[int, dict]:
    merged = {"content": body.get("content", msg.content), "embeds": body.get("embeds", msg.embeds)}
    if bad := _invalid(merged):
        return bad
    msg.content, msg.embeds = merged["content"] or "", merged["embeds"] or []
    msg.allowed_mentions = body.get("allowed_mentions", msg.allowed_mentions)
    msg.pings = pings(msg.content, msg.allowed_mentions)
    msg.edits += 1
    return 200, msg.json()


def _channel(server: DiscordServer, method: str, cid: str, mid: str | None, messages: bool, crosspost: bool,
             body: dict, q: dict) -> tuple[int, dict | list]:
    channel = server.channels[cid]
    if not messages:
        return 200, {"id": cid, "type": channel["type"], "name": channel.get("name", "")}
    if mid is None and method == "GET":
        after, limit = int(q.get("after") or 0), int(q.get("limit") or 50)
        mine = [m.json() for m in reversed(server.messages.values()) if m.channel_id == cid and int(m.id) > after]
        return 200, mine[:limit]
    if mid is None:
        if channel["type"] == FORUM:
            return _err(400, 50008, "Cannot send messages in a non-text channel")
        if bad := _invalid(body):
            return bad
        if body.get("enforce_nonce") and body.get("nonce"):
            now = time.monotonic()
            same = [m for m in server.messages.values() if m.nonce == body["nonce"] and m.author_id == server.bot_id
                    and now - m.made < server.nonce_window]
            if same:
                return 200, same[0].json()
        return 200, server._store(cid, body, author_id=server.bot_id, nonce=body.get("nonce")).json()
    msg = server.messages.get(mid)
    if msg is None or msg.channel_id != cid:
        return _err(404, 10008, "Unknown Message")
    if crosspost:
        if channel["type"] != NEWS:
            return _err(400, 50024, "Cannot execute action on this channel type")
        if msg.crossposted:
            return _err(400, 40033, "This message has already been crossposted.")
        msg.crossposted = True
        return 200, msg.json()
    if method == "PATCH":
        if msg.author_id != server.bot_id:
            return _err(403, 50005, "Cannot edit a message authored by another user")
        return _edit(msg, body)
    return 200, msg.json()
