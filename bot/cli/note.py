"""`paperbot note WEEK "…"`: the editor's note at the top of a week's email and web edition (issue #16)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bot import channels as registry
from bot.cli.common import _load, _read
from bot.cli.publish import existing_store, resolve_week
from bot.edition.safetext import keep_lines
from bot.publish import ledger

MAX_NOTE = 2000  # characters: a note is a few sentences, not a second newsletter


def _text(text: str | None, path: str | None) -> str:
    """The note from the argument or the file: UTF-8, control characters dropped, line breaks kept."""
    if path is not None:
        try:
            text = _read(path).decode("utf-8")
        except UnicodeDecodeError as e:
            raise click.ClickException(f"{path}: not UTF-8 text (byte {e.start})") from e
    note = keep_lines((text or "").replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not note:
        raise click.ClickException(f"{path or 'the note'} is empty; to remove a note, use --clear")
    if len(note) > MAX_NOTE:
        raise click.ClickException(f"{path or 'the note'} is {len(note)} characters; a note may have at most "
                                   f"{MAX_NOTE}")
    return note


@click.command()
@click.argument("week")
@click.argument("text", required=False)
@click.option("--file", "path", type=click.Path(dir_okay=False), help="Read the note from this file (UTF-8).")
@click.option("--clear", is_flag=True, help="Remove the week's note.")
@click.pass_context
def note(ctx: click.Context, week: str, text: str | None, path: str | None, clear: bool) -> None:
    """Set, show or remove the editor's note of WEEK: a few words shown above its papers.

    Blank lines separate paragraphs. Without TEXT, --file or --clear, prints the note."""
    if sum((text is not None, path is not None, clear)) > 1:
        raise click.UsageError("give the note as TEXT, or --file, or --clear: only one of them")
    cfg = _load(ctx)
    with existing_store(cfg) as store:
        w = resolve_week(store, week)
        label = f"{w.source}:{w.key}"
        if text is None and path is None and not clear:
            current = store.note(w.source, w.key)
            click.echo(current if current else f"{label}: no note")
            return
        new = "" if clear else _text(text, path)
        store.set_note(w.source, w.key, new, datetime.now(UTC))
        out = [c for c in registry.NAMES if ledger.went_out_at(store, w.source, w.key, c) is not None]
    click.echo(f"{label}: note {'removed' if clear else 'saved'} ({len(new)} characters)")
    if out:
        click.echo(f"warning: {label} went out already on {', '.join(out)}: the emails sent and the stored web "
                   "copy keep what they had", err=True)


COMMANDS = (note,)
