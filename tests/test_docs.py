"""Docs are part of the product: every CLI command and option, every config key and every environment variable
the code knows is documented in the docs pages (issue #26 moved the reference from the README into docs/: the
commands and options in docs/cli.md, the keys as `[section] key` rows of docs/config.md's tables, which may name
no key the code does not know), and the README stays a page a newcomer finishes."""

from __future__ import annotations

import re

import click
from conftest import ROOT

from bot import channels as registry
from bot import config
from bot.cli import cli

DOCS = ROOT / "docs"
CLI_PAGE = (DOCS / "cli.md").read_text(encoding="utf-8")
CONFIG_PAGE = (DOCS / "config.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_MAX_LINES = 250  # issue #26: a README a newcomer reads to the end


def _commands(group: click.Group, prefix: str = "paperbot") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix} {name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full)
    return out


def _code_keys() -> set[str]:
    """Every key the config code accepts, as the tables write it: `key`, `[section] key`, `[[sources]] key`."""
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
    return keys


def _config_rows() -> list[str]:
    """The first cell of each row of docs/config.md's key tables (the environment variables' table aside)."""
    keys_part = CONFIG_PAGE.split("\n## Environment variables", 1)[0]
    cells = [line.split("|")[1].strip() for line in keys_part.splitlines() if line.startswith("| `")]
    return [c.strip("`") for c in cells]


def test_every_cli_command_is_documented():
    missing = [c for c, _ in _commands(cli) if f"`{c}" not in CLI_PAGE]
    assert not missing, f"not in docs/cli.md: {missing}"


def test_every_command_has_help_for_the_generated_reference():
    """#26: docs/cli.md's reference is generated from the commands' help (sphinx-click): none may be empty."""
    assert ".. click:: bot.cli.main:cli" in CLI_PAGE and ":nested: full" in CLI_PAGE
    bare = [c for c, cmd in _commands(cli) if not (cmd.help or "").strip()]
    bare += [f"{c} {p.opts[0]}" for c, cmd in _commands(cli) for p in cmd.params
             if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not bare, f"no help text (the generated reference would show nothing): {bare}"


def test_every_option_of_every_command_is_documented():
    missing = []
    for name, cmd in _commands(cli):
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("--") and opt != "--help" and opt not in CLI_PAGE:
                    missing.append(f"{name} {opt}")
    assert not missing, missing


def test_every_config_key_is_documented_and_every_row_is_a_key():
    """#26: the configuration reference is checked against the code both ways: every key has its row, and no
    row documents a key the code would refuse."""
    code, rows = _code_keys(), _config_rows()
    missing = [k for k in sorted(code) if k not in rows]
    assert not missing, f"not in docs/config.md's configuration table: {missing}"
    unknown = [r for r in rows if r not in code]
    assert not unknown, f"docs/config.md documents keys the code does not know: {unknown}"
    repeated = sorted({r for r in rows if rows.count(r) > 1})
    assert not repeated, f"documented twice in docs/config.md: {repeated}"


def test_every_environment_variable_is_documented():
    """#26: every $PAPERBOT_* variable the code reads is in docs/config.md's table of environment variables."""
    used = {m for p in (ROOT / "bot").rglob("*.py")
            for m in re.findall(r'"(PAPERBOT_[A-Z_]+)"', p.read_text(encoding="utf-8"))}
    table = CONFIG_PAGE.split("\n## Environment variables", 1)[1]
    missing = sorted(v for v in used if f"`{v}`" not in table)
    assert not missing, f"not in docs/config.md's environment variables: {missing}"


def test_default_config_file_keys_are_all_known():
    # `paperbot init` writes DEFAULT_TOML: every key in it, commented out or not, is one the loader accepts in
    # the table it stands in (issue #14: it now writes every section).
    allowed = {"": config._TOP_KEYS, "publish": config._PUBLISH_KEYS, "sources": config._SOURCE_KEYS,
               "github": {"base_url"}, "fetch": config._FETCH_KEYS, "email": registry.SETTINGS["email"].KEYS,
               "web": config._WEB_KEYS, "alerts": config._ALERTS_KEYS, "health": config._HEALTH_KEYS,
               "arxiv": config._ARXIV_KEYS,
               **{name: registry.SETTINGS[name].KEYS for name in registry.NAMES}}  # #25: every section
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
               if opt.startswith("--") and opt not in ("--help", "--version") and opt not in CLI_PAGE]
    assert not missing, missing


def test_readme_is_short_and_links_resolve():
    """#26: at most 250 lines, and every relative link or image of the README names a file in the repository."""
    lines = README.count("\n")
    assert lines <= README_MAX_LINES, f"README.md is {lines} lines, more than {README_MAX_LINES}"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README) + re.findall(r'<img src="([^"]+)"', README)
    broken = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not broken, f"README.md links to missing files: {broken}"
