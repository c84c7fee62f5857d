"""The Mastodon channel (issue #31): a week as a self-thread, the head status then one reply per paper, sent as
an ordered chain (bot/publish/chain.py), each status a reply to the one before through `in_reply_to_id` (never
Mastodon.py's `status_reply`, which would mention the account).

Every planned status carries an `Idempotency-Key` made from its ledger row, so a POST sent twice within the
server's hour makes one status. A status whose fate is unknown (a dropped answer, a 5xx, a kill mid-send) is
reconciled from the account's own recent statuses before anything is sent again, which also holds after the
server has forgotten the key. A 429 becomes the channel's rate-limited-until, from `X-RateLimit-Reset`.

The texts are fitted to the instance's limits (GET /api/v2/instance, read when the sender opens); `render`
composes them with Mastodon's defaults only to catch a broken template before anything is planned. Without
$PAPERBOT_MASTODON_TOKEN the channel is a trial: each status's request goes to
state/outbox/mastodon/<source>/<key>/NN.json and the readable thread to thread.txt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

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
from bot.channels.mastodon import client as mc
from bot.channels.mastodon.compose import ComposeError, Limits, Status, compose_thread
from bot.config import CheckResult, Config
from bot.edition.credit import edition_credit
from bot.edition.edition import Edition, edition_from_store
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)

RECENT = 50  # statuses read back when reconciling: a thread, with room for what the account posted meanwhile


@dataclass(frozen=True)
class MastodonRendition:
    source: str
    key: str
    edition: Edition
    web_url: str
    credit: str | None
    statuses: tuple[Status, ...]  # composed within `limits`
    limits: Limits
    visibility: str
    language: str

    def text(self, unit: Unit) -> str:
        return self.statuses[int(unit.ref or 0)].text

    def reply_to(self, unit: Unit) -> str | None:
        return unit.prior[-1] if unit.prior else None

    def idempotency_key(self, unit: Unit) -> str:
        """One key per planned status (its ledger row): a resend of the same POST makes no second status."""
        raw = f"{self.source}\0{self.key}\0{unit.key}\0{unit.row_id}".encode()
        return "paperbot-" + hashlib.sha256(raw).hexdigest()[:40]

    def body(self, unit: Unit) -> dict:
        """What POST /api/v1/statuses is sent (the form fields, and the Idempotency-Key header)."""
        return {"status": self.text(unit), "in_reply_to_id": self.reply_to(unit), "visibility": self.visibility,
                "language": self.language, "Idempotency-Key": self.idempotency_key(unit)}


def outbox_dir(cfg: Config, source: str, key: str) -> Path:
    return cfg.state_dir / "outbox" / "mastodon" / source / key


def readable(r: MastodonRendition) -> str:
    """The thread as a person reads it, each status with its length against the instance's limit."""
    parts = [f"(limits: {r.limits.max_characters} characters, a link counts {r.limits.reserved_per_url}; "
             f"from {r.limits.source}; visibility {r.visibility}, language {r.language})\n"]
    for s in r.statuses:
        kind = "head" if s.index == 0 else "reply"
        parts.append(f"--- {s.index}: {kind}, {s.length}/{r.limits.max_characters} characters\n{s.text}\n")
    return "\n".join(parts)


def _error(e: mc.MastodonFailure) -> Exception:
    """A Mastodon failure as the pipeline's outcome (see bot/channels/base.py)."""
    if e.kind == mc.RATE_LIMITED:
        return RateLimited(f"Mastodon rate limit: {e}", e.until)
    if e.kind == mc.NOT_SENT:
        return TransientError(f"Mastodon: {e}")
    if e.kind == mc.UNCERTAIN:
        return Uncertain(f"Mastodon: {e}")
    if e.status == 401:
        return ChannelDown(f"Mastodon refused the token: {e} (check {mc.TOKEN_ENV} and its scopes)")
    return PermanentError(f"Mastodon refused it: {e}")


def _read_error(e: mc.MastodonFailure, what: str) -> Exception:
    """A failed read (nothing was posted): rate-limited, the token refused, or try again later."""
    if e.kind == mc.RATE_LIMITED:
        return RateLimited(f"Mastodon rate limit while reading {what}: {e}", e.until)
    if e.status == 401:
        return ChannelDown(f"Mastodon refused the token: {e} (check {mc.TOKEN_ENV} and its scopes)")
    return TransientError(f"cannot read {what}: {e}")


class _MastodonSender:
    """Reads the instance's limits before its first status (so a 429 or a failure there is the chain's to handle,
    like any send's), composes the thread within them, then posts one status per `send`."""

    def __init__(self, rendition: MastodonRendition, api, compose: Callable[[MastodonRendition, Limits],
                                                                            MastodonRendition]):
        self.draft, self.api, self.compose = rendition, api, compose
        self.fitted: MastodonRendition | None = None
        self.account_id: str | None = None

    @property
    def r(self) -> MastodonRendition:
        if self.fitted is None:
            try:
                limits = mc.instance_limits(self.api, self.api.api_base_url)
            except mc.MastodonFailure as e:
                raise _read_error(e, "the instance's limits") from e
            try:
                self.fitted = self.compose(self.draft, limits)
            except RenderError as e:
                raise ChannelDown(str(e)) from e
        return self.fitted

    def send(self, unit: Unit) -> str:
        r = self.r
        try:
            return mc.post_status(self.api, r.text(unit), reply_to=r.reply_to(unit), visibility=r.visibility,
                                  language=r.language, idempotency_key=r.idempotency_key(unit))
        except mc.MastodonFailure as e:
            raise _error(e) from e

    def reconcile(self, unit: Unit) -> str | None:
        """The id of a recent status of ours with this unit's text, replying where this one would; None if none."""
        text, reply_to = self.r.text(unit), self.r.reply_to(unit)
        try:
            if self.account_id is None:
                self.account_id = mc.me(self.api)["id"]
            for status in mc.recent_statuses(self.api, self.account_id, RECENT):
                if status.in_reply_to == reply_to and mc.same_status(text, status.text):
                    return status.id
        except mc.MastodonFailure as e:
            raise _read_error(e, "the account's recent statuses") from e
        return None

    def close(self) -> None:
        self.api.session.close()


class MastodonChannel:
    name = "mastodon"
    audience = "followers of the Mastodon account"
    ordered = True

    def __init__(self, cfg: Config, environ: Mapping[str, str] | None = None):
        self.cfg = cfg
        self.settings = cfg.mastodon
        self.token = mc.token_from_env(os.environ if environ is None else environ)
        self.live = self.token is not None
        s = self.settings
        self.limits = ChannelLimits(connections=1, max_attempts=4, backoff=2.0, backoff_max=60.0,
                                    daily_budget=s.daily_budget if self.live else 0,
                                    delay=s.delay if self.live else 0.0)

    def plan(self, store: Store, week: WeekRow) -> Sequence[Unit]:
        ed = edition_from_store(store, week.source, week.key, self.name)
        n = 1 + len(ed.papers) + ed.late_papers
        return [Unit(key=f"status-{i:02d}", ref=str(i)) for i in range(n)]

    def _compose(self, r: MastodonRendition, limits: Limits) -> MastodonRendition:
        try:
            statuses = compose_thread(r.edition, limits, web_url=r.web_url, hashtags=self.settings.hashtags,
                                      credit=r.credit, head_template=self.settings.head)
        except ComposeError as e:
            raise RenderError(f"mastodon: {e}") from e
        return replace(r, statuses=tuple(statuses), limits=limits)

    def render(self, store: Store, week: WeekRow, *, dry: bool = False) -> MastodonRendition:
        ed = edition_from_store(store, week.source, week.key, self.name)
        r = MastodonRendition(week.source, week.key, ed, edition_url(self.cfg, week.source, week.key),
                              edition_credit(self.cfg.sources, ed).name, (), Limits(),
                              self.settings.visibility, self.settings.language)
        return self._compose(r, Limits())

    def prepare(self, rendition: MastodonRendition) -> None:
        if not self.live:
            write_file(outbox_dir(self.cfg, rendition.source, rendition.key) / "thread.txt",
                       readable(rendition).encode("utf-8"))

    def _client(self):
        if not self.settings.instance:
            raise ChannelDown(f"{mc.TOKEN_ENV} is set but [mastodon] instance is not: set it to the account's "
                              "server, e.g. instance = \"https://mastodon.social\"")
        return mc.make_client(self.settings.instance, self.token or "", self.settings.timeout)

    def open_sender(self, rendition: MastodonRendition) -> _MastodonSender | OutboxSender:
        if not self.live:
            return OutboxSender(rendition.body, outbox_dir(self.cfg, rendition.source, rendition.key))
        return _MastodonSender(rendition, self._client(), self._compose)

    def check(self) -> list[CheckResult]:
        """`paperbot check`: who the token belongs to (verify_credentials) and the instance's limits; warns when
        the account is not marked as a bot or when statuses would be public. Nothing is posted."""
        s = self.settings
        out = []
        if s.visibility == "public":
            out.append(CheckResult("mastodon", True, "visibility = \"public\": every status reaches the public "
                                   "timelines; most servers ask bots to post unlisted", note=True))
        if not self.live:
            return out + [CheckResult("mastodon", True, f"no {mc.TOKEN_ENV}: threads go to the outbox (a trial)",
                                      note=True)]
        try:
            api = self._client()
        except ChannelDown as e:
            return out + [CheckResult("mastodon", False, str(e))]
        try:
            account = mc.me(api)
            limits = mc.instance_limits(api, s.instance or "")
        except mc.MastodonFailure as e:
            return out + [CheckResult("mastodon", False, f"{s.instance}: {e}")]
        finally:
            api.session.close()
        out.append(CheckResult("mastodon", True, f"{s.instance}: the token works (account @{account['acct']}); "
                               f"{limits.max_characters} characters a status; nothing posted"))
        if not account["bot"]:
            out.append(CheckResult("mastodon", True, f"@{account['acct']} is not marked as a bot: tick \"This is an "
                                   "automated account\" in Preferences > Profile (most servers' rules ask it)",
                                   note=True))
        return out

    def on_permanent(self, store: Store, unit: Unit, error: str, now: datetime) -> None:
        pass  # a refused status is the operator's to settle (`paperbot resolve`); there is no list to update

    def preview(self, store: Store, week: WeekRow, out: Path | None) -> list[str]:
        r = self.render(store, week, dry=True)
        how = f"outbox {outbox_dir(self.cfg, week.source, week.key)} (no {mc.TOKEN_ENV})"
        if self.live:
            how = f"Mastodon at {self.settings.instance}"
            try:
                api = self._client()
                try:
                    r = _MastodonSender(r, api, self._compose).r
                finally:
                    api.session.close()
            except TransientError as e:
                how += f" (its limits could not be read: {e}; shown with Mastodon's defaults)"
        lines = [f"mastodon: {week.source}:{week.key}: {len(r.statuses)} statuses, a thread (each a reply to the "
                 f"one before), {r.visibility}, limit {r.limits.max_characters} from {r.limits.source}",
                 f"  sending: {how}"]
        for s in r.statuses:
            lines.append(f"  [{s.index}] {s.length}/{r.limits.max_characters}")
            lines += [f"      {line}" for line in s.text.split("\n")]
        if out is not None:
            folder = out / "mastodon" / week.source / week.key
            prior: list[str] = []
            for s in r.statuses:
                unit = Unit(key=f"status-{s.index:02d}", ref=str(s.index), prior=tuple(prior))
                write_file(folder / f"{s.index:02d}.json",
                           json.dumps(r.body(unit), ensure_ascii=False, indent=2).encode("utf-8"))
                prior.append(f"outbox-{s.index}")
            write_file(folder / "thread.txt", readable(r).encode("utf-8"))
            lines.append(f"  wrote {folder}/00.json … {len(r.statuses) - 1:02d}.json and thread.txt")
        return lines
