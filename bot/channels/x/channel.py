"""The X channel: a week as a thread, the head post then one reply per paper, sent as an ordered chain.

Each unit is one post (`ref` is its place in the thread, 0 = the head); the pipeline (bot/publish/chain.py)
sends them one at a time and gives each the ids of the posts before it, so post N+1 replies to post N. A post
whose fate is unknown is reconciled by reading the account's recent posts, never resent blindly: on X a
duplicate is public. With `[x] replies = false` every paper is a post of its own that links to the head.

Without the PAPERBOT_X_* credentials the channel is a trial: each post's exact request body goes to
state/outbox/x/<source>/<key>/NN.json, and the whole thread, readable, to thread.txt.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import tweepy

from bot.channels.base import (
    ChannelDown,
    ChannelLimits,
    OutboxSender,
    PermanentError,
    RateLimited,
    TransientError,
    Uncertain,
    Unit,
    write_file,
)
from bot.channels.email.render import RenderError, edition_url
from bot.channels.x import client as xc
from bot.channels.x.compose import ComposeError, Post, compose_thread
from bot.channels.x.settings import live
from bot.channels.x.text import MAX_WEIGHT
from bot.config import CheckResult, Config
from bot.edition.credit import edition_credit
from bot.edition.edition import edition_from_store
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)

# Where a paper post links to the head when posts cannot be replies. A URL weighs 23 whatever its length, so
# the composer fits the post with this placeholder and the sender puts the head's real id in.
HEAD_PLACEHOLDER = "https://x.com/i/status/1000000000000000000"
RECENT = 50  # posts read back when reconciling: a thread, with room for what the account posted meanwhile


def head_url(post_id: str) -> str:
    return f"https://x.com/i/status/{post_id}"


@dataclass(frozen=True)
class XRendition:
    source: str
    key: str
    posts: tuple[Post, ...]
    replies: bool

    def text(self, unit: Unit) -> str:
        """The post's text as sent: the head's real link in place of the placeholder."""
        text = self.posts[int(unit.ref or 0)].text
        if HEAD_PLACEHOLDER in text and unit.prior:
            text = text.replace(HEAD_PLACEHOLDER, head_url(unit.prior[0]))
        return text

    def reply_to(self, unit: Unit) -> str | None:
        return unit.prior[-1] if self.replies and unit.prior else None

    def body(self, unit: Unit) -> dict:
        """The JSON body of `POST /2/tweets`, as tweepy sends it."""
        body: dict = {"text": self.text(unit)}
        if (reply_to := self.reply_to(unit)) is not None:
            body["reply"] = {"in_reply_to_tweet_id": reply_to}
        return body


def outbox_dir(cfg: Config, source: str, key: str) -> Path:
    return cfg.state_dir / "outbox" / "x" / source / key


def readable(r: XRendition) -> str:
    """The thread as a person reads it, each post with its weighted length."""
    parts = []
    for post in r.posts:
        kind = "head" if post.index == 0 else ("reply" if r.replies else "post")
        parts.append(f"--- {post.index}: {kind}, {post.weight}/{MAX_WEIGHT} weighted characters\n{post.text}\n")
    return "\n".join(parts)


def _error(e: xc.XError, unit: Unit, replies: bool) -> Exception:
    """An X failure as the pipeline's outcome (see bot/channels/base.py)."""
    if e.kind == xc.RATE_LIMITED:
        return RateLimited(f"X rate limit: {e}", e.until)
    if e.kind == xc.NOT_SENT:
        return TransientError(f"X: {e}")
    if e.kind == xc.UNCERTAIN:
        return Uncertain(f"X: {e}", resend_if_missing=e.status != 403)
    hint = ""
    if e.status == 403 and replies and unit.prior:
        hint = ("; X did not allow the reply: if this account cannot thread, set [x] replies = false (each paper "
                "then links to the head), then paperbot resolve ... --retry")
    return PermanentError(f"X refused it: {e}{hint}")


class _XSender:
    def __init__(self, rendition: XRendition, client: tweepy.Client):
        self.r, self.client = rendition, client
        self.user_id: str | None = None

    def send(self, unit: Unit) -> str:
        try:
            return xc.create_post(self.client, self.r.text(unit), self.r.reply_to(unit))
        except xc.XError as e:
            raise _error(e, unit, self.r.replies) from e

    def reconcile(self, unit: Unit) -> str | None:
        """The id of a recent post of ours with this unit's text, replying where this one would; None if none."""
        try:
            if self.user_id is None:
                self.user_id = xc.me(self.client)
            seen = xc.recent_posts(self.client, self.user_id, RECENT)
        except xc.XError as e:
            if e.kind == xc.RATE_LIMITED:
                raise RateLimited(f"X rate limit while reading the timeline: {e}", e.until) from e
            raise TransientError(f"cannot read the account's recent posts: {e}") from e
        text, reply_to = self.r.text(unit), self.r.reply_to(unit)
        for post in seen:
            if post.in_reply_to == reply_to and xc.same_post(text, post.text):
                return post.id
        return None

    def close(self) -> None:
        self.client.session.close()


class XChannel:
    name = "x"
    audience = "followers of the X account"
    ordered = True

    def __init__(self, cfg: Config, environ: Mapping[str, str] | None = None):
        self.cfg = cfg
        env = os.environ if environ is None else environ
        self.live = live(cfg.x, env)
        self._env = env
        x = cfg.x
        self.limits = ChannelLimits(connections=1, max_attempts=4, backoff=2.0, backoff_max=60.0,
                                    daily_budget=x.daily_budget if self.live else 0,
                                    delay=x.delay if self.live else 0.0)

    def plan(self, store: Store, week: WeekRow) -> Sequence[Unit]:
        ed = edition_from_store(store, week.source, week.key, self.name)
        n = 1 + len(ed.papers) + ed.late_papers
        return [Unit(key=f"post-{i:02d}", ref=str(i)) for i in range(n)]

    def render(self, store: Store, week: WeekRow, *, dry: bool = False) -> XRendition:
        x = self.cfg.x
        ed = edition_from_store(store, week.source, week.key, self.name)
        try:
            posts = compose_thread(ed, web_url=edition_url(self.cfg, week.source, week.key), hashtags=x.hashtags,
                                   extra_link=x.extra_link, head_template=x.head,
                                   head_url=None if x.replies else HEAD_PLACEHOLDER,
                                   credit=edition_credit(self.cfg.sources, ed).name)  # issue #16
        except ComposeError as e:
            raise RenderError(f"x: {e}") from e
        return XRendition(week.source, week.key, tuple(posts), x.replies)

    def prepare(self, rendition: XRendition) -> None:
        if not self.live:
            write_file(outbox_dir(self.cfg, rendition.source, rendition.key) / "thread.txt",
                   readable(rendition).encode("utf-8"))

    def open_sender(self, rendition: XRendition) -> _XSender | OutboxSender:
        if not self.live:
            return OutboxSender(rendition.body, outbox_dir(self.cfg, rendition.source, rendition.key))
        try:
            client = xc.client_from_env(api_base=self.cfg.x.api_base, timeout=self.cfg.x.timeout,
                                        environ=self._env)
        except xc.CredentialsError as e:
            raise ChannelDown(str(e)) from e
        return _XSender(rendition, client)

    def check(self) -> list[CheckResult]:
        """`paperbot check`: ask X who the credentials belong to (GET /2/users/me); nothing is posted."""
        if not self.live:
            return [CheckResult("x", True, "no PAPERBOT_X_* credentials: threads go to the outbox (a trial)",
                                note=True)]
        try:
            client = xc.client_from_env(api_base=self.cfg.x.api_base, timeout=self.cfg.x.timeout, environ=self._env)
        except xc.CredentialsError as e:
            return [CheckResult("x", False, str(e))]
        try:
            user = xc.me(client)
        except xc.XError as e:
            return [CheckResult("x", False, f"{self.cfg.x.api_base}: GET /2/users/me: {e}")]
        finally:
            client.session.close()
        return [CheckResult("x", True, f"{self.cfg.x.api_base}: the credentials work (account {user}); nothing "
                            "posted")]

    def on_permanent(self, store: Store, unit: Unit, error: str, now: datetime) -> None:
        pass  # a refused post is the operator's to settle (`paperbot resolve`); there is no list to update

    def preview(self, store: Store, week: WeekRow, out: Path | None) -> list[str]:
        r = self.render(store, week, dry=True)
        how = (f"X at {self.cfg.x.api_base}" if self.live
               else f"outbox {outbox_dir(self.cfg, week.source, week.key)} (no PAPERBOT_X_* credentials)")
        lines = [f"x: {week.source}:{week.key}: {len(r.posts)} posts, "
                 + ("a thread (each a reply to the one before)" if r.replies else "each its own post, linking "
                    "to the head"), f"  sending: {how}"]
        for post in r.posts:
            lines.append(f"  [{post.index}] {post.weight}/{MAX_WEIGHT}")
            lines += [f"      {line}" for line in post.text.split("\n")]
        if out is not None:
            folder = out / "x" / week.source / week.key
            prior: list[str] = []
            for post in r.posts:
                unit = Unit(key=f"post-{post.index:02d}", ref=str(post.index), prior=tuple(prior))
                write_file(folder / f"{post.index:02d}.json",
                       json.dumps(r.body(unit), ensure_ascii=False, indent=2).encode("utf-8"))
                prior.append(f"outbox-{post.index}")
            write_file(folder / "thread.txt", readable(r).encode("utf-8"))
            lines.append(f"  wrote {folder}/00.json … {len(r.posts) - 1:02d}.json and thread.txt")
        return lines
