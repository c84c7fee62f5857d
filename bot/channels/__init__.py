"""The publishing channels paperbot knows, and which of them a config enables."""

from __future__ import annotations

from bot.channels.base import Channel
from bot.config import Config

NAMES = ("email", "x")


def make(cfg: Config, name: str) -> Channel:
    if name == "email":
        from bot.channels.email.channel import EmailChannel

        return EmailChannel(cfg)
    if name == "x":
        from bot.channels.x.channel import XChannel

        return XChannel(cfg)
    raise ValueError(f"unknown channel {name!r}; known: {', '.join(NAMES)}")


def enabled(cfg: Config) -> list[str]:
    """Channels every ready week goes to. Email is always on: without smtp_url it writes to the outbox. X is on
    unless `[x] enabled = false`: without credentials it writes the thread to the outbox."""
    return ["email"] + (["x"] if cfg.x.enabled else [])
