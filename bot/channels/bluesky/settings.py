"""`[bluesky]`: the Bluesky channel's settings (keys, defaults, validation), read by the channel registry.

Imports no network library. The handle and app password come from PAPERBOT_BLUESKY_HANDLE and
PAPERBOT_BLUESKY_APP_PASSWORD only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.channels.windows import Window, parse_send_at
from bot.config.values import ConfigError, flag, http_url, parse_duration, table, unknown

CHANNEL = "BlueskyChannel"  # the class in bot/channels/bluesky/channel.py that the registry makes
KEYS = {"enabled", "service", "timeout", "delay", "langs", "tags", "send_at"}

_TAG = re.compile(r"^[^\s#＃]{1,64}$")
_LANG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")  # a BCP 47 tag, as app.bsky.feed.post#langs wants


def normalize_tags(tags: object, where: str = "bluesky.tags") -> tuple[str, ...]:
    """`["ML", "#AI"]` → `("ML", "AI")` (a tag facet holds the tag without its `#`); ValueError naming a bad one."""
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise ValueError(f"{where}: must be a list of tags, e.g. [\"ML\", \"AI\"]")
    out = []
    for tag in tags:
        name = str(tag).strip().lstrip("#＃")
        if not _TAG.match(name) or name.isdigit():
            raise ValueError(f"{where}: {tag!r} is not a tag (1 to 64 characters, no spaces, not all digits)")
        out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class BlueskySettings:
    """The `[bluesky]` table: a thread on Bluesky per week (bot/channels/bluesky/)."""

    enabled: bool = True  # without credentials: a trial into state/outbox/bluesky/
    service: str = "https://bsky.social"  # the entryway (or the account's PDS) the XRPC calls go to
    timeout: float = 30.0  # seconds for every request
    delay: float = 1.0  # seconds between two posts of a thread
    langs: tuple[str, ...] = ("en",)  # each post's `langs`
    tags: tuple[str, ...] = ()  # tags on the head post, each a tag facet ("#ML")
    send_at: tuple[Window, ...] = ()  # send windows in the top-level timezone; () = as soon as ready


Settings = BlueskySettings


ENV_HANDLE, ENV_PASSWORD = "PAPERBOT_BLUESKY_HANDLE", "PAPERBOT_BLUESKY_APP_PASSWORD"
ENV_VARS = (ENV_HANDLE, ENV_PASSWORD)


def live(settings: BlueskySettings, environ: Mapping[str, str]) -> bool:
    """Posting for real: either variable set (a half-set one fails loudly, never a trial). Read without the
    channel's client (issue #29)."""
    return any(environ.get(name, "").strip() for name in ENV_VARS)


def enabled(settings: BlueskySettings) -> bool:
    """On unless `[bluesky] enabled = false`: without credentials it writes what it would post to the outbox."""
    return settings.enabled


def parse(t: object, f: str) -> BlueskySettings:
    t = table(t, f"{f}: bluesky")
    unknown(f"{f}: [bluesky]", t, KEYS)
    d = BlueskySettings()
    timeout = parse_duration(t.get("timeout", "30s"), f"{f}: bluesky.timeout").total_seconds()
    if not 1 <= timeout <= 600:
        raise ConfigError(f"{f}: bluesky.timeout: {t['timeout']!r} must be from 1s to 10m")
    delay = parse_duration(t.get("delay", "1s"), f"{f}: bluesky.delay", (0, 3600)).total_seconds()
    langs = t.get("langs", list(d.langs))
    if isinstance(langs, str) or not isinstance(langs, list) or not 1 <= len(langs) <= 3 or not all(
            isinstance(x, str) and _LANG.match(x) for x in langs):
        raise ConfigError(f"{f}: bluesky.langs: {langs!r} must be a list of 1 to 3 language tags, e.g. [\"en\"]")
    try:
        tags = normalize_tags(t.get("tags", []), f"{f}: bluesky.tags")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if len(tags) > 8:
        raise ConfigError(f"{f}: bluesky.tags: at most 8 tags (Bluesky's limit per post)")
    return BlueskySettings(
        enabled=flag(t.get("enabled", d.enabled), f"{f}: bluesky.enabled"),
        service=http_url(t.get("service", d.service), f"{f}: bluesky.service").rstrip("/"),
        timeout=timeout, delay=delay, langs=tuple(langs), tags=tags,
        send_at=parse_send_at(t.get("send_at", ()), f"{f}: bluesky.send_at"),
    )
