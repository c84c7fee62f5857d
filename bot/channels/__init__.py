"""The channel registry: the publishing channels paperbot knows, the config joined with their tables, and which of
them a config enables.

A channel is a package `bot/channels/<name>/` and one entry in `NAMES`:
- `settings.py` owns its `[<name>]` table: `Settings` (a frozen dataclass of its keys and defaults), `parse(table,
  file)` (validation, errors naming the file and the key), `enabled(settings)` and `CHANNEL` (the class name in
  channel.py). It imports no channel library, so loading the config (`paperbot --help`, `status`) stays light.
- `channel.py` holds that class, which follows channels/base.py's `Channel`; it is imported only when a channel
  is made (`make`), so a channel's client library loads only when it is used.
bot/config/ reads the file, the top level and the sources and knows nothing of the channels; `Config` here is that
config with one more attribute per channel (`cfg.email`, `cfg.x`, `cfg.discord`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bot import config

if TYPE_CHECKING:
    from bot.channels.base import Channel

# in the order they publish; a new channel is one more name here
NAMES = ("email", "x", "discord", "bluesky", "mastodon")

SETTINGS: dict[str, ModuleType] = {name: importlib.import_module(f"bot.channels.{name}.settings") for name in NAMES}

Config = make_dataclass(
    "Config", [(name, m.Settings, field(default_factory=m.Settings)) for name, m in SETTINGS.items()],
    bases=(config.Config,), frozen=True)
Config.__module__ = __name__
Config.__doc__ = "The whole config: bot.config's settings and one table per channel, `cfg.<name>`."


def parse_config(data: dict, path: Path | None, base_dir: Path) -> config.Config:
    """bot.config's part of `data`, then each channel's table; ConfigError naming the file and the key."""
    core = config.parse_config(data, path, base_dir, NAMES)
    f = config.config_name(path)
    tables = {name: m.parse(data.get(name, {}), f) for name, m in SETTINGS.items()}
    return Config(**{fl.name: getattr(core, fl.name) for fl in fields(core)}, **tables)


def load_config(explicit: str | os.PathLike | None = None) -> config.Config:
    """The config from `--config PATH`, $PAPERBOT_CONFIG, ./paperbot.toml or the built-in defaults
    (bot.config's lookup order), every channel's table included."""
    data, path, base_dir = config.read_config(explicit)
    return parse_config(data, path, base_dir)


def make(cfg: config.Config, name: str) -> Channel:
    if name not in NAMES:
        raise ValueError(f"unknown channel {name!r}; known: {', '.join(NAMES)}")
    module = importlib.import_module(f"bot.channels.{name}.channel")
    return getattr(module, SETTINGS[name].CHANNEL)(cfg)


def live(cfg: config.Config, name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `name` sends for real (else a trial), from its settings and the environment alone: its client
    library is not imported (issue #29: `paperbot status` loads no channel library)."""
    settings = SETTINGS[name]
    if hasattr(settings, "live"):
        return bool(settings.live(getattr(cfg, name), os.environ if environ is None else environ))
    try:  # a channel whose settings.py has no `live`: built, its library loaded (give it one)
        return bool(make(cfg, name).live)
    except Exception:  # it cannot even be built (credentials half set): say so, as False
        return False


def enabled(cfg: config.Config) -> list[str]:
    """Channels every ready week goes to, each as its settings say. Email is always on: without smtp_url it writes
    to the outbox. X and Discord are on unless `[x] enabled = false` / `[discord] enabled = false`: without
    credentials each writes what it would send to the outbox (a trial)."""
    return [name for name in NAMES if SETTINGS[name].enabled(getattr(cfg, name))]
