"""Corrections of weeks that went out: a week corrected in the source after it was published on a channel that
can edit its messages is edited there once (the round after the sending; see the comment below)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bot import channels as registry
from bot.channels.base import (
    PermanentError,
    RateLimited,
    TransientError,
)
from bot.config import Config
from bot.publish import ledger
from bot.publish.report import when
from bot.store import Store, iso

log = logging.getLogger(__name__)


# -- corrections of weeks that went out ----------------------------------------------------------------------------
# A channel that can edit what it sent (Discord: `edit(store, week, message_ids, now)`) records, when it plans a
# week, the week as its messages show it: `channel_editions.shown`, the week's fingerprint (its papers' titles,
# summaries, links…) and title. The tracker updates both when the source corrects the week. A week published on
# the channel whose fingerprint or title no longer matches was corrected after it went out: the channel edits its
# messages to match (only when it `corrects`: Discord with `edit_on_correction` and credentials), and `shown`
# moves on, so each correction is handled once and a poll that changes nothing costs one query, no request.
# (Times would not do: a git source's change carries its commit date, which may be before the week went out even
# when the poll that found it came after.)
_NOW_SHOWN = "SELECT fingerprint || ' ' || title FROM weeks WHERE source = ? AND key = ?"


def mark_shown(store: Store, source: str, key: str, channel: str) -> None:
    with store.atomic():
        store.db.execute(f"UPDATE channel_editions SET shown = ({_NOW_SHOWN}) WHERE source = ? AND week_key = ? "
                         "AND channel = ?", [source, key, source, key, channel])


def corrected(store: Store, channels: Sequence[str]) -> list[tuple[str, str, str]]:
    """(channel, source, week key) of each week published for real on one of `channels` that the source corrected
    since its messages were made to show it. Reads only; one query."""
    if not channels:
        return []
    marks = ", ".join("?" * len(channels))
    rows = store.db.execute(
        "SELECT e.channel, e.source, e.week_key FROM channel_editions e "
        "JOIN publications p ON p.source = e.source AND p.week_key = e.week_key AND p.channel = e.channel "
        "JOIN weeks w ON w.source = e.source AND w.key = e.week_key "
        f"WHERE e.channel IN ({marks}) AND e.shown IS NOT NULL AND p.state = 'published' AND p.trial = 0 "
        "AND e.shown IS NOT (w.fingerprint || ' ' || w.title) ORDER BY p.published_at, e.source, e.week_key",
        list(channels)).fetchall()
    return [(c, s, k) for c, s, k in rows]


def correction_round(cfg: Config, store: Store, now: datetime, *, channels: Sequence[str] | None = None) -> int:
    """Edit the messages of weeks corrected after they went out, on each live channel that can (see above).
    Returns the number of weeks handled. A rate limit is recorded on the channel and ends its round; a transient
    failure leaves the week for the next round; a refusal (a message or webhook deleted) is logged and not tried
    again for that correction. The caller holds the publish lock."""
    handled = 0
    names = list(channels or registry.enabled(cfg))
    for name in {c for c, _, _ in corrected(store, names)}:
        channel = registry.make(cfg, name)
        edit = getattr(channel, "edit", None)
        held = ledger.channel_until(store, name)
        if not callable(edit) or not channel.live or held is not None and held[0] > now:
            continue  # corrected later, once the channel is live again or may send
        for _, source, key in corrected(store, [name]):
            week = store.week(source, key)
            if week is None:
                continue
            label = f"{name} {source}:{key}"
            if getattr(channel, "corrects", False):
                ids = [r["remote_id"] for r in ledger.rows_in(store, source, key, name, ("sent",))]
                try:
                    edits = edit(store, week, ids, now)
                except RateLimited as e:
                    ledger.hold_channel(store, name, e.until, str(e))
                    log.warning("%s: corrected in the source; its messages are edited after %s: %s", label,
                                when(iso(e.until)), e)
                    break
                except TransientError as e:
                    log.warning("%s: corrected in the source, but editing its messages failed (%s); tried again "
                                "at the next round", label, e)
                    continue
                except PermanentError as e:
                    log.error("%s: corrected in the source, but its messages cannot be edited: %s; this correction "
                              "is left as it is", label, e)
                else:
                    log.info("%s: corrected in the source: %s", label,
                             f"{len(edits)} message(s) edited" if edits else "no message shows what changed")
            else:
                log.info("%s: corrected in the source; its messages are left as they are (the channel is not set "
                         "to edit them)", label)
            mark_shown(store, source, key, name)
            handled += 1
    return handled
