"""The daily cap (issue #21): at most `[publish] max_per_day` editions of one source go out on one channel in any
24 hours; the rest wait, oldest first, for a slot. An edition of late papers (`+late1`) counts like any other.

An edition "goes out" when a live channel plans it (its non-trial publication's `planned_at`). A week the editor
named in `paperbot approve` (`weeks.approved_at`) is sent past the cap, and still counts. `next_free` and
`schedule` are pure; the rest reads the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.config import Config
from bot.store import Store, WeekRow, iso, parse_time

WINDOW = timedelta(hours=24)


def next_free(times: Sequence[datetime], now: datetime, max_per_day: int) -> datetime | None:
    """None if one more edition may go out at `now` after editions that went out at `times`; else when it may."""
    recent = sorted(t for t in times if now - WINDOW < t <= now)
    if len(recent) < max_per_day:
        return None
    return recent[len(recent) - max_per_day] + WINDOW


def schedule(ready: Sequence[datetime], max_per_day: int) -> list[datetime]:
    """When editions ready at `ready` (in order) go out under the cap, each as soon as it may (a replay's view)."""
    out: list[datetime] = []
    for t in ready:
        at = max([t, *out[-1:]])
        while (free := next_free(out, at, max_per_day)) is not None:
            at = free
        out.append(at)
    return out


def went_out(store: Store, source: str, channel: str, now: datetime) -> list[datetime]:
    """When the source's editions planned for real on `channel` in the 24 hours before `now` were planned."""
    rows = store.db.execute(
        "SELECT planned_at FROM publications WHERE channel = ? AND source = ? AND trial = 0 AND state != 'skipped' "
        "AND planned_at > ?", [channel, source, iso(now - WINDOW)]).fetchall()
    return [parse_time(r[0]) for r in rows]


def approved(store: Store, week: WeekRow) -> bool:
    row = store.db.execute("SELECT approved_at FROM weeks WHERE source = ? AND key = ?",
                           [week.source, week.key]).fetchone()
    return bool(row and row[0])


def wait(cfg: Config, store: Store, week: WeekRow, channel: str, now: datetime) -> datetime | None:
    """When `week` may go out on `channel` under the cap (None: now). An approved week is not held back."""
    if approved(store, week):
        return None
    return next_free(went_out(store, week.source, channel, now), now, cfg.publish.max_per_day)


def note(cfg: Config, source: str, channel: str, until: datetime) -> str:
    return (f"waits for the daily cap ([publish] max_per_day = {cfg.publish.max_per_day} editions of {source} on "
            f"{channel} in 24 h): next at {until.isoformat(timespec='minutes')} (`paperbot approve` sends it now)")


def waiting(cfg: Config, store: Store, weeks: Sequence[WeekRow], now: datetime) -> dict[tuple[str, str], dict]:
    """{(source, key): {channel: until}} for the ready `weeks` (oldest first) the cap holds back on a live
    enabled channel: the first ones take the slots left, the rest wait. Reads only."""
    from bot import channels as registry  # the registry imports every channel: only when asked

    out: dict[tuple[str, str], dict] = {}
    for name in registry.enabled(cfg):
        try:
            if not registry.make(cfg, name).live:
                continue
        except Exception:  # a channel that cannot even be built sends nothing: nothing waits for the cap there
            continue
        slots: dict[str, int] = {}
        for w in weeks:
            planned = store.db.execute("SELECT 1 FROM publications WHERE source = ? AND week_key = ? AND "
                                       "channel = ? AND trial = 0", [w.source, w.key, name]).fetchone()
            if w.state != "ready" or planned or approved(store, w):
                continue
            times = went_out(store, w.source, name, now)
            if w.source not in slots:
                slots[w.source] = max(0, cfg.publish.max_per_day - len(times))
            if slots[w.source] > 0:
                slots[w.source] -= 1
                continue
            until = next_free(times, now, cfg.publish.max_per_day) or now + WINDOW
            out.setdefault((w.source, w.key), {})[name] = until
    return out
