"""The Discord channel (issue #12): a week's announcement as an ordered chain of messages, one ledger unit each.

`plan` gives one unit per message compose.py makes of the week's edition (`message-1`, `message-2`…; `ref` is
the message's index); the pipeline sends them one at a time, in order, each `send(unit)` given the ids of the
messages before it (`unit.prior`). In a forum (`[discord] forum = true`) the first message opens the week's post
(`thread_name`) and the later ones go into it (the post's id is its first message's, as on Discord).

Live when `$PAPERBOT_DISCORD_WEBHOOK_URL` (the default way in) or `$PAPERBOT_DISCORD_BOT_TOKEN` (with
`[discord] channel_id`) is set; with both, the webhook posts and the bot reads back and crossposts. Otherwise a
trial: each payload is written as JSON to `state/outbox/discord/<source>/<key>/NNN.json`, exactly the body
that would be sent. Secrets are never logged or stored; messages carry the webhook's token redacted.

A message whose fate is unknown (a 5xx to its create, its answer lost, or a run killed while sending it) is
looked for with the bot when there is one, by its nonce or its text among the channel's recent messages, before
anything is sent again (issue #21: Discord honours a nonce for minutes only, and a retry can come hours later);
a webhook alone cannot read the channel, so it is sent again, logged and recorded as a possible duplicate (README
"Discord announcements": the one way to a second copy; `paperbot history` and an alert show it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from bot.channels.base import ChannelDown, ChannelLimits, PermanentError, TransientError, Unit, storage_error
from bot.channels.discord.client import DiscordClient
from bot.channels.discord.compose import ComposeError, compose, embed_length
from bot.channels.discord.edit import Edit, edit_week
from bot.channels.discord.transport import TOKEN_ENV, WEBHOOK_ENV, Credentials, CredentialsError, credentials_from_env
from bot.channels.email.render import RenderError, edition_url
from bot.config import CheckResult, Config
from bot.edition.credit import edition_credit
from bot.edition.edition import Edition, edition_from_store
from bot.store import Store, WeekRow
from bot.store.files import write_private

log = logging.getLogger(__name__)

NEWS, FORUMS = 5, (15, 16)  # Discord channel types: announcement; forum and media
_LOCAL = {"localhost", "127.0.0.1", "::1"}


def outbox_dir(cfg: Config, source: str, key: str) -> Path:
    return cfg.state_dir / "outbox" / "discord" / source / key


@dataclass(frozen=True)
class DiscordRendition:
    source: str
    key: str
    edition: Edition
    payloads: tuple[dict, ...]

    def payload(self, unit: Unit) -> dict:
        i = int(unit.ref or 0)
        if not 0 <= i < len(self.payloads):
            raise PermanentError(f"discord: message {i + 1} of {self.source}:{self.key} no longer exists: the week "
                                 f"now makes {len(self.payloads)} message(s)")
        return self.payloads[i]

    def nonce(self, unit: Unit) -> str:
        """The same for a unit in every run (≤ 25 characters): Discord drops a resend of it within minutes."""
        return hashlib.sha256(f"{self.source}|{self.key}|{unit.key}".encode()).hexdigest()[:25]


def _same(msg: dict, payload: dict) -> bool:
    """A message read back from Discord is the one `payload` made (its text and its embeds' titles)."""
    titles = [e.get("title") for e in msg.get("embeds") or []]
    return (msg.get("content") or "") == (payload.get("content") or "") and titles == [
        e.get("title") for e in payload.get("embeds") or []]


class _OutboxSender:
    def __init__(self, rendition: DiscordRendition, folder: Path):
        self.r, self.folder = rendition, folder

    def _path(self, unit: Unit) -> Path:
        return self.folder / f"{int(unit.ref or 0) + 1:03d}.json"

    def send(self, unit: Unit) -> str:
        path, tmp = self._path(unit), self._path(unit).with_suffix(".json.tmp")
        data = json.dumps(self.r.payload(unit), ensure_ascii=False, indent=2) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(tmp, data.encode("utf-8"))
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise storage_error(e, "write", path) from e
        return f"outbox:{path.name}"

    def reconcile(self, unit: Unit) -> str | None:
        return f"outbox:{self._path(unit).name}" if self._path(unit).exists() else None

    def close(self) -> None:
        pass


class _DiscordSender:
    """Posts through the webhook if there is one, else as the bot; the bot (when there is one) also reads back
    (`reconcile`) and crossposts in an announcement channel."""

    def __init__(self, rendition: DiscordRendition, client: DiscordClient, cfg: Config):
        self.r, self.client, self.d = rendition, client, cfg.discord
        self.hook = client.webhook is not None
        self.bot = bool(client.creds.bot_token and self.d.channel_id)
        self._type: int | None = None
        self._me: str | None = None

    def _channel_type(self) -> int:
        if self._type is None:
            self._type = int(self.client.channel(self.d.channel_id).get("type", 0))
        return self._type

    def send(self, unit: Unit) -> str:
        payload = self.r.payload(unit)
        # Before the post: a lookup failing after it would fail a unit that went out, and it would go out twice.
        news = self.bot and self._channel_type() == NEWS
        if self.hook:
            thread = unit.prior[0] if self.d.forum and unit.prior else None
            body = payload if self.d.forum and not unit.prior else {k: v for k, v in payload.items()
                                                                     if k != "thread_name"}
            mid, _ = self.client.execute(body, thread_id=thread)
        else:
            if self._channel_type() in FORUMS:
                raise PermanentError("discord: [discord] channel_id is a forum channel: posting there needs a "
                                     f"webhook ({WEBHOOK_ENV}) with forum = true")
            mid = self.client.post(self.d.channel_id, payload, nonce=self.r.nonce(unit))
        if news:
            try:
                self.client.crosspost(self.d.channel_id, mid)
            except (TransientError, PermanentError) as e:  # the message is posted: never send it again for this
                log.warning("discord: message %s of %s:%s was posted but not published to following servers: %s",
                            mid, self.r.source, self.r.key, e)
        return mid

    def reads_back(self, unit: Unit) -> bool:
        """Whether `reconcile` can look for the unit's message: not without a bot, nor for a forum post's first
        message (the post it would open cannot be looked up). When it cannot, its None means "not known"."""
        return self.bot and not (self.d.forum and not unit.prior)

    def reconcile(self, unit: Unit) -> str | None:
        """The id of the unit's message if the channel shows it after the one before it; None if it does not.

        Without a bot to read the channel with (a webhook cannot list messages; nor can a bot find a forum post
        that may not exist), None as well: the message is sent again, as email resends a row found `sending`
        after a kill (README "Exactly once, and the one exception"), and the log says it may now show twice.
        Waiting for the operator instead would hold every later week behind one lost answer."""
        if not self.reads_back(unit):
            log.warning("discord: %s of %s:%s may have been posted already (its answer was lost, or a run died "
                        "while sending it), and %s, so it is sent again: if it was posted, the channel shows it "
                        "twice (set %s and [discord] channel_id to let paperbot look first)", unit.key,
                        self.r.source, self.r.key, "a webhook cannot read the channel back" if not self.bot else
                        "the forum post it would open cannot be looked up", TOKEN_ENV)
            return None
        where = unit.prior[0] if self.d.forum else self.d.channel_id
        if self.hook:
            author = str(self.client.creds.webhook_id)
        else:
            author = self._me = self._me or str(self.client.me()["id"])
        after, nonce = (unit.prior[-1] if unit.prior else None), self.r.nonce(unit)
        found = [m for m in self.client.history(where, after=after, limit=100)
                 if str((m.get("author") or {}).get("id")) == author
                 and (m.get("nonce") == nonce or _same(m, self.r.payload(unit)))]
        return str(found[-1]["id"]) if found else None  # newest first: the oldest match

    def close(self) -> None:
        self.client.close()


class DiscordChannel:
    name = "discord"
    audience = "the Discord channel"
    ordered = True

    def __init__(self, cfg: Config, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 environ: dict[str, str] | None = None):
        self.cfg, self.clock = cfg, clock
        d = cfg.discord
        # A setup problem is not raised here: the registry makes every enabled channel for every week, and a bad
        # Discord variable must not stop email. It stops this channel instead (ChannelDown at open_sender): one
        # line in the log and in `paperbot publish`, every round, until it is fixed; the week waits for Discord.
        self.problem: str | None = None
        try:
            self.creds: Credentials | None = credentials_from_env(environ)
        except CredentialsError as e:
            self.creds, self.problem = None, f"discord: {e}"
        if self.creds and self.creds.bot_token and not self.creds.webhook_id and not d.channel_id:
            self.problem = f"discord: {TOKEN_ENV} is set but [discord] channel_id is not: say where to post"
        if self.creds and d.forum and not self.creds.webhook_id:
            self.problem = f"discord: forum = true needs a webhook of the forum channel ({WEBHOOK_ENV})"
        self.live = self.creds is not None or self.problem is not None  # meant to be live: never a trial
        # Whether a correction in the source edits the week's messages (the pipeline's correction round).
        self.corrects = self.live and self.problem is None and d.edit_on_correction
        self.limits = ChannelLimits(connections=1, rate=0.5 if self.live else 0.0, max_attempts=4, backoff=2.0,
                                    backoff_max=60.0, down_after=3)

    def _web_url(self, source: str, key: str) -> str | None:
        """The edition on the web, unless `[web] base_url` is this machine (nobody in Discord could open it)."""
        return None if urlsplit(self.cfg.web.base_url).hostname in _LOCAL else edition_url(self.cfg, source, key)

    def render(self, store: Store, week: WeekRow, *, dry: bool = False) -> DiscordRendition:
        edition = edition_from_store(store, week.source, week.key, self.name)
        try:
            payloads = compose(edition, self.cfg.discord, web_url=self._web_url(week.source, week.key),
                               credit=edition_credit(self.cfg.sources, edition))  # issue #16
        except ComposeError as e:  # a broken intro template: the operator's to fix, one line, nothing planned
            raise RenderError(f"discord: {e}") from e
        return DiscordRendition(week.source, week.key, edition, tuple(payloads))

    def plan(self, store: Store, week: WeekRow) -> Sequence[Unit]:
        return [Unit(key=f"message-{i + 1}", ref=str(i)) for i in range(len(self.render(store, week).payloads))]

    def prepare(self, rendition: DiscordRendition) -> None:
        pass

    def client(self) -> DiscordClient:
        d = self.cfg.discord
        assert self.creds is not None
        return DiscordClient(self.creds, api_base=d.api_base, timeout=d.timeout, max_wait=d.max_wait, clock=self.clock)

    def open_sender(self, rendition: DiscordRendition) -> _DiscordSender | _OutboxSender:
        if not self.live:
            return _OutboxSender(rendition, outbox_dir(self.cfg, rendition.source, rendition.key))
        if self.problem:
            raise ChannelDown(self.problem)
        return _DiscordSender(rendition, self.client(), self.cfg)

    def check(self) -> list[CheckResult]:
        """`paperbot check`: read the webhook (or, with a bot token, the channel) the way a send would reach
        it; nothing is posted."""
        if self.problem:
            return [CheckResult("discord", False, self.problem)]
        if self.creds is None:
            return [CheckResult("discord", True, f"no {WEBHOOK_ENV} or {TOKEN_ENV}: announcements go to the "
                                "outbox (a trial)", note=True)]
        client = self.client()
        try:
            if self.creds.webhook_id:
                where = f"the webhook works (posts to channel {client.webhook_channel()})"
            else:
                where = f"the bot can see channel {client.channel(self.cfg.discord.channel_id).get('name') or ''}"
        except (TransientError, PermanentError) as e:
            return [CheckResult("discord", False, str(e))]
        finally:
            client.close()
        return [CheckResult("discord", True, f"{self.cfg.discord.api_base}: {where}; nothing posted")]

    def edit(self, store: Store, week: WeekRow, message_ids: Sequence[str], now: datetime) -> list[Edit]:
        """After a correction of a week that went out (`[discord] edit_on_correction`): edit its messages, in
        ledger order `message_ids`, to what the week makes now (edit.py). Nothing unless enabled, or in a trial."""
        if not self.corrects:
            log.info("discord: %s:%s was corrected; its announcement is left as it is (%s)", week.source, week.key,
                     "edit_on_correction is off" if not self.cfg.discord.edit_on_correction
                     else self.problem or "not live")
            return []
        edition, client = self.render(store, week).edition, self.client()
        try:
            return edit_week(store, client, edition, self.cfg.discord, message_ids, now,
                             web_url=self._web_url(week.source, week.key),
                             credit=edition_credit(self.cfg.sources, edition))
        finally:
            client.close()

    def on_permanent(self, store: Store, unit: Unit, error: str, now: datetime) -> None:
        log.error("discord: %s was refused; the week's announcement stops there until the cause is fixed and the "
                  "unit retried (paperbot resolve): %s", unit.key, error)

    def _how(self) -> str:
        if self.problem:
            return f"nothing: {self.problem}"
        if self.creds is None:
            return f"outbox {self.cfg.state_dir / 'outbox' / 'discord'} (no {WEBHOOK_ENV} or {TOKEN_ENV}: a trial)"
        how = "webhook" + (" into a forum" if self.cfg.discord.forum else "") if self.creds.webhook_id else "bot"
        return how + (f", bot on channel {self.cfg.discord.channel_id}" if self.creds.bot_token else "")

    def preview(self, store: Store, week: WeekRow, out: Path | None) -> list[str]:
        r = self.render(store, week, dry=True)
        lines = [f"discord: {week.source}:{week.key}", f"  {len(r.payloads)} message(s); sending: {self._how()}"]
        for i, p in enumerate(r.payloads, 1):
            chars = sum(embed_length(e) for e in p["embeds"])
            lines.append(f"  message {i}: {len(p['embeds'])} embed(s), {chars} characters in embeds"
                         + (f"; post title: {p['thread_name']}" if p.get("thread_name") else ""))
            if p["content"]:
                lines.append(f"    {p['content'][:200]}")
            lines += [f"    - {e.get('title', '')[:120]}" for e in p["embeds"]]
        if out is not None:
            sender = _OutboxSender(r, out / "discord" / week.source / week.key)
            for i in range(len(r.payloads)):
                sender.send(Unit(key=f"message-{i + 1}", ref=str(i)))
            lines.append(f"  wrote {sender.folder}/001.json … {len(r.payloads):03d}.json")
        return lines
