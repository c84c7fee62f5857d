"""The publishing channels paperbot knows, and which of them a config enables."""

from __future__ import annotations

from ..config import Config
from .base import Channel

NAMES = ("email",)


def make(cfg: Config, name: str) -> Channel:
    if name == "email":
        from .email import EmailChannel

        return EmailChannel(cfg)
    raise ValueError(f"unknown channel {name!r}; known: {', '.join(NAMES)}")


def enabled(cfg: Config) -> list[str]:
    """Channels every ready week goes to. Email is always on: without smtp_url it writes to the outbox."""
    return ["email"]
