"""`paperbot search QUERY`: the web app's full-text search over the papers of published editions."""

from __future__ import annotations

import json

import click

from bot.cli.common import _load
from bot.store import Store
from bot.web import reader


@click.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500), help="At most N papers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(ctx: click.Context, query: str, limit: int, as_json: bool) -> None:
    """Find papers of published (and held) editions by words of their title, summary or authors ("a phrase", prefix)."""
    cfg = _load(ctx)
    store = Store.open(cfg.db_path)
    try:
        total, hits = reader.search(store, cfg, query, limit)
    finally:
        store.close()
    rows = [{"source": h["source"], "week": h["key"], "edition": h["edition"], "number": h["number"],
             **h["plain"], "url": h["url"], "held": h["held"]} for h in hits]
    if as_json:
        click.echo(json.dumps({"query": query, "total": total, "papers": rows}, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(f"{r['week']}  {r['title']}{'  (held: not sent)' if r['held'] else ''}\n    {r['url']}")
    shown = f"; {len(rows)} shown" if total > len(rows) else ""
    click.echo(f"{total} paper{'s' if total != 1 else ''} found{shown}")


COMMANDS = (search,)
