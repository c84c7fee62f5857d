"""The Bluesky channel: a week as a thread, the head post then one reply per paper, sent as an ordered chain.

Each unit is one post. Its ledger `ref` is `<place in the thread>:<record key>`: the record key (a TID made from
the planning time and a clock id, bot/channels/bluesky/text.py) is written into the ledger when the week is
planned, before anything is sent, so the post's URI is known in advance. The pipeline (bot/publish/chain.py)
sends the posts one at a time and gives each the URIs of the posts before it: every reply carries `root` (the
head) and `parent` (the post before) as strong refs. After any uncertain outcome, or a row found `sending`
after a kill, `getRecord` at the post's own record key decides: there, it went out (never sent twice); not
there, it is sent again at the same key (the server would refuse a second record there anyway).

Without PAPERBOT_BLUESKY_HANDLE and PAPERBOT_BLUESKY_APP_PASSWORD the channel is a trial: each post's exact
createRecord body goes to state/outbox/bluesky/<source>/<key>/NN.json, and the thread, readable, to thread.txt.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.channels.base import (
    ChannelDown,
    ChannelLimits,
    PermanentError,
    RateLimited,
    TransientError,
    Uncertain,
    Unit,
    write_file,
)
from bot.channels.bluesky import client as bc
from bot.channels.bluesky.account import Account, session_path
from bot.channels.bluesky.compose import ComposeError, Post, compose_thread, readable
from bot.channels.bluesky.settings import live as bluesky_live
from bot.channels.bluesky.text import MAX_GRAPHEMES, is_tid, tid
from bot.channels.email.render import RenderError, edition_url
from bot.config import CheckResult, Config
from bot.edition.credit import edition_credit
from bot.edition.edition import edition_from_store
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)

_LAST_MICROS = 0  # the last TID time handed out in this process: every planned post gets a later one
_TID_LOCK = threading.Lock()


def record_keys(n: int, now_ns: int, clock_id: int | None = None) -> list[str]:
    """`n` record keys for a thread planned at `now_ns`, in order, each later than any made before here."""
    global _LAST_MICROS
    clock_id = secrets.randbelow(1024) if clock_id is None else clock_id
    with _TID_LOCK:
        start = max(now_ns // 1000, _LAST_MICROS + 1)
        _LAST_MICROS = start + n - 1
    return [tid(start + i, clock_id) for i in range(n)]


def unit_place(unit: Unit) -> int:
    return int((unit.ref or "0").split(":", 1)[0])


def unit_rkey(unit: Unit) -> str:
    """The record key planned for the unit; PermanentError if its ledger row holds none (a planning bug)."""
    _, _, rkey = (unit.ref or "").partition(":")
    if not is_tid(rkey):
        raise PermanentError(f"bluesky: {unit.key} has no record key in the ledger ({unit.ref!r})")
    return rkey


@dataclass(frozen=True)
class BlueskyRendition:
    source: str
    key: str
    posts: tuple[Post, ...]
    langs: tuple[str, ...]

    def post(self, unit: Unit) -> Post:
        return self.posts[unit_place(unit)]

    def record(self, unit: Unit, created_at: datetime, refs: Sequence[dict] = ()) -> dict:
        """The app.bsky.feed.post record; `refs` the strong refs (root, parent) of a reply."""
        post = self.post(unit)
        rec: dict = {"$type": bc.POST, "text": post.text,
                     "createdAt": created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                     "langs": list(self.langs)}
        if post.facets:
            rec["facets"] = [dict(f) for f in post.facets]
        if refs:
            rec["reply"] = {"root": refs[0], "parent": refs[-1]}
        return rec


def outbox_dir(cfg: Config, source: str, key: str) -> Path:
    return cfg.state_dir / "outbox" / "bluesky" / source / key


def _error(e: bc.BskyError) -> Exception:
    """A Bluesky failure as the pipeline's outcome (see bot/channels/base.py)."""
    if e.kind == bc.RATE_LIMITED:
        return RateLimited(f"Bluesky rate limit: {e}", e.until or datetime.now(UTC))
    if e.kind in (bc.NOT_SENT, bc.EXPIRED):
        return TransientError(f"Bluesky: {e}")
    if e.kind == bc.UNCERTAIN:
        return Uncertain(f"Bluesky: {e}")
    if e.status == 401 or e.error in ("AuthFactorTokenRequired", "AccountTakedown", "AuthenticationRequired"):
        return ChannelDown(f"Bluesky refused the login: {e} (check {bc.ENV_HANDLE} and {bc.ENV_PASSWORD})")
    return PermanentError(f"Bluesky refused it: {e}")


class _BlueskySender:
    def __init__(self, rendition: BlueskyRendition, account: Account, now: Callable[[], datetime]):
        self.r, self.account, self.now = rendition, account, now
        self.cids: dict[str, str] = {}  # uri -> cid of the posts this sender made or read

    def _ref(self, uri: str) -> dict:
        """The strong ref of an earlier post of the thread (its cid read back when not made here)."""
        if uri not in self.cids:
            try:
                repo, collection, rkey = bc.at_uri_parts(uri)
            except ValueError as e:
                raise PermanentError(f"bluesky: the ledger's id {uri!r} is no post URI") from e
            found = self.account.get_record(repo, collection, rkey)
            if found is None:
                raise PermanentError(f"bluesky: {uri}, a post this one replies to, is not there any more")
            self.cids[uri] = found[1]
        return {"uri": uri, "cid": self.cids[uri]}

    def send(self, unit: Unit) -> str:
        rkey = unit_rkey(unit)
        try:
            refs = [self._ref(unit.prior[0]), self._ref(unit.prior[-1])] if unit.prior else []
        except bc.BskyError as e:  # a read before the create: nothing was sent
            if e.kind == bc.RATE_LIMITED:
                raise RateLimited(f"Bluesky rate limit while reading the thread: {e}", e.until or self.now()) from e
            raise TransientError(f"cannot read the posts this one replies to: {e}") from e
        try:
            uri, cid = self.account.create_record(bc.POST, rkey, self.r.record(unit, self.now(), refs))
        except bc.BskyError as e:
            raise _error(e) from e
        self.cids[uri] = cid
        return uri

    def reconcile(self, unit: Unit) -> str | None:
        """The post's URI if a record is at its planned key (with its text); None if there is none."""
        rkey = unit_rkey(unit)
        try:
            found = self.account.get_record(self.account.did, bc.POST, rkey)
        except bc.BskyError as e:
            if e.kind == bc.RATE_LIMITED:
                raise RateLimited(f"Bluesky rate limit while reading back: {e}", e.until or self.now()) from e
            raise TransientError(f"cannot read back record {rkey}: {e}") from e
        if found is None:
            return None
        uri, cid, value = found
        if value.get("text") != self.r.post(unit).text:
            raise TransientError(f"record {rkey} holds another post than {unit.key}: settle it with paperbot "
                                 "resolve")
        self.cids[uri] = cid
        return uri

    def close(self) -> None:
        self.account.xrpc.close()


class _OutboxSender:
    """A trial: the createRecord bodies go to a folder; the "ids" are `outbox-N`."""

    def __init__(self, rendition: BlueskyRendition, folder: Path, now: Callable[[], datetime]):
        self.r, self.folder, self.now = rendition, folder, now

    def _path(self, unit: Unit) -> Path:
        return self.folder / f"{unit_place(unit):02d}.json"

    def send(self, unit: Unit) -> str:
        refs = [{"uri": u, "cid": "(trial)"} for u in (unit.prior[0], unit.prior[-1])] if unit.prior else []
        body = {"repo": "(the account)", "collection": bc.POST, "rkey": unit_rkey(unit),
                "record": self.r.record(unit, self.now(), refs)}
        write_file(self._path(unit), json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8"))
        return f"outbox-{unit_place(unit)}"

    def reconcile(self, unit: Unit) -> str | None:
        return f"outbox-{unit_place(unit)}" if self._path(unit).exists() else None

    def close(self) -> None:
        pass


class BlueskyChannel:
    name = "bluesky"
    audience = "followers of the Bluesky account"
    ordered = True

    def __init__(self, cfg: Config, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.cfg = cfg
        self._env = os.environ if environ is None else environ
        self.live = bluesky_live(cfg.bluesky, self._env)
        self.now = clock or (lambda: datetime.now(UTC))
        self._clock_given = clock is not None
        b = cfg.bluesky
        self.limits = ChannelLimits(connections=1, max_attempts=4, backoff=2.0, backoff_max=60.0,
                                    delay=b.delay if self.live else 0.0)

    def plan(self, store: Store, week: WeekRow) -> Sequence[Unit]:
        ed = edition_from_store(store, week.source, week.key, self.name)
        n = 1 + len(ed.papers) + ed.late_papers
        now_ns = int(self.now().timestamp() * 1_000_000) * 1000 if self._clock_given else time.time_ns()
        keys = record_keys(n, now_ns)
        return [Unit(key=f"post-{i:02d}", ref=f"{i}:{keys[i]}") for i in range(n)]

    def render(self, store: Store, week: WeekRow, *, dry: bool = False) -> BlueskyRendition:
        b = self.cfg.bluesky
        ed = edition_from_store(store, week.source, week.key, self.name)
        try:
            posts = compose_thread(ed, web_url=edition_url(self.cfg, week.source, week.key), tags=b.tags,
                                   credit=edition_credit(self.cfg.sources, ed).name)
        except ComposeError as e:
            raise RenderError(f"bluesky: {e}") from e
        return BlueskyRendition(week.source, week.key, tuple(posts), b.langs)

    def prepare(self, rendition: BlueskyRendition) -> None:
        if not self.live:
            write_file(outbox_dir(self.cfg, rendition.source, rendition.key) / "thread.txt",
                       readable(rendition.posts).encode("utf-8"))

    def _account(self) -> Account:
        creds = bc.credentials_from_env(self._env)
        if creds is None:
            raise bc.CredentialsError(f"Bluesky credentials not set: {', '.join(bc.ENV_VARS)}")
        b = self.cfg.bluesky
        return Account(bc.Xrpc(b.service, b.timeout), creds, session_path(self.cfg.state_dir), self.now)

    def open_sender(self, rendition: BlueskyRendition) -> _BlueskySender | _OutboxSender:
        if not self.live:
            return _OutboxSender(rendition, outbox_dir(self.cfg, rendition.source, rendition.key), self.now)
        try:
            account = self._account()
        except bc.CredentialsError as e:
            raise ChannelDown(str(e)) from e
        try:
            account.login()  # once, before the chain: a refused login is never retried post after post
        except bc.BskyError as e:
            account.xrpc.close()
            err = _error(e)
            raise err if isinstance(err, TransientError) else ChannelDown(str(err)) from e
        return _BlueskySender(rendition, account, self.now)

    def check(self) -> list[CheckResult]:
        """`paperbot check`: log in (or reuse the saved session) and read the account's profile; nothing posted."""
        service = self.cfg.bluesky.service
        if not self.live:
            return [CheckResult("bluesky", True, f"no {bc.ENV_HANDLE} / {bc.ENV_PASSWORD}: threads go to the "
                                "outbox (a trial)", note=True)]
        try:
            account = self._account()
        except bc.CredentialsError as e:
            return [CheckResult("bluesky", False, str(e))]
        try:
            profile = account.profile()
        except bc.BskyError as e:
            return [CheckResult("bluesky", False, f"{service}: {e}")]
        finally:
            account.xrpc.close()
        return [CheckResult("bluesky", True, f"{service}: the app password works (account @{profile.get('handle')}, "
                            f"{profile.get('did')}); nothing posted")]

    def on_permanent(self, store: Store, unit: Unit, error: str, now: datetime) -> None:
        pass  # a refused post is the operator's to settle (`paperbot resolve`); there is no list to update

    def preview(self, store: Store, week: WeekRow, out: Path | None) -> list[str]:
        r = self.render(store, week, dry=True)
        how = (f"Bluesky at {self.cfg.bluesky.service}" if self.live
               else f"outbox {outbox_dir(self.cfg, week.source, week.key)} (no {bc.ENV_HANDLE} / {bc.ENV_PASSWORD})")
        lines = [f"bluesky: {week.source}:{week.key}: {len(r.posts)} posts, a thread (each a reply to the one "
                 "before)", f"  sending: {how}"]
        for post in r.posts:
            lines.append(f"  [{post.index}] {post.graphemes}/{MAX_GRAPHEMES} graphemes, {post.bytes} bytes")
            lines += [f"      {line}" for line in post.text.split("\n")]
            lines += [f"      [link] {u}" for u in post.links]
        if out is not None:
            folder = out / "bluesky" / week.source / week.key
            keys = record_keys(len(r.posts), time.time_ns())
            prior: list[str] = []
            sender = _OutboxSender(r, folder, self.now)
            for post in r.posts:
                prior.append(sender.send(Unit(key=f"post-{post.index:02d}", ref=f"{post.index}:{keys[post.index]}",
                                              prior=tuple(prior))))
            write_file(folder / "thread.txt", readable(r.posts).encode("utf-8"))
            lines.append(f"  wrote {folder}/00.json … {len(r.posts) - 1:02d}.json and thread.txt")
        return lines
