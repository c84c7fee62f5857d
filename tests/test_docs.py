"""Docs are part of the product: every CLI command and every config key appears in the README."""

from __future__ import annotations

import re

import click
from conftest import ROOT

from bot import channels as registry
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
    keys = set(config._TOP_KEYS) - {"publish", "sources", "github", "web", "fetch", "alerts", "health", "arxiv"}
    keys |= {f"[publish] {k}" for k in config._PUBLISH_KEYS}
    keys |= {f"[[sources]] {k}" for k in config._SOURCE_KEYS}
    keys |= {f"[web] {k}" for k in config._WEB_KEYS}
    keys |= {f"[fetch] {k}" for k in config._FETCH_KEYS}
    keys |= {f"[{name}] {k}" for name, settings in registry.SETTINGS.items() for k in settings.KEYS}  # #23
    keys |= {f"[alerts] {k}" for k in config._ALERTS_KEYS}
    keys |= {f"[health] {k}" for k in config._HEALTH_KEYS}  # issue #15
    keys |= {f"[arxiv] {k}" for k in config._ARXIV_KEYS}  # #32
    keys |= {"[github] base_url"}
    table = "\n".join(line for line in README.splitlines() if line.startswith("|"))
    missing = [k for k in sorted(keys) if f"`{k}`" not in table]
    assert not missing, f"not in README's configuration table: {missing}"


def test_default_config_file_keys_are_all_known():
    # `paperbot init` writes DEFAULT_TOML: every key in it, commented out or not, is one the loader accepts in
    # the table it stands in (issue #14: it now writes every section).
    allowed = {"": config._TOP_KEYS, "publish": config._PUBLISH_KEYS, "sources": config._SOURCE_KEYS,
               "github": {"base_url"}, "fetch": config._FETCH_KEYS, "email": registry.SETTINGS["email"].KEYS,
               "web": config._WEB_KEYS, "alerts": config._ALERTS_KEYS, "arxiv": config._ARXIV_KEYS}
    table, seen = "", set()
    for line in config.DEFAULT_TOML.splitlines():
        if m := re.match(r"^#? ?\[+(\w+)\]+", line):
            table = m.group(1)
            seen.add(table)
        elif m := re.match(r"^#? ?(\w+)\s*=", line):
            assert m.group(1) in allowed[table], f"[{table}] {m.group(1)}"
    assert seen == set(allowed) - {""}


def test_global_options_are_documented():
    missing = [opt for p in cli.params for opt in getattr(p, "opts", [])
               if opt.startswith("--") and opt not in ("--help", "--version") and opt not in README]
    assert not missing, missing
