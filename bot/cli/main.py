"""The `paperbot` group, and the one place where every command module is registered (no import cycle)."""

from __future__ import annotations

import logging

import click

from bot.cli import (
    approval,
    deploy,
    enrich,
    history,
    note,
    operator,
    publish,
    resolve,
    search,
    sources,
    tracker,
    tryout,
    web,
)
from bot.ops import logs
from bot.store.files import private_umask


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $PAPERBOT_CONFIG, else ./paperbot.toml, else built-in defaults).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--log-format", type=click.Choice(logs.FORMATS), default="text", show_default=True,
              help="Log lines as readable text or as one JSON object per line.")
@click.version_option(package_name="paperbot")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, log_format: str) -> None:
    """paperbot: tracks weekly ML-paper digests and tells which weeks are new and ready."""
    logs.configure(max(logging.WARNING - 10 * verbose, logging.DEBUG), log_format)
    private_umask()  # issue #24: every file written from here on is the owner's alone, whatever the umask
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


_MODULES = (tracker, sources, publish, history, resolve, approval, note, web, search, enrich, operator, deploy, tryout)
for _module in _MODULES:
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(obj={})
