"""`paperbot serve` (the web app) and `paperbot subscribers ...` (the list the web app serves). Thin wrappers."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from bot import locks
from bot.channels.email import subscribers as subs
from bot.cli.common import _load, trial_marks, writing_store
from bot.store import Store
from bot.web.ports import in_use, taken_message


@contextmanager
def _store(ctx: click.Context) -> Iterator[Store]:
    store = writing_store(_load(ctx))  # issue #25: never a throwaway ./state in another folder
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
    from bot.web.server import serve as run

    cfg = _load(ctx)
    host, port = cfg.web.host_port
    pid = locks.holder(cfg.state_dir / "paperbot.lock")
    if pid is not None:  # a daemon on this state folder: its web thread serves [web] listen already
        who = f"`paperbot run` (pid {pid})" if pid else "`paperbot run`"
        if port and not _can_listen(host, port):
            raise click.ClickException(f"{who} is running on {cfg.state_dir} and already serves the web app on "
                                       f"{cfg.web.listen}: `paperbot serve` is only needed without it")
        click.echo(f"note: {who} is running on {cfg.state_dir} but its web app is not on {cfg.web.listen} "
                   "(see its log); serving it here", err=True)
    if port:
        click.echo(f"serving on http://{host}:{port} (public address {cfg.web.base_url}); Ctrl-C stops", err=True)
    else:  # listen ":0": the log line says which port was picked
        click.echo(f"serving on a free port of {host} (the next line says which); Ctrl-C stops", err=True)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    try:
        with trial_marks(cfg):
            run(cfg)
    except SecretKeyError as e:
        raise click.ClickException(str(e)) from e
    except OSError as e:
        if in_use(e):  # issue #25: name the process in the way
            raise click.ClickException(taken_message(cfg.web.listen, port)) from e
        raise click.ClickException(f"cannot listen on {cfg.web.listen}: {e.strerror or e}") from e


def _can_listen(host: str, port: int) -> bool:
    """Whether a listening socket could be opened on host:port now (SO_REUSEADDR, as aiohttp's, so only a
    listener there says no). A name that does not resolve says yes: the real bind then reports it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return True
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError:
            return False
    return True


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
            before = subs.state_of(store, address)
            sid = subs.add(store, address, origin="cli", now=_now())
        except subs.InvalidAddress as e:
            raise click.ClickException(f"not added: {e}") from e
        name = store.db.execute("SELECT name FROM subscribers WHERE id = ?", [sid]).fetchone()[0]
    note = "" if not before else " (already active)" if before == "active" else f" (was {before})"
    shown = subs.normalize_address(address)
    where = _load(ctx).state_dir
    click.echo(f"subscriber {sid}: {f'{name} <{shown}>' if name else shown} active{note} (state folder {where})")


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
    """Add the addresses of a CSV file with a header row and an `email` column (optional `name`, `state`)."""
    with _store(ctx) as store:
        try:
            report = subs.import_csv(store, csv_file, now=_now())
        except (subs.CsvFormatError, UnicodeDecodeError) as e:
            raise click.ClickException(f"{csv_file}: {e}") from e
    for line, reason in report.rejected:
        click.echo(f"{csv_file}:{line}: rejected: {reason}", err=True)
    click.echo(f"added {report.added}, already there {report.already}, "
               f"rejected {len(report.rejected)} (state folder {_load(ctx).state_dir})")


@subscribers.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE instead of standard output.")
@click.pass_context
def export_cmd(ctx: click.Context, out: str | None) -> None:
    """Write every address with its name and state as CSV (`email,name,state`), the form `import` reads."""
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
        who = f"{r['name']} <{r['address']}>" if r.get("name") else r["address"]
        click.echo(f"{r['id']:6d}  {r['state']:12s} {who}  {r['origin']}{why}")
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
