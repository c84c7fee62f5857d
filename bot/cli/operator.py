"""`paperbot status` and `paperbot check`: what the operator asks before and while paperbot runs.

`status` reads the state database (bot/ops/status.py); `check` runs the config checks (bot/ops/config_checks.py),
tries each source without recording anything (bot/sources/probe.py) and each channel's own `check()` (email:
the SMTP login, nothing sent). Both only read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from bot import channels as registry
from bot.cli.common import _load, _parse_time
from bot.ops.config_checks import CheckResult, config_results
from bot.ops.status import lines, status
from bot.sources.probe import probe
from bot.store import Store


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (shape in the README).")
@click.option("--now", "now_text", metavar="DATETIME", help="The clock to judge by (ISO 8601); default: now.")
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool, now_text: str | None) -> None:
    """Sources, weeks, channels and what comes next, at a glance (reads only)."""
    cfg = _load(ctx)
    now = _parse_time(now_text, "--now") if now_text else datetime.now(UTC)
    store = Store.open(cfg.db_path if cfg.db_path.exists() else None)  # none yet: an empty one in memory
    try:
        st = status(cfg, store, now)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(st, ensure_ascii=False, indent=2))
        return
    if not cfg.db_path.exists():
        click.echo(f"no state database at {cfg.db_path} yet: nothing polled (`paperbot poll` or `paperbot run`)")
    for line in lines(st):
        click.echo(line)


def _channel_results(cfg) -> list[CheckResult]:
    """Each enabled channel's own `check()` (a login, nothing sent); a channel without one is skipped."""
    out = []
    for name in registry.enabled(cfg):
        try:
            channel = registry.make(cfg, name)
        except Exception as e:  # half-set credentials, say: the channel says what is missing
            out.append(CheckResult(name, False, str(e)))
            continue
        check = getattr(channel, "check", None)
        if check is not None:
            out += check()
    return out


@click.command()
@click.option("--offline", is_flag=True, help="Only the config checks: no source, no SMTP server is tried.")
@click.pass_context
def check(ctx: click.Context, offline: bool) -> None:
    """Check the config, try each source and the SMTP login (nothing recorded, nothing sent).

    One line per check (`ok`, `FAIL`, or `note`); exits with status 1 if any check failed.
    """
    cfg = _load(ctx)
    results = config_results(cfg)
    for r in results:
        click.echo(r.line())
    if not offline:
        store = Store.open(cfg.db_path) if cfg.db_path.exists() else None
        if not cfg.sources:
            click.echo(CheckResult("sources", True, "none in the config: nothing to poll", note=True).line())
        try:
            for src in cfg.sources:
                r = probe(cfg, src, store)
                results.append(r)
                click.echo(r.line())
        finally:
            if store is not None:
                store.close()
        for r in _channel_results(cfg):
            results.append(r)
            click.echo(r.line())
    failed = [r for r in results if not r.ok and not r.note]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: " + ", ".join(r.what for r in failed))
    click.echo("all checks passed" + ("" if not offline else " (config only)"))


COMMANDS = (status_cmd, check)
