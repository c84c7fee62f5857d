"""Discord's REST API through discord.py, failures classified for the pipeline (issue #12). No gateway
connection: a one-way announcement needs none. The timeout, the API base and the rate-limit decisions live in
transport.py, under discord.py.

- A webhook (`$PAPERBOT_DISCORD_WEBHOOK_URL`) goes through `discord.SyncWebhook`: `send(..., wait=True)` (with
  `thread_name` to open a forum post, or `thread` to post into it), `edit_message`, `fetch_message`.
- A bot token (`$PAPERBOT_DISCORD_BOT_TOKEN`) posts to `[discord] channel_id` and crossposts in an announcement
  channel. discord.py's own bot client (`discord.Client`, `discord.http.HTTPClient`) does not serve here: it is
  async (aiohttp: an event loop in every worker thread), it has no per-request timeout setting, its
  `max_ratelimit_timeout` cannot be set below 30 s (a 429 of 10 to 30 s would still be slept through, beyond
  `[discord] max_wait`), and it sleeps 1+3+5+7 s through 5xx answers. So bot requests go through the same
  synchronous request loop `SyncWebhook` uses, `discord.webhook.sync.WebhookAdapter.request` (a `Route`, a
  JSON payload, a bot token), over the same session and transport.
- A 404 (unknown webhook 10015, channel 10003, message 10008), 401 or 403 is `PermanentError` with a message
  saying what to fix; a 400 (50035: a limit) too. A request that went out without a usable answer (a 5xx, a
  read timeout, a dropped connection, an unreadable body) is `Uncertain` for a create (Discord may have stored
  the message: it does answer 500 after storing one, issue #21), `TransientError` for an edit or a read; one
  that provably never left (connection refused, connect timeout) is `TransientError`. docs/channels.md has
  the whole table, channel by channel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import discord
import requests
from discord.webhook.sync import WebhookAdapter

from bot.channels.base import PermanentError, RateLimited, TransientError, Uncertain
from bot.channels.discord.transport import (
    DEFAULT_API_BASE,
    DEFAULT_RETRY,
    LOUD_LOGGERS,
    TOKEN_ENV,
    WEBHOOK_ENV,
    Credentials,
    Redact,
    ServerError,
    Transport,
    never_left,
    seconds,
    set_api_base,
)

log = logging.getLogger(__name__)

ALREADY_CROSSPOSTED = 40033


def _mentions(d: Mapping) -> discord.AllowedMentions:
    """A payload's `allowed_mentions` as discord.py's object (whose `to_dict` gives the same dict back)."""
    parse = set(d.get("parse") or ())
    roles = [discord.Object(int(r)) for r in d.get("roles") or ()] or "roles" in parse
    users = [discord.Object(int(u)) for u in d.get("users") or ()] or "users" in parse
    return discord.AllowedMentions(everyone="everyone" in parse, users=users, roles=roles,
                                   replied_user=bool(d.get("replied_user")))


def _explain(e: discord.HTTPException) -> str:
    code = f", code {e.code}" if e.code else ""
    hint = {10015: "the webhook was deleted: make a new one and set " + WEBHOOK_ENV,
            10003: "the channel was deleted, or the bot cannot see it: check [discord] channel_id",
            10008: "the message was deleted", 50027: "the webhook's token is not valid: set " + WEBHOOK_ENV + " again",
            50001: "the bot cannot see the channel: give it View Channel there",
            50013: "the bot lacks a permission: Send Messages, Embed Links (Manage Messages for a webhook's)",
            50035: "Discord refused the message's form (a limit)"}.get(e.code, "")
    if not hint and e.status == 401:
        hint = "the bot token is not valid: set " + TOKEN_ENV + " again"
    text = re.sub(r"\s+", " ", e.text or "")[:300]
    return f"{e.status} {e.response.reason or ''}{code}: {text}".strip() + (f" ({hint})" if hint else "")


class DiscordClient:
    """One worker's connection to Discord (a webhook, a bot token, or both). Not shared between threads."""

    def __init__(self, creds: Credentials, *, api_base: str = DEFAULT_API_BASE, timeout: float = 30.0,
                 max_wait: float = 10.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.creds, self.clock = creds, clock
        set_api_base(api_base)
        self.session = requests.Session()
        self.transport = Transport(timeout, max_wait, clock, creds.redact)
        self.session.mount("https://", self.transport)
        self.session.mount("http://", self.transport)
        self.webhook = (discord.SyncWebhook.partial(creds.webhook_id, creds.webhook_token, session=self.session)
                        if creds.webhook_id and creds.webhook_token else None)
        self._adapter = WebhookAdapter()
        self._filter = Redact(creds)
        for name in LOUD_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)

    def close(self) -> None:
        self.session.close()
        for name in LOUD_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)

    def _call(self, what: str, fn: Callable, *, creates: bool = False):
        """Run one discord.py call; every failure comes out as the pipeline's outcome, secrets redacted."""
        r = self.creds.redact
        try:
            return fn()
        except RateLimited:
            raise
        except ServerError as e:
            if creates:
                raise Uncertain(f"{r(e)} (it may have been posted)") from None
            raise TransientError(r(e)) from None
        except (TransientError, PermanentError) as e:
            raise type(e)(r(e)) from None
        except discord.HTTPException as e:
            if e.status == 429:  # after discord.py's own tries, or without Via (the transport takes most)
                wait = seconds(e.response.headers.get("Retry-After")) or DEFAULT_RETRY
                until = self.clock() + timedelta(seconds=wait)
                raise RateLimited(f"discord: {what}: rate limited (429)", until) from None
            if e.status >= 500:
                message = f"discord: {what}: {r(_explain(e))}"
                raise (Uncertain(message + " (it may have been posted)") if creates else TransientError(message)) \
                    from None
            raise PermanentError(f"discord: {what}: {r(_explain(e))}") from None
        except requests.exceptions.RequestException as e:
            message = f"discord: {what}: {type(e).__name__}: {r(e)}"
            if creates and not never_left(e):
                raise Uncertain(message + " (the request went out; it may have been posted)") from None
            raise TransientError(message) from None
        except ValueError as e:  # an answer that is not the JSON Discord sends
            message = f"discord: {what}: unreadable answer: {r(e)}"
            raise (Uncertain(message) if creates else TransientError(message)) from None

    # -- webhook ---------------------------------------------------------------------------------------------
    def _hook(self) -> discord.SyncWebhook:
        if self.webhook is None:
            raise PermanentError(f"discord: no webhook ({WEBHOOK_ENV} is not set)")
        return self.webhook

    def webhook_channel(self) -> str:
        """The channel id the webhook posts to (GET /webhooks/{id}/{token}): `paperbot check`, nothing posted."""
        hook = self._call("read the webhook", lambda: self._hook().fetch())
        return str(hook.channel_id)

    def execute(self, payload: Mapping, *, thread_id: str | None = None) -> tuple[str, str]:
        """Post `payload` through the webhook (`thread_name` in it opens a forum post; `thread_id` posts into
        one) and wait for the message: (its id, its channel's id, which for a new forum post is the post's)."""
        kwargs = {"content": payload.get("content", ""), "wait": True,
                  "embeds": [discord.Embed.from_dict(e) for e in payload.get("embeds") or ()],
                  "allowed_mentions": _mentions(payload["allowed_mentions"])}
        if payload.get("thread_name"):
            kwargs["thread_name"] = payload["thread_name"]
        if thread_id:
            kwargs["thread"] = discord.Object(int(thread_id))
        msg = self._call("webhook execute", lambda: self._hook().send(**kwargs), creates=True)
        return str(msg.id), str(msg.channel.id)

    def edit(self, message_id: str, payload: Mapping, *, thread_id: str | None = None) -> None:
        """Replace a webhook message's content and embeds with `payload`'s (`thread_name` cannot change)."""
        kwargs = {"content": payload.get("content", ""), "allowed_mentions": _mentions(payload["allowed_mentions"]),
                  "embeds": [discord.Embed.from_dict(e) for e in payload.get("embeds") or ()]}
        if thread_id:
            kwargs["thread"] = discord.Object(int(thread_id))
        self._call("webhook edit", lambda: self._hook().edit_message(int(message_id), **kwargs))

    def fetch(self, message_id: str, *, thread_id: str | None = None) -> dict:
        """A message the webhook posted, as Discord has it now (content, embeds)."""
        kw = {"thread": discord.Object(int(thread_id))} if thread_id else {}
        msg = self._call("webhook fetch", lambda: self._hook().fetch_message(int(message_id), **kw))
        return {"content": msg.content, "embeds": [e.to_dict() for e in msg.embeds]}

    # -- bot token ---------------------------------------------------------------------------------------------
    def _bot(self, what: str, route: discord.http.Route, *, payload: Mapping | None = None,
             params: dict | None = None, creates: bool = False):
        if not self.creds.bot_token:
            raise PermanentError(f"discord: no bot token ({TOKEN_ENV} is not set)")
        return self._call(what, lambda: self._adapter.request(route, self.session, payload=payload, params=params,
                                                              auth_token=self.creds.bot_token), creates=creates)

    def post(self, channel_id: int | str, payload: Mapping, *, nonce: str | None = None) -> str:
        """Post `payload` in a channel as the bot; the message's id. With `nonce`, Discord itself returns the
        first message instead of making a second one when the same nonce comes again within minutes."""
        body = {k: v for k, v in payload.items() if k != "thread_name"}
        if nonce:
            body.update(nonce=nonce, enforce_nonce=True)
        route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
        return str(self._bot("post", route, payload=body, creates=True)["id"])

    def crosspost(self, channel_id: int | str, message_id: str) -> None:
        """Publish a message of an announcement channel to the channels following it (once is enough)."""
        route = discord.http.Route("POST", "/channels/{channel_id}/messages/{message_id}/crosspost",
                                   channel_id=channel_id, message_id=message_id)
        try:
            self._bot("crosspost", route)
        except PermanentError as e:
            if f"code {ALREADY_CROSSPOSTED}" not in str(e):
                raise

    def edit_post(self, channel_id: int | str, message_id: str, payload: Mapping) -> None:
        route = discord.http.Route("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=channel_id,
                                   message_id=message_id)
        body = {k: payload[k] for k in ("content", "embeds", "allowed_mentions") if k in payload}
        self._bot("edit", route, payload=body)

    def channel(self, channel_id: int | str) -> dict:
        return self._bot("channel", discord.http.Route("GET", "/channels/{channel_id}", channel_id=channel_id))

    def me(self) -> dict:
        return self._bot("who am I", discord.http.Route("GET", "/users/@me"))

    def history(self, channel_id: int | str, *, after: str | None = None, limit: int = 50) -> list[dict]:
        """A channel's messages (newest first), after `after` if given: what reconciling reads."""
        params = {"limit": limit, **({"after": after} if after else {})}
        route = discord.http.Route("GET", "/channels/{channel_id}/messages", channel_id=channel_id)
        return list(self._bot("history", route, params=params) or [])

    def message(self, channel_id: int | str, message_id: str) -> dict:
        route = discord.http.Route("GET", "/channels/{channel_id}/messages/{message_id}", channel_id=channel_id,
                                   message_id=message_id)
        return self._bot("fetch", route)
