"""`paperbot approve` and `paperbot skip`: the editor's answer to weeks held by `[publish] approve = true`, by the
age guard (issue #21: `--held SOURCE` names every held week of a source at once), or waiting for the daily cap."""

from __future__ import annotations

import click

from bot import locks
from bot.channels.base import StorageError
from bot.cli.common import _load, clock
from bot.cli.publish import existing_store, refuse_unfit, resolve_week
from bot.publish import approval
from bot.publish.pipeline import lock_path, publish_week
from bot.store import Store, WeekRow
from bot.track.age import HELD

held_option = click.option("--held", "held_source", metavar="SOURCE",
                           help="Every week of SOURCE the age guard held (as many as there are), oldest first.")


def _targets(store: Store, weeks: tuple[str, ...], held_source: str | None) -> list[WeekRow]:
    """The weeks named, then every held week of `held_source`; each once, in that order."""
    if not weeks and held_source is None:
        raise click.UsageError("name at least one WEEK, or --held SOURCE")
    found = [resolve_week(store, w) for w in weeks]
    if held_source is not None:
        if store.source(held_source) is None:
            raise click.ClickException(f"no source {held_source!r} in the state database (see `paperbot status`)")
        held = store.weeks(held_source, state=HELD)
        if not held and not found:
            raise click.ClickException(f"{held_source} has no held week")
        found += held
    seen: set[tuple[str, str]] = set()
    return [w for w in found if (w.source, w.key) not in seen and not seen.add((w.source, w.key))]


@click.command()
@click.argument("weeks", nargs=-1, metavar="[WEEK]...")
@held_option
@click.pass_context
def approve(ctx: click.Context, weeks: tuple[str, ...], held_source: str | None) -> None:
    """Approve each WEEK (awaiting approval, held, or ready and waiting for the daily cap): it goes out now on
    every enabled channel (or at its send window), past the daily cap."""
    cfg = _load(ctx)
    refuse_unfit(cfg)
    now = clock(cfg)()
    reports = []
    with existing_store(cfg) as store:
        targets = _targets(store, weeks, held_source)
        for w in targets:  # every one checked before any is changed
            if w.state not in (approval.AWAITING, HELD, "ready"):
                raise click.ClickException(f"{w.source}:{w.key} is {w.state}, not awaiting approval or held")
        for w in targets:
            try:
                approval.approve(store, w, now)
            except ValueError as e:
                raise click.ClickException(str(e)) from e
            click.echo(f"{w.source}:{w.key} approved")
        try:
            fd = locks.acquire(lock_path(cfg))
        except locks.LockBusy:
            click.echo("a publish run is busy: it, or the daemon's next round, sends them")
            return
        try:
            for w in targets:
                reports += publish_week(cfg, store, store.week(w.source, w.key), now=now)
        except StorageError as e:
            raise click.ClickException(f"{e}; the daemon's next round sends them") from e
        finally:
            locks.release(fd)
    for r in reports:
        state = ("published" if r.published else "trial done (outbox)" if r.trial and r.done
                 else r.note or "not finished: see paperbot history")
        click.echo(f"  {r.source}:{r.key} {r.channel}: {state}" if len(reports) > 1 and len(targets) > 1
                   else f"  {r.channel}: {state}")


@click.command()
@click.argument("weeks", nargs=-1, metavar="[WEEK]...")
@held_option
@click.pass_context
def skip(ctx: click.Context, weeks: tuple[str, ...], held_source: str | None) -> None:
    """Reject each WEEK (awaiting approval, held, ready or pending): it is never sent, on any channel; history
    says so."""
    cfg = _load(ctx)
    with existing_store(cfg) as store:
        targets = _targets(store, weeks, held_source)
        for w in targets:  # every one checked before any is changed
            if w.state not in (approval.AWAITING, HELD, "ready", "pending"):
                raise click.ClickException(f"{w.source}:{w.key} is {w.state}: only a week awaiting approval, held, "
                                           "ready or pending can be skipped")
        try:
            fd = locks.acquire(lock_path(cfg))
        except locks.LockBusy as e:
            raise click.ClickException(f"{e}; run skip again when that publish run has ended") from e
        try:
            now = clock(cfg)()
            for w in targets:
                try:
                    note = approval.skip(cfg, store, w, now)
                except ValueError as e:
                    raise click.ClickException(str(e)) from e
                click.echo(f"{w.source}:{w.key} {note}")
        finally:
            locks.release(fd)


COMMANDS = (approve, skip)
