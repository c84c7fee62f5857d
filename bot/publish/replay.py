"""Backtesting a source on its git history: every version of a file, oldest first, through a tracker.

The clock jumps from one commit's date to the next, stopping wherever a week's gate opens in between, so the
times printed are the times a live daemon polling continuously would have released each week. State kept in
a store lets a replay stop (`stop_after`) and continue later with exactly the same output.

Every week is taken to go out the moment it is released (on one channel, "replay"), so a paper added to a week
after its release is a late addition (bot/publish/late.py): the next release of the source carries it, or, if
none comes within `late_max_wait`, an edition of late papers alone at that deadline. Each is reported
(`emit_late`), so a backtest shows when every paper would have reached readers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from bot.config import PublishSettings, SourceConfig
from bot.edition import holdings
from bot.publish import late
from bot.store import Store, iso, parse_time
from bot.track.digest_cache import EMPTY
from bot.track.gitrepo import file_history, read_blobs
from bot.track.late import LateEvent, deadline
from bot.track.parsing import parse_document_again
from bot.track.tracker import Released, next_gate, observe, release

CHANNEL = "replay"  # the one channel of a replay: every week goes out when it is released


@dataclass(frozen=True)
class ReplayResult:
    commits_processed: int
    finished: bool  # all commits done and the clock run on to `until`
    released: tuple[Released, ...]
    late: tuple[LateEvent, ...] = ()
    held: tuple[Released, ...] = ()  # weeks the age guard held (issue #21): emitted, never gone out


class _Out:
    """What the replay reports, in order: releases, and the late papers each release (or deadline) carries."""

    def __init__(self, emit: Callable[[Released], None], emit_late: Callable[[LateEvent], None]):
        self.emit, self.emit_late = emit, emit_late
        self.released: list[Released] = []
        self.late: list[LateEvent] = []
        self.held: list[Released] = []

    def went_out(self, store: Store, r: Released) -> None:
        """Week `r` goes out now, carrying every late paper waiting; unless the age guard held it (`r.held`)."""
        self.emit(r)
        if r.held:
            self.held.append(r)
            return
        self.released.append(r)
        late.record_edition(store, r.source, r.key, CHANNEL, [p for _, p in store.papers(r.source, r.key)])
        self._carry(store, r.source, r.key, r.at)

    def alone(self, store: Store, source: str, at: datetime) -> None:
        """No release came in time: the late papers waiting go out on their own."""
        key, _ = late.standalone_key(store, source, holdings.claimable(store, source, CHANNEL))
        self._carry(store, source, key, at)

    def _carry(self, store: Store, source: str, key: str, at: datetime) -> None:
        rows = holdings.claimable(store, source, CHANNEL, exclude=key)
        late.carry(store, rows, key)
        late.mark_went_out(store, source, key, CHANNEL, at)
        for e in late.events(store, source, rows, key, at):
            self.emit_late(e)
            self.late.append(e)


def _found(store: Store, source: str, at: datetime) -> None:
    late.find(store, source, CHANNEL, at, lambda key: None)  # weeks that went out say so when they do


def _advance(store: Store, settings: PublishSettings, source: str, target: datetime, out: _Out,
             configs: tuple[SourceConfig, ...] = ()) -> None:
    """Move the clock to `target`, releasing weeks at the exact instants their gates open, and sending late papers
    alone when their wait for a release runs out first."""
    while True:
        g = next_gate(store, settings, source, configs)
        d = deadline(holdings.claimable(store, source, CHANNEL), settings.late_max_wait)
        if d is not None and d <= target and (g is None or d < g):
            out.alone(store, source, d)
        elif g is not None and g <= target:
            for r in release(store, g, settings, source, configs):
                out.went_out(store, r)
        else:
            break
    store.update_source(source, clock=iso(target))


def replay(repo: Path, path: str, store: Store, settings: PublishSettings, *, source: str = "replay",
           fmt: str = "auto", first_parent: bool = False, stop_after: int | None = None,
           until: datetime | None = None, emit: Callable[[Released], None] = lambda r: None,
           timezone: tzinfo | None = None, expect_papers: int | None = None,
           emit_late: Callable[[LateEvent], None] = lambda e: None) -> ReplayResult:
    """`timezone` and `expect_papers` play a source's settings of those names: without them, the clock is
    learned from the commit dates and the usual size from the weeks released, as a live source's are."""
    commits = file_history(repo, path, first_parent=first_parent)
    configs = (SourceConfig(source, "git", str(repo), (path,), timezone=timezone, expect_papers=expect_papers),)
    src = store.ensure_source(source, kind="git", location=str(repo),
                              now=commits[0].date if commits else datetime.now().astimezone())
    done = {v["version"] for v in store.versions(source)}
    todo = [c for c in commits if c.sha not in done]
    if stop_after is not None:
        todo = todo[:stop_after]
    clock = parse_time(src.get("clock"))
    out = _Out(emit, emit_late)
    blobs = read_blobs(repo, [f"{c.sha}:{path}" for c in todo])
    sections = EMPTY  # each version re-reads only the weeks whose text changed since the last (issue #28)
    for commit, data in zip(todo, blobs, strict=True):
        at = commit.date if clock is None or commit.date >= clock else clock
        _advance(store, settings, source, at, out, configs)
        doc, sections = parse_document_again(data or b"", at.astimezone(settings.timezone).date(), sections, fmt)
        observe(store, source, doc, at, commit.sha, settings,
                content_hash=hashlib.sha256(data or b"").hexdigest()[:16], utc_offset=commit.date.utcoffset())
        _found(store, source, at)
        for r in release(store, at, settings, source, configs):
            out.went_out(store, r)
        store.update_source(source, clock=iso(at))
        clock = at
    remaining = [c for c in commits if c.sha not in done and c not in todo]
    finished = not remaining
    if finished and commits:
        end = until or commits[-1].date + max(settings.max_wait, settings.wait_for_papers,
                                              settings.late_max_wait) + timedelta(days=1)
        if clock is None or end > clock:
            _advance(store, settings, source, end, out, configs)
    return ReplayResult(len(todo), finished, tuple(out.released), tuple(out.late), tuple(out.held))
