"""The `paperbot` group, and the one place where every command module is registered (no import cycle)."""

from __future__ import annotations

import logging
import sys

import click

from bot.cli import approval, note, publish, resolve, search, sources, tracker, web


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $PAPERBOT_CONFIG, else ./paperbot.toml, else built-in defaults).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="paperbot")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """paperbot: tracks weekly ML-paper digests and tells which weeks are new and ready."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


for _module in (tracker, sources, publish, resolve, approval, web, search, note):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(obj={})
