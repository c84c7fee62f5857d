"""A local server on 127.0.0.1 that speaks the XRPC calls paperbot makes on Bluesky, in the documented shapes,
for tests driven by paperbot's real client (issue #30).

- `com.atproto.server.createSession` (`{identifier, password}` → `{did, handle, accessJwt, refreshJwt, active}`;
  each JWT's payload has `exp`; a wrong password is 401 AuthenticationRequired) and `refreshSession` (the
  refresh JWT as bearer: a new pair, the old refresh token revoked); an expired access token is answered
  400 ExpiredToken, an unknown one 401 InvalidToken;
- `app.bsky.actor.getProfile`;
- `com.atproto.repo.createRecord` with the reference PDS's checks of an app.bsky.feed.post: the rkey a TID, the
  text within 300 graphemes (counted with the `grapheme` library, not paperbot's `regex`) and 3000 bytes,
  every facet a byte range inside the UTF-8 text on character boundaries with a link (an http(s) URI) or tag
  feature, `langs`, `createdAt`, a reply's `root` and `parent` strong refs naming stored posts with their cids;
  an rkey already taken is a 500 (what the reference PDS answers), never a second record;
- `com.atproto.repo.getRecord` (400 RecordNotFound when absent);
- errors as `{"error", "message"}`; `ratelimit-limit/-remaining/-reset/-policy` on every answer, writes counted
  in points (a create costs 3) against an hourly budget, 429 RateLimitExceeded when spent;
- scripted faults for the next matching request (`fail_next`): a status (a 429 with its reset, a 502...),
  `drop` (read the request, close without answering), `drop_after_create` (store the record, then close),
  `status_after_create` (store it, then answer an error anyway) and `hang`;
- `chaos(faults)` (tests/chaos_support.py's schedule, as tests/x_server.py does it);
- a record of every request (`requests`) and every post stored (`posts`, in order).
"""

from __future__ import annotations

import base64
import hashlib
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

import grapheme
from chaos_support import STALL, Faults
from local_api import LocalAPI

CREATE = "POST com.atproto.repo.createRecord"
GET_RECORD = "GET com.atproto.repo.getRecord"
SESSION = "POST com.atproto.server.createSession"
REFRESH = "POST com.atproto.server.refreshSession"
POST_NSID = "app.bsky.feed.post"
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def jwt(payload: dict) -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'typ': 'at+jwt', 'alg': 'HS256'})}.{b64(payload)}.c2lnbmF0dXJl"


@dataclass
class Seen:
    method: str
    nsid: str
    query: dict[str, list[str]]
    body: object
    headers: dict[str, str]
    status: int | None = None  # None: dropped without an answer
    at: float = 0.0


@dataclass
class StoredPost:
    uri: str
    cid: str
    rkey: str
    record: dict

    @property
    def text(self) -> str:
        return self.record["text"]

    @property
    def parent(self) -> str | None:
        return ((self.record.get("reply") or {}).get("parent") or {}).get("uri")

    @property
    def root(self) -> str | None:
        return ((self.record.get("reply") or {}).get("root") or {}).get("uri")

    def facet_texts(self) -> list[tuple[str, dict]]:
        data = self.text.encode("utf-8")
        return [(data[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode("utf-8"), f["features"][0])
                for f in self.record.get("facets") or []]


@dataclass
class Fault:
    route: str  # "POST com.atproto.repo.createRecord" (a prefix of "METHOD nsid")
    kind: str  # status | drop | drop_after_create | status_after_create | hang | stall
    status: int = 502
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    after: int = 0


class BlueskyServer(LocalAPI):
    """Start with `with BlueskyServer(handle, password) as b:`; point `[bluesky] service` at `b.service`."""

    def __init__(self, handle: str, password: str, *, did: str = "did:plc:paperbottest0000000000aa",
                 access_ttl: float = 7200.0, points_per_hour: int = 5000):
        self.handle, self.password, self.did = handle, password, did
        self.access_ttl, self.points_per_hour = access_ttl, points_per_hour
        self.requests: list[Seen] = []
        self.posts: dict[str, StoredPost] = {}  # uri -> post, in creation order
        self.faults: list[Fault] = []
        self.access: dict[str, float] = {}  # access token -> exp
        self.refresh_tokens: set[str] = set()
        self.sessions_created = 0
        self.refreshed = 0
        self._window: tuple[float, int] = (0.0, 0)
        self._n = 0
        self.plan: Faults | None = None
        self.injected: Counter[str] = Counter()
        self.resets: list[tuple[float, float]] = []
        self.taken: list[str] = []  # rkeys a create tried again (answered 500: already there)
        self.lock = threading.Lock()
        self._serve(self._handler())

    @property
    def service(self) -> str:
        return self.origin

    # -- scripting ----------------------------------------------------------------------------------------
    def fail_next(self, route: str, kind: str = "status", *, after: int = 0, **kw) -> None:
        with self.lock:
            self.faults.append(Fault(route, kind, after=after, **kw))

    def chaos(self, faults: Faults | None) -> None:
        with self.lock:
            if self.plan is not None and faults is None:
                self.plan.stop()
            self.plan = faults

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (as if hours went by)."""
        with self.lock:
            self.access = dict.fromkeys(self.access, 0.0)

    def ours(self) -> list[StoredPost]:
        with self.lock:
            return list(self.posts.values())

    def thread(self, head_uri: str) -> list[StoredPost]:
        """The thread from `head_uri` following replies; AssertionError if it branches or a root is wrong."""
        with self.lock:
            out = [self.posts[head_uri]]
            while True:
                replies = [p for p in self.posts.values() if p.parent == out[-1].uri]
                assert len(replies) <= 1, f"{out[-1].uri} has {len(replies)} replies: the thread branches"
                if not replies:
                    return out
                assert replies[0].root == head_uri, "a reply's root is not the thread's head"
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
            self.faults.remove(f)
            return f
        return None

    def _chaos_fault(self, route: str) -> tuple[Fault | None, float]:
        d = self.plan.next("create" if route == CREATE else "read") if self.plan else None
        if d is None:
            return None, 0.0
        if d.fault:
            self.injected[d.fault] += 1
        if d.fault == "429":
            return Fault(route, "status", status=429, body=_err("RateLimitExceeded", "Rate Limit Exceeded"),
                         headers=_limit_headers(self.points_per_hour, 0, time.time() + d.wait)), 0.0
        if d.fault in ("5xx", "stored_5xx"):
            return Fault(route, "status" if d.fault == "5xx" else "status_after_create", status=502), d.latency
        return (Fault(route, d.fault, seconds=STALL) if d.fault else None), d.latency

    def _tokens(self) -> dict:
        now = time.time()
        self._n += 1
        access = jwt({"scope": "com.atproto.appPass", "sub": self.did, "iat": int(now),
                      "exp": int(now + self.access_ttl), "aud": "did:web:pds.test", "n": self._n})
        refresh = jwt({"scope": "com.atproto.refresh", "sub": self.did, "iat": int(now),
                       "exp": int(now + 60 * 86400), "jti": f"r{self._n}", "aud": "did:web:pds.test"})
        self.access[access] = now + self.access_ttl
        self.refresh_tokens.add(refresh)
        return {"did": self.did, "handle": self.handle, "accessJwt": access, "refreshJwt": refresh,
                "active": True, "email": "bot@paperbot.test"}

    def _auth(self, headers: dict[str, str]) -> tuple[int, dict] | None:
        """None when the bearer is a valid access token, else the error answer."""
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.access:
            return 401, _err("InvalidToken", "Bad token")
        if self.access[token] <= time.time():
            return 400, _err("ExpiredToken", "Token has expired")
        return None

    def _points(self, cost: int) -> tuple[bool, dict[str, str]]:
        now = time.time()
        start, used = self._window
        if now >= start + 3600:
            start, used = now, 0
        ok = used + cost <= self.points_per_hour
        used += cost if ok else 0
        self._window = (start, used)
        return ok, _limit_headers(self.points_per_hour, self.points_per_hour - used, start + 3600)

    def _check_post(self, rec: object) -> str | None:
        """Why the reference PDS would refuse `rec` as an app.bsky.feed.post, or None."""
        if not isinstance(rec, dict) or rec.get("$type") != POST_NSID:
            return "Invalid app.bsky.feed.post record: Record/$type must be app.bsky.feed.post"
        text = rec.get("text")
        if not isinstance(text, str):
            return "Record/text must be a string"
        if grapheme.length(text) > 300:
            return f"Record/text must not be longer than 300 graphemes ({grapheme.length(text)})"
        data = text.encode("utf-8")
        if len(data) > 3000:
            return "Record/text must not be longer than 3000 characters"
        if not isinstance(rec.get("createdAt"), str) or not re.match(r"^\d{4}-\d\d-\d\dT", rec["createdAt"]):
            return "Record/createdAt must be a valid datetime"
        langs = rec.get("langs", [])
        if not isinstance(langs, list) or len(langs) > 3 or not all(isinstance(x, str) for x in langs):
            return "Record/langs must be an array of at most 3 language tags"
        for i, f in enumerate(rec.get("facets") or []):
            idx = f.get("index") or {}
            s, e = idx.get("byteStart"), idx.get("byteEnd")
            if not (isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(data)):
                return f"Record/facets/{i}/index is out of range of the text's bytes"
            try:
                data[s:e].decode("utf-8")
            except UnicodeDecodeError:
                return f"Record/facets/{i}/index splits a UTF-8 character"
            feats = f.get("features") or []
            if not feats:
                return f"Record/facets/{i}/features must not be empty"
            for feat in feats:
                t = feat.get("$type")
                if t == "app.bsky.richtext.facet#link":
                    if not re.match(r"^https?://\S+$", str(feat.get("uri"))):
                        return f"Record/facets/{i}/features/0/uri must be a valid uri"
                elif t == "app.bsky.richtext.facet#tag":
                    tag = feat.get("tag")
                    if not isinstance(tag, str) or not tag or len(tag) > 640 or tag.startswith("#"):
                        return f"Record/facets/{i}/features/0/tag must be a tag without #"
                else:
                    return f"Record/facets/{i}/features/0 has an unknown $type {t!r}"
        reply = rec.get("reply")
        if reply is not None:
            for part in ("root", "parent"):
                ref = (reply or {}).get(part) or {}
                p = self.posts.get(ref.get("uri"))
                if p is None or p.cid != ref.get("cid"):
                    return f"Record/reply/{part} must be a strong ref to an existing post"
        return None

    def _create(self, body: object, headers: dict[str, str]) -> tuple[int, dict, dict]:
        bad = self._auth(headers)
        if bad:
            return bad[0], bad[1], {}
        ok, limits = self._points(3)
        if not ok:
            return 429, _err("RateLimitExceeded", "Rate Limit Exceeded"), limits
        b = body if isinstance(body, dict) else {}
        if b.get("repo") not in (self.did, self.handle):
            return 400, _err("InvalidRequest", "Input/repo must be the session's repository"), limits
        if b.get("collection") != POST_NSID:
            return 400, _err("InvalidRequest", "Input/collection must be app.bsky.feed.post here"), limits
        rkey = b.get("rkey")
        if not isinstance(rkey, str) or not _TID.match(rkey):
            return 400, _err("InvalidRequest", "Input/rkey must be a valid TID"), limits
        why = self._check_post(b.get("record"))
        if why:
            return 400, _err("InvalidRequest", f"Invalid app.bsky.feed.post record: {why}"), limits
        uri = f"at://{self.did}/{POST_NSID}/{rkey}"
        if uri in self.posts:
            self.taken.append(rkey)
            return 500, _err("InternalServerError", "Internal Server Error"), limits
        digest = hashlib.sha256(json.dumps(b["record"], sort_keys=True).encode()).digest()
        cid = "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")
        self.posts[uri] = StoredPost(uri, cid, rkey, b["record"])
        return 200, {"uri": uri, "cid": cid, "commit": {"cid": "bafyreicommit", "rev": rkey},
                     "validationStatus": "valid"}, limits

    def _route(self, method: str, nsid: str, seen: Seen) -> tuple[int, dict, dict]:
        route = f"{method} {nsid}"
        if route == SESSION:
            body = seen.body if isinstance(seen.body, dict) else {}
            if body.get("identifier") not in (self.handle, self.did) or body.get("password") != self.password:
                return 401, _err("AuthenticationRequired", "Invalid identifier or password"), {}
            self.sessions_created += 1
            return 200, self._tokens(), {}
        if route == REFRESH:
            token = (seen.headers.get("Authorization") or "").removeprefix("Bearer ")
            if token not in self.refresh_tokens:
                return 400, _err("ExpiredToken", "Token has been revoked"), {}
            self.refresh_tokens.discard(token)
            self.refreshed += 1
            return 200, self._tokens(), {}
        if route == CREATE:
            return self._create(seen.body, seen.headers)
        bad = self._auth(seen.headers)
        if bad:
            return bad[0], bad[1], {}
        q = {k: v[0] for k, v in seen.query.items()}
        if route == GET_RECORD:
            uri = f"at://{self.did}/{q.get('collection')}/{q.get('rkey')}"
            if q.get("repo") not in (self.did, self.handle) or uri not in self.posts:
                return 400, _err("RecordNotFound", f"Could not locate record: {uri}"), {}
            p = self.posts[uri]
            return 200, {"uri": p.uri, "cid": p.cid, "value": p.record}, {}
        if route == "GET app.bsky.actor.getProfile":
            if q.get("actor") not in (self.did, self.handle):
                return 400, _err("InvalidRequest", "Profile not found"), {}
            return 200, {"did": self.did, "handle": self.handle, "displayName": "paperbot test",
                         "postsCount": len(self.posts)}, {}
        return 501, _err("MethodNotImplemented", f"Method Not Implemented: {nsid}"), {}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self, seen: Seen, status: int, body: dict, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                if status == 429 and headers.get("ratelimit-reset"):
                    with server.lock:
                        server.resets.append((time.time(), float(headers["ratelimit-reset"])))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True
                    return
                seen.status = status

            def _hung_up(self) -> bool:
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
                nsid = parts.path.removeprefix("/xrpc/")
                route = f"{method} {nsid}"
                with server.lock:
                    seen = Seen(method, nsid, parse_qs(parts.query), body, dict(self.headers), at=time.time())
                    server.requests.append(seen)
                    fault, latency = server._fault(route), 0.0
                    if fault is None and route not in (SESSION, REFRESH):
                        fault, latency = server._chaos_fault(route)
                if fault and fault.kind == "hang":
                    server.stopping.wait(fault.seconds)
                    fault = None
                if fault and fault.kind == "stall":
                    server.stopping.wait(fault.seconds)
                    if self._hung_up():
                        self.close_connection = True
                        return
                    fault = None
                if fault and fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault and fault.kind == "status":
                    body = fault.body or _err("InternalServerError" if fault.status >= 500 else "InvalidRequest",
                                              f"scripted {fault.status}")
                    return self._answer(seen, fault.status, body, fault.headers)
                with server.lock:
                    status, answer, headers = self._route(method, nsid, seen)
                if latency:
                    server.stopping.wait(latency)
                if fault and fault.kind == "drop_after_create":
                    self.close_connection = True
                    return
                if fault and fault.kind == "status_after_create":
                    status, answer, headers = fault.status, fault.body or _err(
                        "InternalServerError", "scripted after create"), fault.headers
                self._answer(seen, status, answer, headers)

            def _route(self, method: str, nsid: str, seen: Seen):
                return server._route(method, nsid, seen)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler


def _err(error: str, message: str) -> dict:
    return {"error": error, "message": message}


def _limit_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"ratelimit-limit": str(limit), "ratelimit-remaining": str(max(remaining, 0)),
            "ratelimit-reset": str(int(reset)), "ratelimit-policy": f"{limit};w=3600"}
