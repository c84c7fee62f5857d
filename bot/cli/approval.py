"""`paperbot approve` and `paperbot skip`: the editor's answer to a week held by `[publish] approve = true`."""

from __future__ import annotations

import click

from bot import locks
from bot.channels.base import StorageError
from bot.cli.common import _load, clock
from bot.cli.publish import existing_store, refuse_unfit, resolve_week
from bot.publish import approval
from bot.publish.pipeline import lock_path, publish_week


@click.command()
@click.argument("week", metavar="WEEK")
@click.pass_context
def approve(ctx: click.Context, week: str) -> None:
    """Approve WEEK (awaiting approval): it goes out now on every enabled channel (or at its send window)."""
    cfg = _load(ctx)
    refuse_unfit(cfg)
    now = clock()()
    with existing_store(cfg) as store:
        w = resolve_week(store, week)
        try:
            approval.approve(store, w, now)
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        click.echo(f"{w.source}:{w.key} approved")
        try:
            fd = locks.acquire(lock_path(cfg))
        except locks.LockBusy:
            click.echo("a publish run is busy: it, or the daemon's next round, sends it")
            return
        try:
            reports = publish_week(cfg, store, store.week(w.source, w.key), now=now)
        except StorageError as e:
            raise click.ClickException(f"{e}; the daemon's next round sends it") from e
        finally:
            locks.release(fd)
    for r in reports:
        state = ("published" if r.published else "trial done (outbox)" if r.trial and r.done
                 else r.note or "not finished: see paperbot history")
        click.echo(f"  {r.channel}: {state}")


@click.command()
@click.argument("week", metavar="WEEK")
@click.pass_context
def skip(ctx: click.Context, week: str) -> None:
    """Reject WEEK (awaiting approval, ready or pending): it is never sent, on any channel; history says so."""
    cfg = _load(ctx)
    with existing_store(cfg) as store:
        w = resolve_week(store, week)
        try:
            fd = locks.acquire(lock_path(cfg))
        except locks.LockBusy as e:
            raise click.ClickException(f"{e}; run skip again when that publish run has ended") from e
        try:
            note = approval.skip(cfg, store, w, clock()())
        except ValueError as e:
            raise click.ClickException(str(e)) from e
        finally:
            locks.release(fd)
    click.echo(f"{w.source}:{w.key} {note}")


COMMANDS = (approve, skip)
