"""`paperbot poll` and `paperbot run`: checking live sources once, or on a schedule.

Registered on the main `cli` group (bot/cli/common.py imports this module at its end).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

import click

from bot.cli.common import (
    _load,
    _parse_time,
    check_state_folder,
    clock,
    guard_shifted_clock,
    trial_marks,
    writing_store,
)
from bot.cli.publish import refuse_unfit
from bot.config import ConfigError
from bot.locks import LockBusy
from bot.sources.poll import PollResult, poll_source

log = logging.getLogger(__name__)


def _line(r: PollResult) -> str:
    if r.error:
        return f"{r.source}: error: {r.error}"
    parts = [f"{r.source}: {'changed' if r.changed else 'unchanged'}"]
    if r.changed:
        parts += [f"new: {', '.join(r.new) or '-'}", f"edited: {', '.join(r.edited) or '-'}"]
    parts += [f"pending: {', '.join(r.pending) or '-'}", f"ready: {', '.join(r.ready) or '-'}"]
    return "; ".join(parts)


@click.command()
@click.option("--source", "name", metavar="NAME", help="Only this source.")
@click.option("--now", "now_text", metavar="DATETIME",
              help="The clock for this poll (fetch time and release time); default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def poll(ctx: click.Context, name: str | None, now_text: str | None, as_json: bool) -> None:
    """Check each source once, record what changed, and print what is new, pending and ready.

    Exits with status 1 if any source failed (its error is recorded and printed).
    """
    cfg = _load(ctx)
    try:
        sources = [cfg.source(name)] if name else list(cfg.sources)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    if not sources:
        raise click.ClickException(f"{cfg.path or 'built-in config'}: no [[sources]] to poll")
    now = _parse_time(now_text, "--now") if now_text else datetime.now(UTC)
    if now_text:  # issue #25: never a shifted clock on a state folder holding real sends
        guard_shifted_clock(cfg, "--now", now)
    store = writing_store(cfg)
    try:
        results = [poll_source(store, cfg, s, now) for s in sources]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], ensure_ascii=False, indent=2))
    else:
        for r in results:
            click.echo(_line(r))
    if any(r.error for r in results):
        ctx.exit(1)


@click.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Watch every source on its interval until SIGTERM or Ctrl-C (the daemon; `make run`)."""
    cfg = _load(ctx)
    if not cfg.sources:
        raise click.ClickException(f"{cfg.path or 'built-in config'}: no [[sources]] to watch")
    refuse_unfit(cfg)  # the daemon publishes after each poll: not with an example `from` or base_url
    check_state_folder(cfg)
    root = logging.getLogger()
    if root.level > logging.INFO:  # a daemon says what it does unless asked for more
        root.setLevel(logging.INFO)
    log.info("config: %s", cfg.path or "built-in defaults")
    try:
        from bot.daemon import Daemon  # APScheduler and the web app load only for `run` (issue #29)

        with trial_marks(cfg):
            clean = Daemon(cfg, clock=clock(cfg)).run()
    except LockBusy as e:
        raise click.ClickException(f"another paperbot is already running on {cfg.state_dir}: {e}") from e
    log.info("stopped")
    if not clean:  # a worker thread is stuck in the network: do not wait for it at interpreter exit
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


COMMANDS = (poll, run)
