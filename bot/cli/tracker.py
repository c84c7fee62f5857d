"""The tracker's commands: init, parse, diff, replay, weeks (no network, no publishing)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import click

from bot.cli.common import _as_of, _load, _parse_time, _read
from bot.config import DEFAULT_TOML, EXPECT_MAX, ConfigError, parse_zone
from bot.publish.replay import replay as run_replay
from bot.store import Store, iso
from bot.track.diff import Known, diff_weeks, norm_title
from bot.track.gitrepo import GitError
from bot.track.late import LateEvent
from bot.track.model import week_to_json
from bot.track.parsing import FORMATS, parse_document
from bot.track.tracker import Released, source_rules

log = logging.getLogger(__name__)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False), default="paperbot.toml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented config file (default ./paperbot.toml)."""
    p = Path(path)
    if p.exists() and not force:
        raise click.ClickException(f"{p} exists; use --force to overwrite")
    p.write_text(DEFAULT_TOML, encoding="utf-8")
    cfg = "" if p.resolve() == Path("paperbot.toml").resolve() else f" --config {p}"
    click.echo(f"wrote {p}: every section, the values to change marked CHANGE; the state folder is "
               f"{p.resolve().parent / 'state'}")
    click.echo("next:")
    click.echo(f"  paperbot{cfg} check     tries the config, each source and the mail server; sends nothing")
    click.echo(f"  paperbot{cfg} run       polls, publishes and serves the web app on http://127.0.0.1:8080/")
    click.echo("a try-out on this laptop (a local trial, nothing reaches anyone else): run a mail server here,")
    click.echo("  e.g. `python -m aiosmtpd -n -l 127.0.0.1:1025`, and set in [email]:")
    click.echo('  smtp_url = "smtp://127.0.0.1:1025" and starttls = false')
    click.echo("without smtp_url, email is a trial written to the outbox in the state folder")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="How to read the document: a digest, a notes page or a feed; auto detects.")
@click.option("--as-of", "as_of", metavar="DATE", help="Date the document was read, for yearless headings.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def parse(ctx: click.Context, file: str, fmt: str, as_of: str | None, as_json: bool) -> None:
    """Parse one document into weeks of papers, with the defects found."""
    doc = parse_document(_read(file), _as_of(ctx, as_of), fmt)
    if as_json:
        out = {"format": doc.format, "weeks": [week_to_json(w) for w in doc.weeks]}
        if doc.defects:
            out["defects"] = [asdict(d) for d in doc.defects]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    click.echo(f"format: {doc.format}; {len(doc.weeks)} weeks, {sum(len(w.papers) for w in doc.weeks)} papers")
    for w in doc.weeks:
        click.echo(f"{w.key}  {len(w.papers):3d} papers  {w.title}")
        for d in w.defects:
            click.echo(f"    line {d.line}: {d.kind}: {d.text}")
    for d in doc.defects:
        click.echo(f"line {d.line}: {d.kind}: {d.text}")


@click.command()
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="How to read the document: a digest, a notes page or a feed; auto detects.")
@click.option("--as-of", "as_of", metavar="DATE", help="Date both versions were read.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def diff(ctx: click.Context, old: str, new: str, fmt: str, as_of: str | None, as_json: bool) -> None:
    """Compare two versions of a document: new, edited, renamed and removed weeks."""
    day = _as_of(ctx, as_of)
    before = parse_document(_read(old), day, fmt)
    after = parse_document(_read(new), day, fmt)
    known = {w.key: Known(w.key, w.fingerprint, w.text_hash, tuple(norm_title(p.title) for p in w.papers))
             for w in reversed(before.weeks)}
    result = diff_weeks(known, {}, after.weeks)
    out = {"new": [w.key for w in result.new], "edited": list(result.edited), "renamed": result.renamed,
           "removed": list(result.removed)}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for name in ("new", "edited", "removed"):
        click.echo(f"{name}: {', '.join(out[name]) or '-'}")
    click.echo("renamed: " + (", ".join(f"{a} -> {b}" for a, b in result.renamed.items()) or "-"))


def _released_json(r: Released) -> dict:
    out = {"week": r.key, "title": r.title, "at": iso(r.at), "commit": r.version, "papers": r.papers}
    return {**out, "held": r.held} if r.held else out


def _late_json(e: LateEvent) -> dict:
    return {"event": "late", "week": e.week, "papers": list(e.papers), "carried_in": e.carried_in, "at": iso(e.at),
            "found_at": iso(e.found_at)}


@click.command()
@click.argument("git_repo", type=click.Path(file_okay=False, exists=True))
@click.option("--path", default="README.md", show_default=True, help="File to follow in the repository.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="How to read the document: a digest, a notes page or a feed; auto detects.")
@click.option("--first-parent", is_flag=True, help="Follow only the first parent of merges (what a poller sees).")
@click.option("--state", "state_dir", type=click.Path(file_okay=False), help="Keep the tracker here and continue.")
@click.option("--stop-after", type=click.IntRange(min=0), help="Stop after N more commits.")
@click.option("--until", metavar="TIME", help="Run the clock on to TIME after the last commit.")
@click.option("--timezone", "zone", metavar="ZONE",
              help="Weeks end at midnight here, as a source's `timezone` (default: learned from the commits).")
@click.option("--expect-papers", type=click.IntRange(0, EXPECT_MAX), metavar="N",
              help="Papers in a complete week, as a source's `expect_papers` (default: learned).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON line per week that becomes ready, and per week's late papers carried.")
@click.pass_context
def replay(ctx: click.Context, git_repo: str, path: str, fmt: str, first_parent: bool, state_dir: str | None,
           stop_after: int | None, until: str | None, zone: str | None, expect_papers: int | None,
           as_json: bool) -> None:
    """Backtest: feed a file's git history through a tracker and print when each week becomes ready."""
    cfg = _load(ctx)
    try:
        tz = parse_zone(zone, "--timezone") if zone is not None else None
    except ConfigError as e:
        raise click.BadParameter(str(e).removeprefix("--timezone: "), param_hint="--timezone") from e
    store = Store.open(Path(state_dir) / "paperbot.db" if state_dir else None)

    def emit(r: Released) -> None:
        if as_json:
            click.echo(json.dumps(_released_json(r), ensure_ascii=False))
        else:
            flag = "  (flagged: released unfinished, by max_wait or wait_for_papers)" if r.flagged else ""
            flag += f"  (HELD, not sent: {r.held})" if r.held else ""
            click.echo(f"{iso(r.at)}  {r.key}  {r.papers:3d} papers  {r.title}  @{(r.version or '')[:10]}{flag}")

    def emit_late(e: LateEvent) -> None:
        if as_json:
            click.echo(json.dumps(_late_json(e), ensure_ascii=False))
        else:
            click.echo(f"{iso(e.at)}  {e.week}  {len(e.papers):3d} late   added to the week after it went out "
                       f"(first found {iso(e.found_at)}); in {e.carried_in}")

    try:
        run_replay(Path(git_repo), path, store, cfg.publish, fmt=fmt, first_parent=first_parent,
                   stop_after=stop_after, until=_parse_time(until, "--until") if until else None, emit=emit,
                   timezone=tz, expect_papers=expect_papers, emit_late=emit_late)
    except GitError as e:  # not a repository, no such path: say what, not a traceback
        raise click.ClickException(str(e)) from e
    finally:
        store.close()


@click.command()
@click.option("--source", help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def weeks(ctx: click.Context, source: str | None, as_json: bool) -> None:
    """List the weeks paperbot knows, with their state."""
    cfg = _load(ctx)
    rows, failing, rules = [], [], {}
    known = [s.name for s in cfg.sources]
    if cfg.db_path.exists():
        store = Store.open(cfg.db_path)
        known += [r["name"] for r in store.sources() if r["name"] not in known]
        rows = store.weeks(source)
        failing = [r for r in store.sources() if r.get("last_error") and source in (None, r["name"])]
        configs = {s.name: s for s in cfg.sources}
        rules = {n: source_rules(store, n, cfg.publish, configs.get(n)) for n in {w.source for w in rows}}
        store.close()
    if source is not None and source not in known:  # issue #14: a typo is an error, not "no weeks known yet"
        raise click.ClickException(f"no source named {source!r} (known: {', '.join(known) or 'none'})")
    for r in failing:  # on stderr, so --json output stays clean
        click.echo(f"warning: source {r['name']}: last poll failed at {r['last_error_at']} "
                   f"({r['error_count']} in a row): {r['last_error']}", err=True)
    rows.sort(key=lambda w: (w.source, w.last_day or w.first_seen.date(), w.key), reverse=True)
    out = [{"source": w.source, "key": w.key, "title": w.title, "state": w.state, "first_seen": iso(w.first_seen),
            "last_changed": iso(w.last_changed), "papers": w.n_papers, "flagged": w.flagged,
            "ready_at": iso(w.ready_at) if w.ready_at else None,
            "timezone": rules[w.source].clock.name, "timezone_from": rules[w.source].clock.describe_origin(),
            "expect_papers": rules[w.source].expected, "expect_papers_from": rules[w.source].expected_from}
           for w in rows]
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if not out:
        click.echo("no weeks known yet")
    for name in sorted(rules, reverse=True):  # the order the weeks are listed in
        r = rules[name]
        usual = f"{r.expected} papers ({r.expected_from})" if r.expected is not None else "unknown (no history)"
        click.echo(f"{name}: weeks end at midnight {r.clock.describe()}; a complete week: {usual}")
    why = {(w.source, w.key): w.held for w in rows if w.state == "held"}
    for w in out:
        flag = " (flagged)" if w["flagged"] else ""
        if held := why.get((w["source"], w["key"])):
            flag += f"\n    held: {held}"
        click.echo(f"{w['source']:12s} {w['key']:24s} {w['state']:9s} {w['papers']:3d} papers  {w['title']}{flag}")


COMMANDS = (init, parse, diff, replay, weeks)
