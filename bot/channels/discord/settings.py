"""`[discord]` (issue #12): the Discord channel's settings (keys, defaults, validation), read by the registry.

Imports no Discord library (discord.py loads only when a message is sent). The webhook URL and the bot token are
never here: they come from $PAPERBOT_DISCORD_WEBHOOK_URL and $PAPERBOT_DISCORD_BOT_TOKEN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.channels.windows import Window, parse_send_at
from bot.config.values import ConfigError, http_url, line, parse_duration, short, table, unknown

CHANNEL = "DiscordChannel"  # the class in bot/channels/discord/channel.py that the registry makes
KEYS = {"enabled", "api_base", "timeout", "max_wait", "channel_id", "role_id", "forum", "thread_name",
                 "edit_on_correction", "intro", "send_at"}
DISCORD_FIELDS = ("title", "dates", "key", "source", "papers")  # what `thread_name` may hold, as {name}
_SNOWFLAKE = re.compile(r"[0-9]{17,20}")  # a Discord id: 17 to 20 digits
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class DiscordSettings:
    """`[discord]` (issue #12). The webhook URL and the bot token are never here: they come from
    $PAPERBOT_DISCORD_WEBHOOK_URL and $PAPERBOT_DISCORD_BOT_TOKEN (without either, a trial to the outbox)."""

    enabled: bool = True  # like [x]: without credentials a trial to the outbox, so a new user sees real output
    api_base: str = "https://discord.com/api/v10"  # discord.py's Route.BASE: a compatible server, or a test's
    timeout: float = 30.0  # seconds for one request (connect, and then each read)
    max_wait: float = 10.0  # a 429 asking to wait longer ends the run as rate-limited-until instead
    channel_id: int | None = None  # with a bot token: the channel to post in
    role_id: int | None = None  # pinged by the intro line, the only mention ever allowed
    forum: bool = False  # the webhook posts into a forum channel: one post per week
    thread_name: str = "{title} ({dates})"  # a forum post's title; fields as in DISCORD_FIELDS
    edit_on_correction: bool = False  # a correction in the source edits the week's messages
    intro: str = ""  # a Jinja2 template of the intro line; "" = templates/discord_intro.txt
    send_at: tuple[Window, ...] = ()  # send windows in the top-level timezone; () = as soon as ready


Settings = DiscordSettings


WEBHOOK_ENV, TOKEN_ENV = "PAPERBOT_DISCORD_WEBHOOK_URL", "PAPERBOT_DISCORD_BOT_TOKEN"


def live(settings: DiscordSettings, environ: Mapping[str, str]) -> bool:
    """Meant to be live (never a trial): a webhook or a bot token set, even an unusable one. Read without
    importing discord.py (issue #29)."""
    return bool(environ.get(WEBHOOK_ENV, "").strip() or environ.get(TOKEN_ENV, "").strip())


def enabled(settings: DiscordSettings) -> bool:
    """On unless `[discord] enabled = false`: without credentials a trial to the outbox."""
    return settings.enabled


def _snowflake(value: object, where: str) -> int:
    """A Discord id (channel, role), as a TOML integer or a string of digits (what "Copy ID" gives)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _SNOWFLAKE.fullmatch(text.strip()):
        raise ConfigError(f"{where}: {short(value)} must be a Discord id, 17 to 20 digits "
                          "(Discord: Developer Mode on, then Copy ID)")
    return int(text.strip())


def parse(t: object, f: str) -> DiscordSettings:
    import jinja2  # here, beside the one key that needs it: the registry stays quick to import

    t = table(t, f"{f}: discord")
    unknown(f"{f}: [discord]", t, KEYS)
    d = DiscordSettings()
    for key in ("enabled", "forum", "edit_on_correction"):
        if key in t and not isinstance(t[key], bool):
            raise ConfigError(f"{f}: discord.{key}: must be true or false")
    api_base = http_url(t.get("api_base", d.api_base), f"{f}: discord.api_base").rstrip("/")
    timeout = parse_duration(t.get("timeout", "30s"), f"{f}: discord.timeout", (1, 300)).total_seconds()
    max_wait = parse_duration(t.get("max_wait", "10s"), f"{f}: discord.max_wait", (0, 300)).total_seconds()
    channel_id = _snowflake(t["channel_id"], f"{f}: discord.channel_id") if "channel_id" in t else None
    role_id = _snowflake(t["role_id"], f"{f}: discord.role_id") if "role_id" in t else None
    name = line(t.get("thread_name", d.thread_name), f"{f}: discord.thread_name").strip()
    bad = [m for m in _FIELD.findall(name) if m not in DISCORD_FIELDS]
    if not name or len(name) > 200 or bad:
        raise ConfigError(f"{f}: discord.thread_name: {short(name)} must be 1 to 200 characters with fields "
                          f"from {', '.join('{' + x + '}' for x in DISCORD_FIELDS)}"
                          + (f" (unknown: {{{bad[0]}}})" if bad else ""))
    intro = t.get("intro", d.intro)
    if not isinstance(intro, str) or len(intro) > 4000:
        raise ConfigError(f"{f}: discord.intro: must be a Jinja2 template of at most 4000 characters")
    try:
        jinja2.Environment().parse(intro)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"{f}: discord.intro: line {e.lineno} of the template: {e.message}") from None
    return DiscordSettings(enabled=t.get("enabled", d.enabled), api_base=api_base, timeout=timeout,
                           max_wait=max_wait, channel_id=channel_id, role_id=role_id, forum=t.get("forum", d.forum),
                           thread_name=name, edit_on_correction=t.get("edit_on_correction", d.edit_on_correction),
                           intro=intro, send_at=parse_send_at(t.get("send_at", ()), f"{f}: discord.send_at"))
