"""The publishing channels paperbot knows, and which of them a config enables."""

from __future__ import annotations

from bot.channels.base import Channel
from bot.config import Config

NAMES = ("email", "x", "discord")


def make(cfg: Config, name: str) -> Channel:
    if name == "email":
        from bot.channels.email.channel import EmailChannel

        return EmailChannel(cfg)
    if name == "x":
        from bot.channels.x.channel import XChannel

        return XChannel(cfg)
    if name == "discord":
        from bot.channels.discord.channel import DiscordChannel

        return DiscordChannel(cfg)
    raise ValueError(f"unknown channel {name!r}; known: {', '.join(NAMES)}")


def enabled(cfg: Config) -> list[str]:
    """Channels every ready week goes to. Email is always on: without smtp_url it writes to the outbox. X and
    Discord are on unless `[x] enabled = false` / `[discord] enabled = false`: without credentials each writes
    what it would send to the outbox (a trial)."""
    return ["email"] + (["x"] if cfg.x.enabled else []) + (["discord"] if cfg.discord.enabled else [])
