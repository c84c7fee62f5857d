"""The publishing channels paperbot knows, and which of them a config enables."""

from __future__ import annotations

from bot.channels.base import Channel
from bot.config import Config

NAMES = ("email",)


def make(cfg: Config, name: str) -> Channel:
    if name == "email":
        from bot.channels.email.channel import EmailChannel

        return EmailChannel(cfg)
    raise ValueError(f"unknown channel {name!r}; known: {', '.join(NAMES)}")


def enabled(cfg: Config) -> list[str]:
    """Channels every ready week goes to. Email is always on: without smtp_url it writes to the outbox."""
    return ["email"]
