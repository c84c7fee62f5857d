"""`paperbot history`: what went out where, from the ledger (`--json` for scripts); possible duplicates,
weeks the guard held and the cap's waits included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from bot.cli.common import _load, clock
from bot.cli.publish import counts_text, existing_store, resolve_week
from bot.config import Config
from bot.edition import holdings
from bot.ops.status import window_waits
from bot.publish import first, ledger
from bot.publish.pipeline import ready_weeks
from bot.store import Store, WeekRow

HISTORY_FAILURES = 20  # per channel, when listing every week


def _carried(store: Store, source: str, key: str, channel: str) -> list[dict]:
    """The papers added to earlier weeks that this edition carries on the channel, by week."""
    by_week: dict[str, list[str]] = {}
    for r in holdings.carried(store, source, key, channel):
        by_week.setdefault(r.week_key, []).append(r.paper.title)
    return [{"week": k, "papers": titles} for k, titles in sorted(by_week.items())]


def history_json(store: Store, spec: WeekRow | None, cfg: Config | None = None,
                 now: datetime | None = None) -> list[dict]:
    """What went where: one entry per week that has been planned on some channel, newest first; then (with
    `cfg`) the weeks the age guard held and those waiting for the daily cap (issue #21)."""
    pubs = ledger.publications(store, spec.source if spec else None, spec.key if spec else None)
    weeks: dict[tuple[str, str], dict] = {}
    if cfg is not None:
        _guarded(cfg, store, spec, weeks, now or datetime.now(UTC))
    for p in sorted(pubs, key=lambda p: p.planned_at, reverse=True):
        entry = weeks.get((p.source, p.week_key))
        if entry is None or "channels" not in entry:
            w = store.week(p.source, p.week_key)
            entry = weeks[(p.source, p.week_key)] = {
                "source": p.source, "week": p.week_key, "title": w.title if w else None,
                "state": w.state if w else None, **(entry or {}), "channels": {}}
        limit = None if spec else HISTORY_FAILURES
        failures = ledger.rows_in(store, p.source, p.week_key, p.channel,
                                  ("failed", "bounced", "sending", *ledger.WAITING), limit)
        numbers = {r["id"]: n for n, r in enumerate(ledger.rows_in(store, p.source, p.week_key, p.channel,
                                                                    ledger.STATES), start=1)}
        held = ledger.channel_until(store, p.channel)
        entry["channels"][p.channel] = {
            "state": p.state, "trial": p.trial, "note": p.note,
            "units": p.units, "planned_at": p.planned_at, "published_at": p.published_at,
            "counts": ledger.counts(store, p.source, p.week_key, p.channel),
            "failures": [{"unit": f["unit"], "number": numbers.get(f["id"]), "state": f["state"],
                          "attempts": f["attempts"], "error": f["last_error"], "at": f["updated_at"]}
                         for f in failures],
            "waits_until": held[0].isoformat() if held and p.state == "sending" else None,
            "waits_for": held[1] if held and p.state == "sending" else None,
            "late": _carried(store, p.source, p.week_key, p.channel),
            "possible_duplicates": [{"unit": d["unit"], "number": numbers.get(d["id"]), "state": d["state"],
                                     "why": d["why"]}
                                    for d in ledger.possible_duplicates(store, p.source, p.week_key, p.channel)],
        }
    for entry in weeks.values():
        entry.setdefault("channels", {})
    if spec and not weeks:
        weeks[(spec.source, spec.key)] = {"source": spec.source, "week": spec.key, "title": spec.title,
                                          "state": spec.state, "channels": {}}
    return list(weeks.values())


def _at(stamp: str | datetime) -> str:
    """A stored time as people read it: to the second, in UTC (issue #25 (13b): no microseconds)."""
    t = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _guarded(cfg: Config, store: Store, spec: WeekRow | None, weeks: dict, now: datetime) -> None:
    """Entries (no channels yet) for held weeks (`held`: why) and ready weeks the daily cap holds back
    (`waits_for_cap`: channel → until), in `weeks`, keyed like history's."""
    from bot.publish import cap

    everyone = [spec] if spec else store.weeks()
    ready = ready_weeks(store)
    capped = cap.waiting(cfg, store, ready, now) if ready else {}
    for w in everyone:
        extra = {}
        if w.state == "held":
            extra["held"] = w.held
        if (w.source, w.key) in capped:
            extra["waits_for_cap"] = {c: t.isoformat() for c, t in capped[(w.source, w.key)].items()}
        if w.state == "ready":  # issue #25 (5): what a ready week not yet out waits for, per channel
            waits = {c: f"its send window, next {_at(t)}" for c, t in window_waits(cfg, store, w, now).items()}
            if first.is_waiting(store, w.source, w.key):
                waits[first.CHANNEL] = first.WAITING
            if waits:
                extra["waits"] = waits
        if extra:
            weeks[(w.source, w.key)] = {"source": w.source, "week": w.key, "title": w.title, "state": w.state,
                                        **extra}


@click.command()
@click.argument("week", required=False, metavar="[WEEK]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history(ctx: click.Context, week: str | None, as_json: bool) -> None:
    """What was published where: per week and channel, counts of sent, failed, bounced, and the failures."""
    cfg = _load(ctx)
    if not cfg.db_path.exists():
        out: list[dict] = []
    else:
        with existing_store(cfg) as store:
            out = history_json(store, resolve_week(store, week) if week else None, cfg, clock()())
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if not out:
        click.echo("nothing published yet")
    for e in out:
        click.echo(f"{e['source']}:{e['week']}  {e['state']}  {e['title']}")
        if e.get("held"):
            click.echo(f"  held: {e['held']}; `paperbot approve {e['source']}:{e['week']}` sends it, "
                       f"`paperbot skip --held {e['source']}` gives up every held week of {e['source']}")
        for name, until in e.get("waits_for_cap", {}).items():
            click.echo(f"  {name}: waits for the daily cap ([publish] max_per_day) until {until}; "
                       f"`paperbot approve {e['source']}:{e['week']}` sends it now")
        for name, why in e.get("waits", {}).items():
            click.echo(f"  {name}: waits for {why.removeprefix('waiting for ')}")
        if not e["channels"] and not e.get("held") and not e.get("waits_for_cap") and not e.get("waits"):
            click.echo("  not published on any channel")
        for name, c in e["channels"].items():
            state = "trial (outbox only)" if c["state"] == "trial" else c["state"] + (
                " (trial: outbox only)" if c["trial"] else "")  # issue #25 (13c): said once
            click.echo(f"  {name}: {state}; {counts_text(c['counts'], c['units'])}; planned {_at(c['planned_at'])}"
                       + (f", published {_at(c['published_at'])}" if c["published_at"] else ""))
            if c["note"]:
                click.echo(f"    note: {c['note']}")
            for g in c["late"]:
                click.echo(f"    carries {len(g['papers'])} paper(s) added to {g['week']}")
            for dup in c["possible_duplicates"]:
                click.echo(f"    possible duplicate: {dup['unit']} (unit {dup['number']}, {dup['state']}): "
                           f"{dup['why']}")
            if c["waits_until"]:
                click.echo(f"    waits until {c['waits_until']}: {c['waits_for']}")
            for f in c["failures"]:
                click.echo(f"    {f['state']:9s} {f['unit']} (unit {f['number']}, {f['attempts']} tries) {f['error']}")
                if f["state"] in ledger.WAITING:
                    click.echo(f"              settle it: paperbot resolve {e['source']}:{e['week']} --channel "
                               f"{name} --unit {f['number']} (--posted ID | --retry)")


COMMANDS = (history,)
