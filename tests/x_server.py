"""A local server on 127.0.0.1 that speaks the part of the X API v2 paperbot uses, for tests driven by the
real tweepy client (issue #11).

- `POST /2/tweets` (`{"text", "reply": {"in_reply_to_tweet_id"}}` → 201 `{"data": {"id", "text"}}`), with
  X's refusals: a text over 280 weighted characters (400), a duplicate of one of the account's posts (403
  "duplicate content"), a reply to a post that does not exist (403) or to another account's post (403, the
  February 2026 rule);
- `GET /2/users/me` and `GET /2/users/:id/tweets` (newest first; `referenced_tweets`, `conversation_id`,
  `entities` and `in_reply_to_user_id` only when asked for with `tweet.fields`; the text as X returns it:
  links as t.co, `&`, `<`, `>` escaped);
- an OAuth 1.0a HMAC-SHA1 check of every request against the URL tweepy signed (`https://api.twitter.com`
  + path; `https://api.x.com` is accepted too), the consumer key and token, the timestamp and a fresh nonce:
  401 otherwise;
- `x-rate-limit-limit/-remaining/-reset` on every answer (a window per endpoint, 429 when spent) and
  `x-user-limit-24hour-*` on posts when a daily limit is set;
- scripted faults for the next matching request, or the one after `after` more (`fail_next`): a status
  (429 with a reset, 503, 403...), `drop` (read the request, close without answering), `drop_after_create`
  (make the post, then close), `status_after_create` (make the post, then answer the status anyway: issue #21)
  and `hang` (answer only after a delay); and `refuse`, a status for every
  matching request until `allow` (a timeline the app may not read);
- a record of every request (`requests`) and of every post made (`posts`), with the @mentions and URLs X
  would see in it (found with twitter-text's own rules, independently of paperbot's code);
- `chaos(faults)` (issues #15, #22): the requests no fault is scripted for fail as tests/chaos_support.py's
  schedule says (a pure function of the seed and the request's number): a 429 with a reset a few seconds ahead,
  a 503 before the post is made or after (`stored_5xx`), a stall past the client's timeout (a request whose
  client hung up meanwhile is dropped unmade), a dropped connection before or after the post is made; and each
  takes the schedule's latency (a post is made, then answered that much later). Faults are counted by kind in
  `injected`; every reset a 429 announced is kept (`resets`), and `early()` lists the requests that arrived
  before one of them. `duplicates` lists the texts refused as duplicate content (a blind resend shows there).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import select
import socket
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from chaos_support import STALL, Faults
from local_api import LocalAPI
from oauthlib.oauth1.rfc5849 import signature, utils

from bot.channels.x.text import twitter_text  # the twitter-text-parser module (loaded where setuptools lacks it)

SIGNED_HOSTS = ("https://api.twitter.com", "https://api.x.com")
WINDOW = 15 * 60
DAY = 24 * 3600

# twitter-text's mention rule (validMentionOrList + endMentionMatch), written out here so the server judges
# paperbot's texts by X's rule and not by paperbot's own code.
_LATIN_ACCENTS = ("\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b"
                  "\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff")
_MENTION = re.compile(r"(^|[^a-zA-Z0-9_!#$%&*@＠]|(?:^|[^a-zA-Z0-9_+~.-])(?:rt|RT|rT|Rt):?)"
                      r"([@＠])([a-zA-Z0-9_]{1,20})(/[a-zA-Z][a-zA-Z0-9_-]{0,24})?")
_END_MENTION = re.compile(rf"^(?:[@＠]|[{_LATIN_ACCENTS}]|://)")


def find_mentions(text: str) -> list[str]:
    """The screen names X would link in `text` (twitter-text's extractMentionsOrListsWithIndices)."""
    text = unicodedata.normalize("NFC", text)
    names, pos = [], 0
    while m := _MENTION.search(text, pos):
        if not _END_MENTION.match(text[m.end():]):
            names.append(m.group(3))
        pos = m.end() if m.end() > m.start() else m.start() + 1
    return names


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: object
    headers: dict[str, str]
    signature_ok: bool
    signed_for: str | None  # the host whose URL the signature matched
    status: int | None = None  # None: dropped without an answer
    at: float = 0.0


@dataclass
class StoredPost:
    id: str
    text: str
    author_id: str
    in_reply_to: str | None
    conversation_id: str
    mentions: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


@dataclass
class Fault:
    route: str  # "POST /2/tweets", "GET /2/users/" (prefix of "METHOD path")
    kind: str  # status | drop | drop_after_create | status_after_create | hang | stall (chaos: gone, never made)
    status: int = 503
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    after: int = 0  # matching requests to let through first
    lasting: bool = False  # every matching request, until `allow`; not only the next one


class XServer(LocalAPI):
    """Start with `with XServer(creds...) as x:`; point the client at `x.api_base`."""

    def __init__(self, consumer_key: str, consumer_secret: str, access_token: str, access_token_secret: str, *,
                 user_id: str = "1700000000000000001", username: str = "paperbot_test",
                 post_limit: int = 100, read_limit: int = 900, daily_limit: int | None = None,
                 page_size: int = 100, clock: Callable[[], float] = time.time):
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.access_token, self.access_token_secret = access_token, access_token_secret
        self.user_id, self.username = user_id, username
        self.limits = {"POST /2/tweets": post_limit, "GET /2/users/me": read_limit, "GET /2/users/tweets": read_limit}
        self.daily_limit = daily_limit
        self.page_size = page_size  # the most posts one timeline page holds (X: max_results, at most 100)
        self.clock = clock
        self.requests: list[Seen] = []
        self.posts: dict[str, StoredPost] = {}  # in creation order
        self.faults: list[Fault] = []
        self._windows: dict[str, tuple[float, int]] = {}  # endpoint -> (window start, used)
        self._daily: list[float] = []  # times of posts in the last 24 h
        self._nonces: set[str] = set()
        self._next_id = 1790000000000000000
        self.plan: Faults | None = None  # chaos: the seed's fault schedule
        self.injected: Counter[str] = Counter()  # chaos faults injected, by kind
        self.duplicates: list[str] = []  # texts refused as duplicate content
        self.resets: list[tuple[float, float]] = []  # (when a 429 was answered, the reset it announced)
        self.lock = threading.Lock()
        self._serve(self._handler())

    # -- life cycle ---------------------------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        return self.origin

    # -- scripting ----------------------------------------------------------------------------------------
    def fail_next(self, route: str, kind: str = "status", *, after: int = 0, **kw) -> None:
        """The next request whose "METHOD path" starts with `route` gets this fault instead of its answer; with
        `after`, the one after `after` more such requests (a 429 "after post 4": `after=4`)."""
        with self.lock:
            self.faults.append(Fault(route, kind, after=after, **kw))

    def refuse(self, route: str, status: int = 403, **kw) -> None:
        """Answer every request whose "METHOD path" starts with `route` with `status` until `allow(route)`."""
        with self.lock:
            self.faults.append(Fault(route, "status", status=status, lasting=True, **kw))

    def chaos(self, faults: Faults | None) -> None:
        """Fail the requests no fault is scripted for as `faults` schedules (None: no more faults)."""
        with self.lock:
            if self.plan is not None and faults is None:
                self.plan.stop()
            self.plan = faults

    def _chaos_fault(self, route: str) -> tuple[Fault | None, float]:
        """The schedule's fault for this request and its latency (under the lock)."""
        d = self.plan.next("create" if route == "POST /2/tweets" else "read") if self.plan else None
        if d is None:
            return None, 0.0
        if d.fault:
            self.injected[d.fault] += 1
        if d.fault == "429":
            reset = str(int(time.time() + d.wait))
            return Fault(route, "status", status=429, body=_too_many(), headers={
                "x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}), 0.0
        if d.fault in ("5xx", "stored_5xx"):  # before the post is made, or after
            return Fault(route, "status" if d.fault == "5xx" else "status_after_create", status=503), d.latency
        return (Fault(route, d.fault, seconds=STALL) if d.fault else None), d.latency

    def early(self) -> list[Seen]:
        """The requests that reached the server after a 429 and before the reset it announced."""
        with self.lock:
            return [r for r in self.requests if any(at < r.at < reset for at, reset in self.resets)]

    def allow(self, route: str) -> None:
        with self.lock:
            self.faults = [f for f in self.faults if not (f.lasting and f.route == route)]

    def add_foreign_post(self, text: str, author_id: str = "42") -> str:
        """A post by another account (for the rule that refuses replies to it)."""
        with self.lock:
            return self._store(text, author_id, None).id

    def ours(self) -> list[StoredPost]:
        """The account's posts, oldest first."""
        with self.lock:
            return [p for p in self.posts.values() if p.author_id == self.user_id]

    def thread(self, head_id: str) -> list[StoredPost]:
        """The thread from `head_id` as a reader sees it, following replies; AssertionError if it branches."""
        with self.lock:
            out = [self.posts[head_id]]
            while True:
                replies = [p for p in self.posts.values() if p.in_reply_to == out[-1].id]
                assert len(replies) <= 1, f"post {out[-1].id} has {len(replies)} replies: the thread branches"
                if not replies:
                    return out
                out.append(replies[0])

    # -- internals ----------------------------------------------------------------------------------------
    def _fault(self, route: str) -> Fault | None:
        """The fault for this request, if one is due (a one-off fault is used up; a lasting one stays)."""
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

    def _store(self, text: str, author_id: str, reply_to: str | None) -> StoredPost:
        self._next_id += 1
        pid = str(self._next_id)
        conv = self.posts[reply_to].conversation_id if reply_to in self.posts else pid
        post = StoredPost(pid, text, author_id, reply_to, conv, find_mentions(text), twitter_text.extract_urls(text))
        self.posts[pid] = post
        return post

    def check_signature(self, method: str, path: str, query: str, auth: str | None) -> str | None:
        """The host the OAuth 1.0a signature was made for, or None when it does not verify."""
        if not auth or not auth.startswith("OAuth "):
            return None
        try:
            oauth = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(auth)}
        except (ValueError, IndexError):
            return None
        if (oauth.get("oauth_consumer_key") != self.consumer_key or oauth.get("oauth_token") != self.access_token
                or oauth.get("oauth_signature_method") != "HMAC-SHA1" or oauth.get("oauth_version", "1.0") != "1.0"):
            return None
        try:
            if abs(int(oauth.get("oauth_timestamp", "0")) - time.time()) > 300:
                return None
        except ValueError:
            return None
        nonce = oauth.get("oauth_nonce", "")
        if not nonce or nonce in self._nonces:
            return None
        params = signature.collect_parameters(uri_query=query, headers={"Authorization": auth},
                                              exclude_oauth_signature=True)
        normalized = signature.normalize_parameters(params)
        for host in SIGNED_HOSTS:
            base = signature.signature_base_string(method, signature.base_string_uri(host + path), normalized)
            key = f"{utils.escape(self.consumer_secret)}&{utils.escape(self.access_token_secret)}"  # RFC 5849 3.4.2
            expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()
            if hmac.compare_digest(expected, oauth.get("oauth_signature", "")):
                self._nonces.add(nonce)
                return host
        return None

    def _rate(self, endpoint: str) -> tuple[bool, dict[str, str]]:
        """Count one request against `endpoint`'s window; (allowed, the x-rate-limit-* headers)."""
        now = self.clock()
        limit = self.limits[endpoint]
        start, used = self._windows.get(endpoint, (now, 0))
        if now >= start + WINDOW:
            start, used = now, 0
        allowed = used < limit
        used += allowed
        self._windows[endpoint] = (start, used)
        headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(max(limit - used, 0)),
                   "x-rate-limit-reset": str(int(start + WINDOW))}
        return allowed, headers

    def _daily_headers(self) -> tuple[bool, dict[str, str]]:
        if self.daily_limit is None:
            return True, {}
        now = self.clock()
        self._daily = [t for t in self._daily if t > now - DAY]
        allowed = len(self._daily) < self.daily_limit
        remaining = self.daily_limit - len(self._daily) - allowed
        reset = (self._daily[0] if self._daily else now) + DAY
        return allowed, {"x-user-limit-24hour-limit": str(self.daily_limit),
                         "x-user-limit-24hour-remaining": str(max(remaining, 0)),
                         "x-user-limit-24hour-reset": str(int(reset))}

    def _timeline_item(self, post: StoredPost, fields: set[str]) -> dict:
        text, url_entities = post.text, []
        for entity in reversed(twitter_text.extract_urls_with_indices(text)):
            start, end = entity["indices"]
            tco = "https://t.co/" + hashlib.sha1(entity["url"].encode()).hexdigest()[:10]
            text = text[:start] + tco + text[end:]
            url_entities.append({"url": tco, "expanded_url": entity["url"], "display_url": entity["url"][:30]})
        item: dict = {"id": post.id, "text": html.escape(text, quote=False),
                      "edit_history_tweet_ids": [post.id]}
        if "conversation_id" in fields:
            item["conversation_id"] = post.conversation_id
        if "referenced_tweets" in fields and post.in_reply_to:
            item["referenced_tweets"] = [{"type": "replied_to", "id": post.in_reply_to}]
        if "in_reply_to_user_id" in fields and post.in_reply_to in self.posts:
            item["in_reply_to_user_id"] = self.posts[post.in_reply_to].author_id
        if "entities" in fields and url_entities:
            item["entities"] = {"urls": url_entities[::-1]}
        return item

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()  # headers and body go out in two writes: without this, 40 ms (delayed ACK) each
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self, seen: Seen, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if status == 429 and (headers or {}).get("x-rate-limit-reset"):
                    with server.lock:
                        server.resets.append((time.time(), float(headers["x-rate-limit-reset"])))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (its timeout): it never sees this answer
                    self.close_connection = True
                    return
                seen.status = status

            def _drop(self) -> None:
                self.close_connection = True  # nothing written: the client sees the connection closed

            def _hung_up(self) -> bool:
                """The client closed its end (its timeout, or a killed process)."""
                try:
                    ready, _, _ = select.select([self.connection], [], [], 0)
                    return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with server.lock:
                    host = server.check_signature(method, parts.path, parts.query, self.headers.get("Authorization"))
                    seen = Seen(method, parts.path, parse_qs(parts.query), body, dict(self.headers),
                                host is not None, host, at=time.time())
                    server.requests.append(seen)
                    route = f"{method} {parts.path}"
                    fault, latency = server._fault(route), 0.0
                    if fault is None:
                        fault, latency = server._chaos_fault(route)
                if fault and fault.kind == "hang":
                    server.stopping.wait(fault.seconds)
                    fault = None
                if fault and fault.kind == "stall":  # past the client's timeout; a client gone: never made
                    server.stopping.wait(fault.seconds)
                    if self._hung_up():
                        return self._drop()
                    fault = None
                if fault and fault.kind == "drop":
                    return self._drop()
                if fault and fault.kind == "status":
                    return self._answer(seen, fault.status, fault.body or {
                        "title": "Service Unavailable" if fault.status >= 500 else "Error", "status": fault.status,
                        "detail": f"scripted {fault.status}", "type": "about:blank"}, fault.headers)
                if host is None:
                    return self._answer(seen, 401, {"title": "Unauthorized", "type": "about:blank",
                                                    "status": 401, "detail": "Unauthorized"})
                with server.lock:
                    status, answer, headers = self._route(method, parts.path, seen, drop_after_create=bool(
                        fault and fault.kind == "drop_after_create"))
                if latency:
                    server.stopping.wait(latency)  # made (a create), answered only now
                if status is None:
                    return self._drop()
                if fault and fault.kind == "status_after_create":
                    status, answer, headers = fault.status, fault.body or {
                        "title": "Service Unavailable", "status": fault.status, "detail": "scripted after create",
                        "type": "about:blank"}, fault.headers
                self._answer(seen, status, answer, headers)

            def _route(self, method: str, path: str, seen: Seen, drop_after_create: bool):
                if method == "POST" and path == "/2/tweets":
                    return self._create(seen, drop_after_create)
                if method == "GET" and path == "/2/users/me":
                    ok, headers = server._rate("GET /2/users/me")
                    if not ok:
                        return 429, _too_many(), headers
                    return 200, {"data": {"id": server.user_id, "name": "paperbot test",
                                          "username": server.username}}, headers
                m = re.fullmatch(r"/2/users/(\d+)/tweets", path)
                if method == "GET" and m:
                    ok, headers = server._rate("GET /2/users/tweets")
                    if not ok:
                        return 429, _too_many(), headers
                    n = (seen.query.get("max_results") or ["10"])[0]
                    if not n.isdigit() or not 5 <= int(n) <= 100:
                        return 400, _invalid("max_results", f"max_results {n} is not between 5 and 100"), headers
                    return 200, self._timeline(m.group(1), seen.query), headers
                return 404, {"title": "Not Found Error", "status": 404, "type": "about:blank",
                             "detail": f"no route {method} {path}"}, {}

            def _create(self, seen: Seen, drop_after_create: bool):
                ok, headers = server._rate("POST /2/tweets")
                ok_daily, daily = server._daily_headers()
                headers.update(daily)
                if not (ok and ok_daily):
                    return 429, _too_many(), headers
                body = seen.body if isinstance(seen.body, dict) else {}
                text = body.get("text")
                if not isinstance(text, str) or not text.strip():
                    return 400, _invalid("text", "The `text` field is required"), headers
                parsed = twitter_text.parse_tweet(text)
                if not parsed.valid:
                    return 400, _invalid("text", f"Tweet text is {parsed.weightedLength} weighted characters: "
                                                 "too long or invalid"), headers
                reply_to = str((body.get("reply") or {}).get("in_reply_to_tweet_id") or "") or None
                if reply_to and reply_to not in server.posts:
                    return 403, _forbidden("You attempted to reply to a Tweet that is deleted or not visible to "
                                           "you."), headers
                if reply_to and server.posts[reply_to].author_id != server.user_id:
                    return 403, _forbidden("Reply to this conversation is not allowed because you have not been "
                                           "mentioned or otherwise engaged by the author of the post you are "
                                           "replying to."), headers
                normalized = unicodedata.normalize("NFC", text).strip()
                if any(p.author_id == server.user_id and unicodedata.normalize("NFC", p.text).strip() == normalized
                       for p in server.posts.values()):
                    server.duplicates.append(text)
                    return 403, _forbidden("You are not allowed to create a Tweet with duplicate content."), headers
                post = server._store(text, server.user_id, reply_to)
                if server.daily_limit is not None:
                    server._daily.append(server.clock())
                    headers.update(server._daily_headers()[1])
                if drop_after_create:
                    return None, None, None
                return 201, {"data": {"id": post.id, "text": post.text, "edit_history_tweet_ids": [post.id]}}, headers

            def _timeline(self, user_id: str, query: dict[str, list[str]]) -> dict:
                fields = set(",".join(query.get("tweet.fields", [])).split(","))
                n = int((query.get("max_results") or ["10"])[0])
                ours = [p for p in reversed(list(server.posts.values())) if p.author_id == user_id]
                start = int((query.get("pagination_token") or ["0"])[0])
                page = ours[start:start + min(max(5, min(n, 100)), server.page_size)]
                meta: dict = {"result_count": len(page)}
                if page:
                    meta.update(newest_id=page[0].id, oldest_id=page[-1].id)
                if start + len(page) < len(ours):
                    meta["next_token"] = str(start + len(page))
                out: dict = {"meta": meta}
                if page:
                    out["data"] = [server._timeline_item(p, fields) for p in page]
                return out

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler


def _too_many() -> dict:
    return {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}


def _forbidden(detail: str) -> dict:
    return {"detail": detail, "type": "about:blank", "title": "Forbidden", "status": 403}


def _invalid(parameter: str, message: str) -> dict:
    return {"errors": [{"parameters": {parameter: []}, "message": message}], "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"}
