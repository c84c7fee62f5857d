"""`paperbot serve` (the web app) and `paperbot subscribers ...` (the list the web app serves). Thin wrappers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from bot.channels.email import subscribers as subs
from bot.cli.common import _load
from bot.store import Store


@contextmanager
def _store(ctx: click.Context) -> Iterator[Store]:
    store = Store.open(_load(ctx).db_path)
    try:
        yield store
    finally:
        store.close()


def _now() -> datetime:
    return datetime.now(UTC)


@click.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the web app (unsubscribe links, editions in the browser) on [web] listen."""
    from bot.channels.email.tokens import SecretKeyError
    from bot.web.app import serve as run

    cfg = _load(ctx)
    host, port = cfg.web.host_port
    click.echo(f"serving on http://{host}:{port} (public address {cfg.web.base_url}); Ctrl-C stops", err=True)
    try:
        run(cfg)
    except SecretKeyError as e:
        raise click.ClickException(str(e)) from e
    except OSError as e:
        raise click.ClickException(f"cannot listen on {cfg.web.listen}: {e.strerror or e}") from e


@click.group()
def subscribers() -> None:
    """Manage the newsletter's subscribers."""


@subscribers.command("add")
@click.argument("address")
@click.pass_context
def add_cmd(ctx: click.Context, address: str) -> None:
    """Add ADDRESS as active (this also reactivates an unsubscribed or bounced address)."""
    with _store(ctx) as store:
        try:
            before = store.db.execute("SELECT state FROM subscribers WHERE address = ?",
                                      [subs.normalize_address(address)]).fetchone()
            sid = subs.add(store, address, origin="cli", now=_now())
        except subs.InvalidAddress as e:
            raise click.ClickException(f"not added: {e}") from e
    note = "" if not before else " (already active)" if before[0] == "active" else f" (was {before[0]})"
    click.echo(f"subscriber {sid}: {subs.normalize_address(address)} active{note}")


@subscribers.command("remove")
@click.argument("address")
@click.pass_context
def remove_cmd(ctx: click.Context, address: str) -> None:
    """Erase ADDRESS from the list completely (a later import could add it again)."""
    with _store(ctx) as store:
        try:
            gone = subs.remove(store, address)
        except subs.InvalidAddress as e:
            raise click.ClickException(str(e)) from e
    if not gone:
        raise click.ClickException(f"{address.strip()} is not on the list")
    click.echo(f"removed {subs.normalize_address(address)}")


@subscribers.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path(dir_okay=False, exists=True))
@click.pass_context
def import_cmd(ctx: click.Context, csv_file: str) -> None:
    """Add the addresses of a CSV file with a header row and an `email` column (optional `state`)."""
    with _store(ctx) as store:
        try:
            report = subs.import_csv(store, csv_file, now=_now())
        except (subs.CsvFormatError, UnicodeDecodeError) as e:
            raise click.ClickException(f"{csv_file}: {e}") from e
    for line, reason in report.rejected:
        click.echo(f"{csv_file}:{line}: rejected: {reason}", err=True)
    click.echo(f"added {report.added}, already there {report.already}, rejected {len(report.rejected)}")


@subscribers.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE instead of standard output.")
@click.pass_context
def export_cmd(ctx: click.Context, out: str | None) -> None:
    """Write every address with its state as CSV (`email,state`), the form `import` reads."""
    with _store(ctx) as store:
        n = subs.export_csv(store, out if out else sys.stdout)
    if out:
        click.echo(f"wrote {n} addresses to {out}", err=True)


@subscribers.command("list")
@click.option("--state", type=click.Choice(subs.STATES), help="Only addresses in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, state: str | None, as_json: bool) -> None:
    """List subscribers, oldest first."""
    with _store(ctx) as store:
        rows = subs.rows(store, state)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        why = f"  ({r['reason']})" if r["reason"] else ""
        click.echo(f"{r['id']:6d}  {r['state']:12s} {r['address']}  {r['origin']}{why}")
    if not rows:
        click.echo("no subscribers" + (f" in state {state}" if state else ""))


@subscribers.command("count")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def count_cmd(ctx: click.Context, as_json: bool) -> None:
    """How many addresses are in each state."""
    with _store(ctx) as store:
        counts = {s: subs.count(store, s) for s in subs.STATES}
        counts["total"] = subs.count(store)
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo("  ".join(f"{k} {v}" for k, v in counts.items()))


COMMANDS = (serve, subscribers)
