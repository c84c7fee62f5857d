"""Docs are part of the product: every CLI command and every config key appears in the README."""

from __future__ import annotations

import re

import click
from conftest import ROOT

from bot import config
from bot.cli import cli

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "paperbot") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix} {name}"
        out.append(full)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full)
    return out


def test_every_cli_command_is_documented():
    missing = [c for c in _commands(cli) if f"`{c}" not in README]
    assert not missing, f"not in README's command reference: {missing}"


def test_every_option_of_every_command_is_documented():
    missing = []
    for name, cmd in cli.commands.items():
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("--") and opt != "--help" and opt not in README:
                    missing.append(f"{name} {opt}")
    assert not missing, missing


def test_every_config_key_is_documented():
    keys = set(config._TOP_KEYS) - {"publish", "sources", "github", "email", "web", "fetch", "x", "discord"}
    keys |= {f"[publish] {k}" for k in config._PUBLISH_KEYS}
    keys |= {f"[[sources]] {k}" for k in config._SOURCE_KEYS}
    keys |= {f"[email] {k}" for k in config._EMAIL_KEYS}
    keys |= {f"[web] {k}" for k in config._WEB_KEYS}
    keys |= {f"[fetch] {k}" for k in config._FETCH_KEYS}
    keys |= {f"[x] {k}" for k in config._X_KEYS}
    keys |= {f"[discord] {k}" for k in config._DISCORD_KEYS}
    keys |= {"[github] base_url"}
    table = "\n".join(line for line in README.splitlines() if line.startswith("|"))
    missing = [k for k in sorted(keys) if f"`{k}`" not in table]
    assert not missing, f"not in README's configuration table: {missing}"


def test_default_config_file_keys_are_all_known():
    # `paperbot init` writes DEFAULT_TOML: every key in it must be one the loader accepts.
    for key in re.findall(r"^(\w+)\s*=", config.DEFAULT_TOML, re.MULTILINE):
        assert key in config._TOP_KEYS | config._PUBLISH_KEYS | config._SOURCE_KEYS | config._FETCH_KEYS | {"base_url"}
