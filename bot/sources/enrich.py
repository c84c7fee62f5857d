"""Enrichment (#32): the papers that link arXiv gain arXiv's record, fetched after a poll, off the publishing path.

It asks only for what the cache lacks (or holds from long ago), newest weeks first, in batches, through the shared
gate; it writes only the cache (`arxiv_papers`), never a paper, a week or the ledger, so it can change nothing
tracking counts as new, late or corrected, and nothing a channel sent. A failure is recorded (`paperbot status`)
and logged; the next round asks again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Config
from bot.sources.arxiv_api import BATCH, ArxivClient, ArxivError
from bot.sources.polite import arxiv_gate
from bot.store import Store

log = logging.getLogger(__name__)

REFRESH = timedelta(days=90)  # a cached record older than this is asked for again (new versions, new authors)
MAX_BATCHES = 40  # per round: 2,000 papers, two minutes at arXiv's pace; the backlog continues next round


@dataclass(frozen=True)
class EnrichResult:
    asked: int = 0
    found: int = 0
    missing: int = 0
    left: int = 0  # still wanted after this round (the batch limit, a stop, an error)
    error: str | None = None
    saved: tuple[str, ...] = ()  # ids whose record this round stored (new or refreshed)


def client_for(cfg: Config) -> ArxivClient:
    return ArxivClient(cfg.arxiv.api_base, arxiv_gate(cfg.state_dir, cfg.arxiv.api_base),
                       cfg.arxiv.contact or getattr(getattr(cfg, "email", None), "contact", ""),
                       timeout=cfg.fetch.timeout)


def enrich(store: Store, client: ArxivClient, now: Callable[[], datetime], *, source: str | None = None,
           week_key: str | None = None, max_batches: int = MAX_BATCHES,
           stop: threading.Event | None = None) -> EnrichResult:
    """Fetch the records the cache lacks for the stored papers (of one source or week, if given)."""
    wanted = store.arxiv_wanted(now() - REFRESH, source, week_key)
    asked = found = missing = 0
    saved: list[str] = []
    for i in range(0, len(wanted), BATCH):
        if i // BATCH >= max_batches or (stop is not None and stop.is_set()):
            break
        batch = wanted[i:i + BATCH]
        try:
            answer = client.fetch(batch, stop=stop)
        except ArxivError as e:
            store.arxiv_failed(str(e), now())
            log.warning("arXiv: %s; the %d papers still without a record are asked for again next round",
                        e, len(wanted) - i)
            return EnrichResult(asked, found, missing, len(wanted) - i, str(e), tuple(saved))
        store.save_arxiv(answer.records, answer.missing, now())
        saved += [r.arxiv_id for r in answer.records]
        asked, found, missing = asked + len(batch), found + len(answer.records), missing + len(answer.missing)
    left = len(wanted) - asked
    if asked:
        log.info("arXiv: %d papers asked for, %d records, %d unknown to arXiv%s", asked, found, missing,
                 f", {left} left for the next round" if left else "")
    return EnrichResult(asked, found, missing, left, saved=tuple(saved))
