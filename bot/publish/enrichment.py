"""One round of enrichment from arXiv (#32), and what it may change: the web copies of editions already out.

The round fetches what the cache lacks (bot/sources/enrich.py). A sent edition's stored web copy (the page its
email links to) is then rendered again with the papers it went out with and every record now known, so the web
shows what arXiv added later; no email, post or ledger row is touched (an edition on a channel carries what the
cache held when it was planned there). The daemon runs this on its own worker after each poll, never on the
publishing path; `paperbot enrich` runs it by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from bot.channels.email.render import edition_path, save_web_edition
from bot.config import Config
from bot.edition.edition import edition_from_store
from bot.sources.arxiv_api import ArxivClient
from bot.sources.enrich import EnrichResult, client_for, enrich
from bot.store import Store
from bot.track.arxiv_ids import first_arxiv_id

log = logging.getLogger(__name__)


def enrich_round(cfg: Config, store: Store, now: Callable[[], datetime], *, client: ArxivClient | None = None,
                 source: str | None = None, week_key: str | None = None, max_batches: int | None = None,
                 stop: threading.Event | None = None, write_lock: threading.Lock | None = None) -> EnrichResult:
    """Enrich the stored papers (of one source or week), then refresh the web copies that gained a record."""
    if not cfg.arxiv.enabled:
        return EnrichResult()
    kw = {} if max_batches is None else {"max_batches": max_batches}
    result = enrich(store, client or client_for(cfg), now, source=source, week_key=week_key, stop=stop, **kw)
    if result.saved:
        with write_lock or threading.Lock():
            refresh_web_copies(cfg, store, result.saved)
    return result


def refresh_web_copies(cfg: Config, store: Store, ids: tuple[str, ...]) -> int:
    """Render again the stored web copy of each edition holding a paper of `ids`; how many were written."""
    marks = ",".join("?" * len(ids))
    weeks = store.db.execute(f"SELECT DISTINCT source, week_key FROM papers WHERE arxiv_id IN ({marks})",
                             list(ids)).fetchall()
    written = 0
    for source, key in weeks:
        try:
            path = edition_path(cfg.state_dir, source, key)
        except ValueError:
            continue
        if not path.exists():  # never sent: the page is rendered from the database, with every record, when asked
            continue
        sent = edition_from_store(store, source, key, "email")
        linked = {i for p in (*sent.papers, *(p for g in sent.late for p in g.papers))
                  if (i := first_arxiv_id(lk.url for lk in p.links))}
        try:
            save_web_edition(cfg, replace(sent, arxiv=tuple(store.arxiv_records(linked).values())))
            written += 1
        except OSError as e:
            log.warning("arXiv: could not refresh the web copy %s (%s); it shows the records of its sending", path, e)
    return written
