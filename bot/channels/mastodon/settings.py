"""`[mastodon]` (issue #31): the Mastodon channel's settings (keys, defaults, validation), read by the registry.

Imports no Mastodon library (Mastodon.py loads only when a thread is sent). The access token is never here: it
comes from $PAPERBOT_MASTODON_TOKEN (without it, a trial to the outbox).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.channels.windows import Window, parse_send_at
from bot.config.values import ConfigError, flag, http_url, line, parse_duration, table, unknown, whole

CHANNEL = "MastodonChannel"  # the class in bot/channels/mastodon/channel.py that the registry makes
KEYS = {"enabled", "instance", "timeout", "visibility", "language", "delay", "daily_budget", "hashtags", "head",
        "send_at"}
VISIBILITIES = ("public", "unlisted", "private")  # "direct" would mention people: never for a digest
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")  # ISO 639-1 (or -3), as Mastodon takes it
_HASHTAG = re.compile(r"^\w*[^\W\d_]\w*$")  # Mastodon: word characters, at least one letter


def normalize_hashtags(tags: object, where: str = "mastodon.hashtags") -> tuple[str, ...]:
    """`["ML", "#AI"]` → `("#ML", "#AI")`; ValueError naming a tag Mastodon would not make a hashtag."""
    if isinstance(tags, str) or not isinstance(tags, list | tuple):
        raise ValueError(f"{where}: must be a list of hashtags, e.g. [\"MachineLearning\"]")
    out = []
    for tag in tags:
        name = str(tag).strip().lstrip("#＃")
        if len(name) > 100 or not _HASHTAG.match(name):
            raise ValueError(f"{where}: {tag!r} is not a hashtag (letters, digits and _ only, one letter at least)")
        out.append("#" + name)
    return tuple(out)


@dataclass(frozen=True)
class MastodonSettings:
    """`[mastodon]`: a thread on a Mastodon account per week (bot/channels/mastodon/). The access token comes from
    $PAPERBOT_MASTODON_TOKEN only; without it (or without `instance`) each week is a trial in state/outbox/mastodon/."""

    enabled: bool = True  # without a token: a trial into state/outbox/mastodon/
    instance: str | None = None  # the account's server, e.g. "https://mastodon.social"
    timeout: float = 30.0  # seconds for every request to the instance
    visibility: str = "unlisted"  # etiquette: a bot posts unlisted unless the operator chooses public
    language: str = "en"  # the statuses' ISO 639 language
    delay: float = 2.0  # seconds between two statuses of a thread
    daily_budget: int = 0  # statuses per rolling 24 hours; 0 = none (the instance's 429s still hold)
    hashtags: tuple[str, ...] = ()  # the only hashtags ever posted, in the head status
    head: str | None = None  # the head status's Jinja2 template text; None: templates/mastodon_head.txt
    send_at: tuple[Window, ...] = ()  # send windows in the top-level timezone; () = as soon as ready


Settings = MastodonSettings


TOKEN_ENV = "PAPERBOT_MASTODON_TOKEN"


def live(settings: MastodonSettings, environ: Mapping[str, str]) -> bool:
    """Posting for real: a token set. Read without Mastodon.py (issue #29)."""
    return bool(environ.get(TOKEN_ENV, "").strip())


def enabled(settings: MastodonSettings) -> bool:
    """On unless `[mastodon] enabled = false`: without a token it writes what it would post to the outbox."""
    return settings.enabled


def parse(t: object, f: str) -> MastodonSettings:
    t = table(t, f"{f}: mastodon")
    unknown(f"{f}: [mastodon]", t, KEYS)
    d = MastodonSettings()
    instance = t.get("instance")
    if instance is not None:
        instance = http_url(instance, f"{f}: mastodon.instance").rstrip("/")
    timeout = parse_duration(t.get("timeout", "30s"), f"{f}: mastodon.timeout").total_seconds()
    if not 1 <= timeout <= 600:
        raise ConfigError(f"{f}: mastodon.timeout: {t['timeout']!r} must be from 1s to 10m")
    delay = parse_duration(t.get("delay", "2s"), f"{f}: mastodon.delay", (0, 3600)).total_seconds()
    visibility = line(t.get("visibility", d.visibility), f"{f}: mastodon.visibility").strip().lower()
    if visibility not in VISIBILITIES:
        raise ConfigError(f"{f}: mastodon.visibility: {visibility!r} must be one of {', '.join(VISIBILITIES)}")
    language = line(t.get("language", d.language), f"{f}: mastodon.language").strip().lower()
    if not _LANGUAGE.match(language):
        raise ConfigError(f"{f}: mastodon.language: {language!r} must be an ISO 639 code such as \"en\"")
    head = t.get("head")
    if head is not None:
        import jinja2  # here, beside the one key that needs it: the registry stays quick to import

        if not isinstance(head, str) or not head.strip():
            raise ConfigError(f"{f}: mastodon.head: must be the head status's template text")
        try:
            jinja2.Environment().parse(head)
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"{f}: mastodon.head: line {e.lineno}: {e.message}") from e
    try:
        hashtags = normalize_hashtags(t.get("hashtags", []), f"{f}: mastodon.hashtags")
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return MastodonSettings(
        enabled=flag(t.get("enabled", d.enabled), f"{f}: mastodon.enabled"),
        instance=instance, timeout=timeout, visibility=visibility, language=language, delay=delay,
        daily_budget=whole(t.get("daily_budget", d.daily_budget), f"{f}: mastodon.daily_budget", 0, 100_000),
        hashtags=hashtags, head=head,
        send_at=parse_send_at(t.get("send_at", ()), f"{f}: mastodon.send_at"),
    )
