"""`paperbot enrich [WEEK]`: fetch arXiv's records of the stored papers now, rather than after the next poll (#32)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import click

from bot.cli.common import _load
from bot.cli.publish import existing_store, resolve_week
from bot.publish.enrichment import enrich_round

log = logging.getLogger(__name__)


@click.command()
@click.argument("week", required=False)
@click.option("--source", "source_name", metavar="NAME", help="Only this source's papers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def enrich(ctx: click.Context, week: str | None, source_name: str | None, as_json: bool) -> None:
    """Fetch arXiv's record (authors, categories, abstract) of every stored paper that links arXiv and has none
    yet, or of WEEK's papers (KEY or SOURCE:KEY). At most one request every three seconds, as arXiv asks."""
    cfg = _load(ctx)
    if not cfg.arxiv.enabled:
        raise click.ClickException("[arxiv] enabled = false in the config: nothing is fetched from arXiv")
    with existing_store(cfg) as store:
        source, key = source_name, None
        if week:
            w = resolve_week(store, week)
            source, key = w.source, w.key
        result = enrich_round(cfg, store, lambda: datetime.now(UTC), source=source, week_key=key,
                              max_batches=10**6)
        counts = store.arxiv_counts()
    if as_json:
        click.echo(json.dumps({"asked": result.asked, "found": result.found, "missing": result.missing,
                               "left": result.left, "error": result.error, "enriched": counts.enriched,
                               "papers": counts.papers}, indent=2))
    else:
        click.echo(f"asked arXiv for {result.asked} paper{'s' if result.asked != 1 else ''}: {result.found} "
                   f"records, {result.missing} unknown to arXiv; {counts.enriched} of {counts.papers} papers "
                   "that link arXiv are enriched")
    if result.error:
        raise click.ClickException(f"arXiv: {result.error}; {result.left} papers are asked for again later")


COMMANDS = (enrich,)
