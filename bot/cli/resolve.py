"""`paperbot resolve`: the operator settles a unit of a chain (a post on X) that paperbot could not settle itself."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bot import channels as registry
from bot import locks
from bot.cli.common import _load
from bot.cli.publish import existing_store, resolve_week
from bot.publish import ledger
from bot.publish.pipeline import lock_path


@click.command()
@click.argument("week", metavar="WEEK")
@click.option("--channel", "channel", type=click.Choice(registry.NAMES), required=True,
              help="The channel whose unit to settle (x, discord, bluesky, mastodon).")
@click.option("--unit", "number", type=click.IntRange(min=1), required=True,
              help="The unit's number in the chain, as `paperbot history WEEK` shows it (1 = the first post).")
@click.option("--posted", "posted", metavar="ID", default=None,
              help="It did go out: record it as sent with this remote id (the post's id on X, its at:// URI on "
                   "Bluesky, the status's id on Mastodon), and the chain goes on from it.")
@click.option("--retry", "retry", is_flag=True, help="It did not go out: send it again at the next publish run.")
@click.pass_context
def resolve(ctx: click.Context, week: str, channel: str, number: int, posted: str | None, retry: bool) -> None:
    """Settle unit N of WEEK on a chain channel that is `uncertain` or `refused`: it went out as ID
    (`--posted ID`), or send it again (`--retry`). Look on the account first: a resend is public."""
    if (posted is None) == (not retry):
        raise click.UsageError("say either --posted ID (it went out) or --retry (send it again)")
    if posted is not None and (not posted.strip().isdigit() and channel == "x"):
        raise click.UsageError(f"--posted {posted!r}: a post id on X is a number, as in x.com/<user>/status/<ID>")
    if posted is not None and channel == "bluesky" and not posted.strip().startswith("at://"):
        raise click.UsageError(f"--posted {posted!r}: a post on Bluesky is named by its at:// URI, as in "
                               "at://did:plc:.../app.bsky.feed.post/<record key> (the key ends its bsky.app link)")
    cfg = _load(ctx)
    try:
        fd = locks.acquire(lock_path(cfg))
    except locks.LockBusy as e:
        raise click.ClickException(f"{e}; run resolve again when that publish run has ended") from e
    try:
        with existing_store(cfg) as store:
            w = resolve_week(store, week)
            try:
                row = ledger.resolve(store, w.source, w.key, channel, number,
                                     posted=posted.strip() if posted else None, now=datetime.now(UTC))
            except ValueError as e:
                raise click.ClickException(str(e)) from e
    finally:
        locks.release(fd)
    what = f"recorded as posted ({posted.strip()})" if posted else "will be sent again by the next publish run"
    click.echo(f"{channel} {w.source}:{w.key} unit {number} ({row['unit']}, was {row['state']}): {what}")


COMMANDS = (resolve,)
