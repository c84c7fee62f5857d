"""Going live after a trial: when a channel becomes live, the newest `[publish] backfill` weeks (at least one) of
each source go out for real and older weeks that only ever had a trial are skipped on it (`skip_old_trials`), so
going live never floods readers with stale weeks; and a week whose every enabled live channel is done is
settled (`published` or `skipped`)."""

from __future__ import annotations

import logging
from datetime import datetime

from bot import channels as registry
from bot.channels.base import (
    Channel,
)
from bot.config import Config
from bot.publish import ledger
from bot.publish.report import when
from bot.store import Store, WeekRow

log = logging.getLogger(__name__)


def _age(w: WeekRow) -> tuple:
    return (w.last_day or w.first_seen.date(), w.key)


def old_trials(cfg: Config, store: Store, channel: Channel, source: str) -> dict[str, str]:
    """Weeks of `source` to give up on `channel` now that it is live, each with the reason: those whose only
    publication there is a trial and which are not among the newest `[publish] backfill` weeks (at least one)
    still to send or sent for real. Reads only."""
    if not channel.live:
        return {}
    keep = max(1, cfg.publish.backfill)
    pubs = {p.week_key: p for p in ledger.publications(store, source) if p.channel == channel.name}

    def counts(w: WeekRow) -> bool:  # ready to go out here, or already sent for real here
        p = pubs.get(w.key)
        if p is None:
            return w.state == "ready"
        return p.state != "skipped" and (w.state == "ready" or not p.trial)

    ranked = sorted(filter(counts, store.weeks(source)), key=_age, reverse=True)
    newer = ", ".join(w.key for w in ranked[:keep])
    out = {}
    for w in ranked[keep:]:
        p = pubs.get(w.key)
        if p is not None and p.trial:
            out[w.key] = (f"skipped: only ever a trial (in the outbox on {when(p.planned_at)}); when {channel.name} "
                          f"went live, newer weeks went out for real instead ({newer}; [publish] backfill = "
                          f"{cfg.publish.backfill} sends the newest {keep})")
    return out


def skip_old_trials(cfg: Config, store: Store, channel: Channel, source: str, now: datetime) -> dict[str, str]:
    """Skip on `channel` the weeks `old_trials` names, log each with why, and settle their state."""
    skipped = old_trials(cfg, store, channel, source)
    for key, note in skipped.items():
        ledger.skip(store, source, key, channel.name, note, now)
        log.warning("%s %s:%s %s", channel.name, source, key, note)
        settle(cfg, store, source, key)
    return skipped


def settle(cfg: Config, store: Store, source: str, key: str) -> None:
    """A ready week whose every enabled live channel is done becomes `published` (sent for real on one at
    least) or `skipped` (given up on all). A trial leaves it ready, unless another channel sent it for real."""
    week = store.week(source, key)
    if week is None or week.state != "ready":
        return
    pubs = {p.channel: p.state for p in ledger.publications(store, source, key)}
    names = registry.enabled(cfg)
    live = [name for name in names if registry.make(cfg, name).live]
    # A channel on trial (no credentials: the outbox) never holds a week that went out for real elsewhere;
    # with no live channel at all, the week stays ready until one is.
    names = live or names
    if not all(pubs.get(name) in ("published", "skipped") for name in names):
        return
    state = "published" if "published" in pubs.values() else "skipped"
    store.upsert_week(source, key, state=state)
    log.info("%s:%s %s (%s)", source, key, state, ", ".join(f"{n}: {pubs[n]}" for n in sorted(names)))
