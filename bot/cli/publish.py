"""`paperbot publish`, `preview` and `history`: thin commands over bot/publish/pipeline.py and the ledger."""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import click

from bot import channels as registry
from bot import locks
from bot.channels.base import PermanentError, StorageError, TransientError, Uncertain, storage_error
from bot.channels.email import subscribers
from bot.channels.email.channel import EmailChannel
from bot.channels.email.render import RenderError
from bot.channels.email.tokens import SecretKeyError
from bot.cli.common import _load, clock, trial_marks
from bot.config import Config
from bot.ops.config_checks import unfit_problems
from bot.publish import ledger
from bot.publish.dispatch import RunStats
from bot.publish.pipeline import late_round, lock_path, publish_week, ready_weeks
from bot.publish.report import ChannelReport
from bot.store import Store, WeekRow


@contextmanager
def existing_store(cfg: Config) -> Iterator[Store]:
    if not cfg.db_path.exists():
        raise click.ClickException(f"no state database at {cfg.db_path} yet; run `paperbot poll` first")
    store = Store.open(cfg.db_path)
    try:
        yield store
    finally:
        store.close()


def _a_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if len(text.strip()) == 10 else None
    except ValueError:
        return None


def resolve_week(store: Store, spec: str) -> WeekRow:
    """`KEY` or `SOURCE:KEY` (an alias works too), or a date inside the week (`2024-03-06`); a KEY found in several
    sources must name its source."""
    source, sep, key = spec.partition(":")
    if not sep:
        source, key = "", spec
    found = [w for w in store.find_weeks(key) if not source or w.source == source]
    if not found and (day := _a_date(key)):  # issue #25 (13h): any date inside the week names it
        found = [w for w in store.weeks(source or None) if w.first_day and w.last_day
                 and w.first_day <= day <= w.last_day and not w.late_of]
    if not found:
        raise click.ClickException(f"no week {spec!r} in the state database (see `paperbot weeks`)")
    if len(found) > 1:
        names = ", ".join(sorted(f"{w.source}:{w.key}" for w in found))
        raise click.ClickException(f"{key!r} is a week of several sources ({names}); write SOURCE:KEY")
    return found[0]


class _Bar:
    """A click progress bar per channel and week, fed from the publisher's ticks (main thread only)."""

    def __init__(self) -> None:
        self.label: str | None = None
        self.bar = None
        self.shown = 0

    def __call__(self, label: str, s: RunStats) -> None:
        if label != self.label:
            self.close()
            self.label, self.shown = label, 0
            self.bar = click.progressbar(length=max(s.total, 1), label=label, show_pos=True)
            self.bar.__enter__()
        if self.bar is not None and s.done > self.shown:
            self.bar.update(s.done - self.shown)
            self.shown = s.done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.render_progress()  # the final count, even if the last update was not drawn
            self.bar.__exit__(None, None, None)
            self.bar = None


def _summary(r: ChannelReport) -> str:
    if r.skipped:
        return f"{r.label}: {r.note}"
    if r.already and r.published:
        return f"{r.label}: already published ({r.counts.get('sent', 0)} sent); nothing to send"
    if r.already:
        return (f"{r.label}: tried already (trial: {r.counts.get('trial', 0)} in the outbox, nothing sent); "
                f"not written again: it goes out for real once {r.channel} is live")
    if r.dry_run:
        if r.trial:
            return f"{r.label}: would write {r.would_send} to the outbox (trial; dry run: nothing written)"
        return f"{r.label}: would send {r.would_send} (dry run: nothing sent, nothing recorded)"
    if r.stats is None and not r.done and r.note:
        return f"{r.label}: {r.note}"
    s = r.stats or RunStats()
    if r.trial:
        line = (f"{r.label}: {s.sent} written to the outbox, {s.failed} failed this run; "
                + (f"trial done: nothing sent, the week stays ready until {r.channel} is live" if r.done
                   else f"not finished ({_open(r.counts)} still to write)"))
    else:
        line = (f"{r.label}: {s.sent} sent, {s.failed} failed, {s.bounced} bounced, {s.skipped} skipped "
                "this run; "
                + ("published" if r.published else f"not finished ({_open(r.counts)} still to send)"))
    if r.note and not r.trial:
        line += f"; {r.note}"
    if s.duplicates and not r.trial:
        them = "them" if s.duplicates > 1 else "it"
        twice = f"readers may get {them} twice" if r.channel == "email" else f"{r.channel} may show {them} twice"
        line += (f"; {s.duplicates} possible duplicate{'s' if s.duplicates > 1 else ''}: may have gone out already "
                 f"and sent again, so {twice} (paperbot history)")
    if s.stopped:
        line += f"; stopped early: {s.stopped}"
    return line


def _open(counts: dict[str, int]) -> int:
    return sum(counts.get(state, 0) for state in ledger.OPEN)


_SAID = {"sent": "sent", "trial": "written to the outbox", "failed": "failed", "bounced": "bounced",
         "skipped": "skipped"}


def counts_text(counts: dict[str, int], units: int) -> str:
    """`3 to send, 495 sent, 2 bounced (of 500)`: what is left first, then what became of the rest; zeros
    left out, and any state the ledger gains later (`uncertain`) said by its name."""
    parts = [f"{_open(counts)} to send"] if _open(counts) else []
    parts += [f"{counts[s]} {said}" for s, said in _SAID.items() if counts.get(s)]
    parts += [f"{n} {s}" for s, n in counts.items() if n and s not in _SAID and s not in ledger.OPEN]
    return ", ".join(parts or ["nothing"]) + f" (of {units})"


channel_option = click.option("--channel", "channel", type=click.Choice(registry.NAMES),
                              help="Only this channel (default: every enabled channel).")


@click.command()
@click.argument("weeks", nargs=-1, metavar="[WEEK]...")
@channel_option
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send and record nothing.")
@click.option("--to", "to", metavar="ADDRESS",
              help="Send one test copy of each WEEK (any state) to ADDRESS only, by SMTP or into the outbox; "
                   "the database is not changed.")
@click.pass_context
def publish(ctx: click.Context, weeks: tuple[str, ...], channel: str | None, dry_run: bool,
            to: str | None) -> None:
    """Send ready weeks (default: every ready week, oldest first) on each enabled channel.

    Safe to repeat: what the ledger records as sent is never sent again. Exits with status 1 if anything
    is left to send (failed units are retried by the next run). Without smtp_url, email is a trial: it goes
    to the outbox, is recorded as `trial`, and the week stays ready. With --to, each WEEK goes to ADDRESS
    only, as a test, and nothing is recorded.
    """
    cfg = _load(ctx)
    refuse_unfit(cfg, dry_run=dry_run)
    now = clock(cfg)
    if to is not None:
        _send_copies(cfg, weeks, channel, dry_run, to)
        return
    chosen = [channel] if channel else None
    with trial_marks(cfg) as local:
        _publish(cfg, weeks, chosen, dry_run, now, "local trial: " if local else "")


def _publish(cfg: Config, weeks: tuple[str, ...], chosen: list[str] | None, dry_run: bool, now, mark: str) -> None:
    with _storage_errors(cfg), existing_store(cfg) as store:
        if not weeks and not dry_run:  # papers added to weeks already out: found, and sent alone if they waited
            with _publish_lock(cfg):
                late_round(cfg, store, now(), channels=chosen)
        targets = [resolve_week(store, w) for w in weeks] if weeks else ready_weeks(store)
        for w in targets:
            if w.state == "awaiting-approval":
                raise click.ClickException(f"{w.source}:{w.key} awaits the editor's approval: paperbot approve "
                                           f"{w.source}:{w.key} (or paperbot skip {w.source}:{w.key})")
            if w.state == "held":
                raise click.ClickException(f"{w.source}:{w.key} is held by the guard on age ({w.held}): paperbot "
                                           f"approve {w.source}:{w.key} sends it (or paperbot skip)")
            if w.state == "baseline":
                raise click.ClickException(f"{w.source}:{w.key} is baseline (it was there at the source's first "
                                           "poll): it is never published (`--to ADDRESS` sends a test copy of "
                                           "any week)")
            if w.state not in ("ready", "published", "skipped"):
                raise click.ClickException(f"{w.source}:{w.key} is {w.state}, not ready: "
                                           "nothing to publish yet (`paperbot status` says what it waits for; "
                                           "`--to ADDRESS` sends a test copy of any week)")
        if not targets:
            click.echo("no ready weeks to publish")
            return
        tty = sys.stdout.isatty()
        bar = _Bar() if tty else None
        if not tty:
            logging.getLogger("bot.publish.pipeline").setLevel(min(logging.INFO, logging.getLogger().level))
        try:
            with (_no_lock() if dry_run else _publish_lock(cfg)), _operator_errors(), _storage_errors(cfg):
                reports = []
                for w in targets:
                    reports += publish_week(cfg, store, w, channels=chosen, now=now(),
                                            dry_run=dry_run, progress=bar)
        except KeyboardInterrupt:  # issue #25: not just "Aborted!"
            if bar:
                bar.close()
                bar = None
            raise click.ClickException(interrupted(store, targets)) from None
        finally:
            if bar:
                bar.close()
    for r in reports:
        click.echo((mark if r.channel == "email" else "") + _summary(r))
    if not dry_run and not all(r.done or r.waits for r in reports):
        raise click.ClickException("some units are not sent yet; `paperbot publish` again retries them "
                                   "(see `paperbot history` for the errors)")


def interrupted(store: Store, targets: list[WeekRow]) -> str:
    """What Ctrl-C left: per week and channel, what went out and what is still to send (from the ledger)."""
    parts = []
    for w in targets:
        for p in ledger.publications(store, w.source, w.key):
            counts = ledger.counts(store, w.source, w.key, p.channel)
            left = _open(counts)
            done = counts.get("sent", 0) + counts.get("trial", 0)
            if left or p.state == "sending":
                said = "written to the outbox" if p.trial else "sent"
                parts.append(f"{p.channel} {w.source}:{w.key}: {done} {said}, {left} left")
    what = "; ".join(parts) or "nothing was planned yet"
    return (f"stopped by Ctrl-C: {what}. Run `paperbot publish` again to send the rest: what is recorded as "
            "sent is never sent again (a message in flight at the stop may go out twice, and says so)")


def refuse_unfit(cfg: Config, *, dry_run: bool = False) -> None:
    """Stop before a live send while the config holds an example value (issue #14), or before anything at all
    when it could publish nothing (a signing key too short, issue #25): one line per problem, naming the key.
    A dry run only warns; without smtp_url (the outbox trial) example values do not stop it."""
    problems = unfit_problems(cfg)
    if not problems:
        return
    if dry_run:
        for p in problems:
            click.echo(f"warning: {p}", err=True)
        return
    raise click.ClickException("not sending: the config is not ready to publish (`paperbot check` lists it):\n  "
                               + "\n  ".join(problems))


def _send_copies(cfg: Config, weeks: tuple[str, ...], channel: str | None, dry_run: bool, to: str) -> None:
    """`publish WEEK --to ADDRESS`: one test copy of each WEEK, whatever its state; no lock (the ledger is
    not touched) and no database write."""
    if not weeks:
        raise click.ClickException("--to needs the WEEK to send (see `paperbot weeks`)")
    if dry_run:
        raise click.ClickException("--to and --dry-run do not go together: `paperbot preview WEEK` shows a "
                                   "week without sending it")
    if channel not in (None, "email"):
        raise click.ClickException(f"--to sends an email; it does not go with --channel {channel}")
    try:
        address = subscribers.normalize_address(to)
    except subscribers.InvalidAddress as e:
        raise click.ClickException(f"--to: not an email address: {e}") from None
    email = EmailChannel(cfg)
    with _storage_errors(cfg), existing_store(cfg) as store:
        targets = [resolve_week(store, w) for w in weeks]
        for w in targets:
            with _operator_errors():
                try:
                    line = email.send_copy(store, w, address)
                except (TransientError, PermanentError, Uncertain) as e:
                    raise click.ClickException(f"email {w.source}:{w.key}: the test copy to {address} was not "
                                               f"sent: {e}") from None
            click.echo(line)


@contextmanager
def _storage_errors(cfg: Config) -> Iterator[None]:
    """A full disk, a read-only state folder or a permission problem as one line, not a traceback. The
    ledger is consistent whatever the point of failure, so the advice is simply to run again."""
    try:
        yield
    except (StorageError, sqlite3.OperationalError, OSError) as e:
        if isinstance(e, sqlite3.OperationalError):  # opening the database, before any publishing began
            e = storage_error(e, "use the state database", cfg.db_path)
        elif isinstance(e, OSError):  # the publish lock, say
            e = storage_error(e, "write", e.filename or cfg.state_dir)
        raise click.ClickException(f"{e}; free some space or fix the permissions, then run `paperbot publish` "
                                   "again: it sends only what is not recorded as sent") from None


@contextmanager
def _publish_lock(cfg: Config) -> Iterator[None]:
    try:
        fd = locks.acquire(lock_path(cfg))
    except locks.LockBusy as e:
        raise click.ClickException(f"another paperbot is publishing: {e}") from e
    try:
        yield
    finally:
        locks.release(fd)


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


@contextmanager
def _operator_errors() -> Iterator[None]:
    """Problems the operator fixes (a template, the signing key, a full disk) as one line, not a traceback."""
    try:
        yield
    except (RenderError, SecretKeyError, StorageError) as e:
        raise click.ClickException(str(e)) from e


@click.command()
@click.argument("week", metavar="WEEK")
@channel_option
@click.option("--out", type=click.Path(file_okay=False), help="Write what would be sent into this folder.")
@click.pass_context
def preview(ctx: click.Context, week: str, channel: str | None, out: str | None) -> None:
    """Render WEEK for each channel as it would be sent, changing no state (`--out` writes the files)."""
    cfg = _load(ctx)
    with existing_store(cfg) as store:
        w = resolve_week(store, week)
        for name in [channel] if channel else registry.enabled(cfg):
            with _operator_errors():
                lines = registry.make(cfg, name).preview(store, w, Path(out) if out else None)
            for line in lines:
                click.echo(line)


COMMANDS = (publish, preview)
