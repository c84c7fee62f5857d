"""`[x]`: the X channel's settings (keys, defaults, validation), read by the channel registry.

Imports no X library (tweepy loads only when a thread is sent). Credentials come from PAPERBOT_X_* only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2

from bot.channels.windows import Window, parse_send_at
from bot.config.values import ConfigError, flag, http_url, parse_duration, table, unknown, whole

CHANNEL = "XChannel"  # the class in bot/channels/x/channel.py that the registry makes
KEYS =  {"enabled", "api_base", "timeout", "daily_budget", "delay", "replies", "head", "hashtags", "extra_link",
           "send_at"}

_HASHTAG = re.compile(r"^\w{1,100}$")


def normalize_hashtags(tags: object, where: str = "x.hashtags") -> tuple[str, ...]:
    """`["ML", "#AI"]` → `("#ML", "#AI")`; ValueError naming a tag X would not make a hashtag."""
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise ValueError(f"{where}: must be a list of hashtags, e.g. [\"ML\", \"AI\"]")
    out = []
    for tag in tags:
        name = str(tag).strip().lstrip("#＃")
        if not _HASHTAG.match(name) or name.isdigit():
            raise ValueError(f"{where}: {tag!r} is not a hashtag (letters, digits and _ only, not all digits)")
        out.append("#" + name)
    return tuple(out)


@dataclass(frozen=True)
class XSettings:
    """The `[x]` table: a thread on X per week (bot/channels/x/). Credentials come from PAPERBOT_X_* only."""

    enabled: bool = True  # without credentials: a trial into state/outbox/x/
    api_base: str = "https://api.twitter.com"
    timeout: float = 30.0  # seconds for every request to X
    daily_budget: int = 17  # posts per rolling 24 hours (the free tier's user limit; X bills per post)
    delay: float = 2.0  # seconds between two posts of a thread
    replies: bool = True  # False: each paper is its own post linking to the head (an account that cannot thread)
    head: str | None = None  # the head post's Jinja2 template text; None: templates/x_head.txt
    hashtags: tuple[str, ...] = ()
    extra_link: bool = False  # one more link per paper (its code, say) when it fits
    send_at: tuple[Window, ...] = ()  # send windows in the top-level timezone; () = as soon as ready


Settings = XSettings


ENV_VARS = ("PAPERBOT_X_CONSUMER_KEY", "PAPERBOT_X_CONSUMER_SECRET",
            "PAPERBOT_X_ACCESS_TOKEN", "PAPERBOT_X_ACCESS_TOKEN_SECRET")


def live(settings: XSettings, environ: Mapping[str, str]) -> bool:
    """Posting for real: any PAPERBOT_X_* variable set (a half-set one is live and fails loudly, never a trial).
    Read without importing tweepy (issue #29)."""
    return any(environ.get(name, "").strip() for name in ENV_VARS)


def enabled(settings: XSettings) -> bool:
    """On unless `[x] enabled = false`: without credentials it writes what it would post to the outbox."""
    return settings.enabled


def parse(t: object, f: str) -> XSettings:
    t = table(t, f"{f}: x")
    unknown(f"{f}: [x]", t, KEYS)
    d = XSettings()
    timeout = parse_duration(t.get("timeout", "30s"), f"{f}: x.timeout").total_seconds()
    if not 1 <= timeout <= 600:
        raise ConfigError(f"{f}: x.timeout: {t['timeout']!r} must be from 1s to 10m")
    delay = parse_duration(t.get("delay", "2s"), f"{f}: x.delay", (0, 3600)).total_seconds()
    head = t.get("head")
    if head is not None:
        if not isinstance(head, str) or not head.strip():
            raise ConfigError(f"{f}: x.head: must be the head post's template text")
        try:
            jinja2.Environment().parse(head)
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"{f}: x.head: line {e.lineno}: {e.message}") from e
    try:
        hashtags = normalize_hashtags(t.get("hashtags", []), f"{f}: x.hashtags")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return XSettings(
        enabled=flag(t.get("enabled", d.enabled), f"{f}: x.enabled"),
        api_base=http_url(t.get("api_base", d.api_base), f"{f}: x.api_base").rstrip("/"),
        timeout=timeout,
        daily_budget=whole(t.get("daily_budget", d.daily_budget), f"{f}: x.daily_budget", 1, 100_000),
        delay=delay,
        replies=flag(t.get("replies", d.replies), f"{f}: x.replies"),
        head=head, hashtags=hashtags,
        extra_link=flag(t.get("extra_link", d.extra_link), f"{f}: x.extra_link"),
        send_at=parse_send_at(t.get("send_at", ()), f"{f}: x.send_at"),
    )
