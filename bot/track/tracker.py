"""The tracker: feeds each parsed version of a source through the diff and the gate, and records the answers.

`observe` takes one version (a parsed `Document` and the time it changed) and records new, edited, renamed
and removed weeks in one transaction. `release` moves pending weeks whose gate has opened to `ready`, oldest
first. `next_gate` says when the next one will open, so a replay can move its clock straight there.
The clock is always an argument: nothing here reads the time.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import PublishSettings, SourceConfig
from bot.store import Store, WeekRow
from bot.track.age import HELD, held_reason
from bot.track.dates import iso_week_bounds, iso_week_key
from bot.track.diff import DiffResult, Known, diff_weeks, norm_title
from bot.track.gate import Clock, Gate, gate, is_short, source_clock, usual_papers
from bot.track.model import Document, Paper, Week

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    source: str
    version: str
    first_poll: bool
    new: tuple[str, ...] = ()
    baseline: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Released:
    source: str
    key: str
    title: str
    at: datetime
    version: str | None
    papers: int
    flagged: bool
    held: str | None = None  # why the age guard held it (state `held`): it goes out only once approved


def _known(rows: list[WeekRow]) -> dict[str, Known]:
    return {r.key: Known(r.key, r.fingerprint, r.text_hash, r.titles, r.present) for r in rows}


_URL_ID = re.compile(r"^https?://([^/?#]+)([^?#]*)(.*)$", re.IGNORECASE)


def same_entry(uid: str) -> str:
    """An entry id as compared: feeds rewrite ids cosmetically (a trailing slash, http→https, host case),
    which must not make an old entry new again."""
    m = _URL_ID.match(uid.strip())
    if not m:
        return uid.strip()
    return f"{m.group(1).lower()}{m.group(2).rstrip('/')}{m.group(3)}"


def _closed(row: WeekRow | None) -> bool:
    """An edition that takes no more papers: released, baseline (never to be published) or skipped."""
    return row is not None and row.state in ("ready", "awaiting-approval", "published", "baseline", "skipped",
                                             HELD)


def _editions(store: Store, source: str, doc: Document, at: datetime, rows: dict[str, WeekRow]) -> list[Week]:
    """Feeds and notes pages have no weeks of their own: file each paper under an ISO-week edition.

    A paper keeps the edition it was first filed under. A new one goes to the week it was published in
    (feeds) or first seen in (notes); if that edition is closed (released, or baseline), to the week it was
    first seen, and if that one is closed too, to the next week's. Papers that drop out of the feed stay put.
    """
    stored: dict[str, list[Paper]] = {}
    where: dict[str, str] = {}
    for key, p in store.papers(source):
        stored.setdefault(key, []).append(p)
        where[same_entry(p.uid)] = key
    seen_week = iso_week_key(at.date())
    for w in doc.weeks:
        for p in w.papers:
            if (uid := same_entry(p.uid)) in where:
                papers = stored[where[uid]]
                papers[[same_entry(q.uid) for q in papers].index(uid)] = p
                continue
            key = w.key if doc.format == "feed" else seen_week
            if _closed(rows.get(key)):
                key = seen_week
            while _closed(rows.get(key)):  # this week's edition is closed too (baseline): the next one
                key = iso_week_key(iso_week_bounds(key)[1] + timedelta(days=1))
            stored.setdefault(key, []).append(p)
            where[uid] = key
    out = []
    for key in sorted(stored, reverse=True):
        papers = tuple(stored[key])
        first, last = iso_week_bounds(key)
        title = doc.weeks[0].title.rsplit(", week ", 1)[0] if doc.weeks else "Edition"
        blob = repr([p.fingerprint_data() for p in papers]).encode()
        out.append(Week(key=key, title=f"{title}, week {key}", papers=papers, first_day=first, last_day=last,
                        text_hash=hashlib.sha256(blob).hexdigest()[:16]))
    return out


def observe(store: Store, source: str, doc: Document, at: datetime, version: str,
            settings: PublishSettings, fetched_at: datetime | None = None, content_hash: str = "",
            utc_offset: timedelta | None = None) -> Observation:
    """Record one version of `source` as of `at` (its commit date, or the fetch time).

    `utc_offset` is the commit date's offset as its author wrote it (git only; None for a fetch time): the
    source's clock is learned from it."""
    with store.atomic():
        src = store.ensure_source(source, now=at)
        first_poll = (src.get("polls") or 0) == 0
        rows = {r.key: r for r in store.weeks(source) if r.late_of is None}  # not the late-only editions
        accumulate = doc.format in ("feed", "notes")
        weeks = _editions(store, source, doc, at, rows) if accumulate else list(doc.weeks)
        result: DiffResult = diff_weeks(_known(list(rows.values())), store.aliases(source), weeks)
        newest = sorted(result.new, key=lambda w: (w.last_day or at.date(), w.key), reverse=True)
        backfilled = {w.key for w in newest[: settings.backfill]} if first_poll else set()
        new_keys, baseline = [], []
        for w in result.new:
            state = "baseline" if first_poll and w.key not in backfilled else "pending"
            (baseline if state == "baseline" else new_keys).append(w.key)
            store.upsert_week(
                source, w.key, title=w.title, state=state, first_seen=at, last_changed=at,
                fingerprint=w.fingerprint, text_hash=w.text_hash, titles=[norm_title(p.title) for p in w.papers],
                present=True, flagged=False, backfill=w.key in backfilled, placeholders=w.has_placeholders,
                first_day=w.first_day, last_day=w.last_day, n_papers=len(w.papers),
            )
            store.replace_papers(source, w.key, w.papers)
        for key, w in result.matched.items():
            row = rows[key]
            fields = {"title": w.title, "present": True, "text_hash": w.text_hash,
                      "placeholders": w.has_placeholders, "n_papers": len(w.papers)}
            if w.fingerprint != row.fingerprint:
                fields.update(fingerprint=w.fingerprint, last_changed=at,
                              titles=[norm_title(p.title) for p in w.papers])
                store.replace_papers(source, key, w.papers)
            if fields["title"] != row.title or not row.present or key in result.edited:
                store.upsert_week(source, key, **fields)
        for old, now_key in result.renamed.items():
            store.add_alias(source, now_key, old)
            log.info("%s: week %s is now written as %s (kept as %s)", source, old, now_key, old)
        if not accumulate:
            for key in result.removed:
                store.upsert_week(source, key, present=False)
        for w in result.ignored:
            log.info("%s: heading %r at line %d repeats a week already in this version; ignored",
                     source, w.title[:120], w.line)  # a hostile heading may be 64k characters long (#20)
        store.record_version(source, version, at, fetched_at or at, content_hash, len(weeks),
                             new_keys, list(result.edited), utc_offset=utc_offset)
        store.record_poll(source, version, fetched_at or at)
    return Observation(
        source=source, version=version, first_poll=first_poll, new=tuple(new_keys), baseline=tuple(baseline),
        edited=result.edited, renamed=dict(result.renamed), removed=() if accumulate else result.removed,
    )


@dataclass(frozen=True)
class SourceRules:
    """What gates a source's weeks besides the settings: its clock and the papers a complete week has."""

    clock: Clock
    expected: int | None  # None: unknown (no wait for papers)
    expected_from: str  # "config", "learned from N weeks" or "no history"

    def gate(self, week: WeekRow, settings: PublishSettings) -> Gate | None:
        return gate(week, settings, self.clock.zone, self.expected)


def source_rules(store: Store, source: str, settings: PublishSettings,
                 config: SourceConfig | None = None) -> SourceRules:
    """The source's clock (its `timezone`, else learned from its commit dates, else the default) and usual size
    (its `expect_papers`, else the median of its newest finished weeks)."""
    explicit_zone = config.timezone if config else None
    clock = source_clock(explicit_zone, [] if explicit_zone else store.commit_offsets(source), settings.timezone)
    if config is not None and config.expect_papers is not None:
        return SourceRules(clock, config.expect_papers, "config")
    counts = store.finished_counts(source)
    expected = usual_papers(counts)
    return SourceRules(clock, expected, "no history" if expected is None else f"learned from {len(counts)} weeks")


def _rules(store: Store, settings: PublishSettings, sources: Iterable[SourceConfig]) -> Callable[[str], SourceRules]:
    """A per-source cache of `source_rules` for one pass over pending weeks."""
    configs = {s.name: s for s in sources}
    cache: dict[str, SourceRules] = {}

    def get(name: str) -> SourceRules:
        if name not in cache:
            cache[name] = source_rules(store, name, settings, configs.get(name))
        return cache[name]
    return get


def next_gate(store: Store, settings: PublishSettings, source: str | None = None,
              sources: Iterable[SourceConfig] = ()) -> datetime | None:
    rules = _rules(store, settings, sources)
    gates = [g.at for w in store.weeks(source, state="pending") if (g := rules(w.source).gate(w, settings))]
    return min(gates) if gates else None


def release(store: Store, now: datetime, settings: PublishSettings, source: str | None = None,
            sources: Iterable[SourceConfig] = ()) -> list[Released]:
    """Make every pending week whose gate is open at `now` ready, oldest first. Ready is once and for all.

    A week the age guard judges stale (bot/track/age.py: judged here, once, at the instant its gate opened)
    becomes `held` instead, with the reason in `weeks.held`: it goes out only once `paperbot approve` names it.
    `sources`: the configured sources, for their own `timezone` and `expect_papers`."""
    rules = _rules(store, settings, sources)
    due = []
    for w in store.weeks(source, state="pending"):
        g = rules(w.source).gate(w, settings)
        if g is not None and g.at <= now:
            due.append((w, g))
    due.sort(key=lambda wg: (wg[0].last_day or wg[0].first_seen.date(), wg[0].key, wg[0].source))
    out = []
    with store.atomic():
        for w, g in due:
            src = store.source(w.source) or {}
            newest = store.newest_released_day(w.source, w.first_seen)
            why = held_reason(w, newest, min(g.at, now), rules(w.source).clock.zone, settings.max_age)
            if why is not None:
                store.upsert_week(w.source, w.key, state=HELD, held=why, ready_at=now, flagged=g.flagged,
                                  ready_version=src.get("last_version"))
                log.warning("%s: week %s is held, not sent: %s; `paperbot approve %s:%s` sends it (or "
                            "`paperbot skip --held %s` gives them all up)", w.source, w.key, why, w.source, w.key,
                            w.source)
                out.append(Released(w.source, w.key, w.title, now, src.get("last_version"), w.n_papers,
                                    g.flagged, held=why))
                continue
            store.upsert_week(w.source, w.key, state="ready", ready_at=now, flagged=g.flagged,
                              ready_version=src.get("last_version"))
            if g.flagged:
                r = rules(w.source)
                if is_short(w.n_papers, r.expected) and settings.wait_for_papers:
                    log.warning("%s: week %s is ready with %d papers where its weeks usually have %d (%s); "
                                "waited wait_for_papers past its last day; flagged", w.source, w.key,
                                w.n_papers, r.expected, r.expected_from)
                else:
                    log.warning("%s: week %s is ready after max_wait without being settled and complete "
                                "(placeholders=%s); flagged", w.source, w.key, w.placeholders)
            out.append(Released(w.source, w.key, w.title, now, src.get("last_version"), w.n_papers, g.flagged))
    return out
