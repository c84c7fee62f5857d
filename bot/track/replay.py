"""Backtesting a source on its git history: every version of a file, oldest first, through a tracker.

The clock jumps from one commit's date to the next, stopping wherever a week's gate opens in between, so the
times printed are the times a live daemon polling continuously would have released each week. State kept in
a store lets a replay stop (`stop_after`) and continue later with exactly the same output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from bot.config import PublishSettings, SourceConfig
from bot.store import Store, iso, parse_time
from bot.track.gitrepo import file_history, read_blobs
from bot.track.parsing import parse_document
from bot.track.tracker import Released, next_gate, observe, release


@dataclass(frozen=True)
class ReplayResult:
    commits_processed: int
    finished: bool  # all commits done and the clock run on to `until`
    released: tuple[Released, ...]


def _advance(store: Store, settings: PublishSettings, source: str, target: datetime,
             emit: Callable[[Released], None], configs: tuple[SourceConfig, ...] = ()) -> list[Released]:
    """Move the clock to `target`, releasing weeks at the exact instants their gates open."""
    out: list[Released] = []
    while (g := next_gate(store, settings, source, configs)) is not None and g <= target:
        for r in release(store, g, settings, source, configs):
            emit(r)
            out.append(r)
    store.update_source(source, clock=iso(target))
    return out


def replay(repo: Path, path: str, store: Store, settings: PublishSettings, *, source: str = "replay",
           fmt: str = "auto", first_parent: bool = False, stop_after: int | None = None,
           until: datetime | None = None, emit: Callable[[Released], None] = lambda r: None,
           timezone: tzinfo | None = None, expect_papers: int | None = None) -> ReplayResult:
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
    released: list[Released] = []
    blobs = read_blobs(repo, [f"{c.sha}:{path}" for c in todo])
    for commit, data in zip(todo, blobs, strict=True):
        at = commit.date if clock is None or commit.date >= clock else clock
        released += _advance(store, settings, source, at, emit, configs)
        doc = parse_document(data or b"", at.astimezone(settings.timezone).date(), fmt)
        observe(store, source, doc, at, commit.sha, settings,
                content_hash=hashlib.sha256(data or b"").hexdigest()[:16], utc_offset=commit.date.utcoffset())
        for r in release(store, at, settings, source, configs):
            emit(r)
            released.append(r)
        store.update_source(source, clock=iso(at))
        clock = at
    remaining = [c for c in commits if c.sha not in done and c not in todo]
    finished = not remaining
    if finished and commits:
        end = until or commits[-1].date + max(settings.max_wait, settings.wait_for_papers) + timedelta(days=1)
        if clock is None or end > clock:
            released += _advance(store, settings, source, end, emit, configs)
    return ReplayResult(len(todo), finished, tuple(released))
