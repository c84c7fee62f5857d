"""A channel's rate-limited-until (`channel_state`): when it may send again and why not before (a 429's reset,
the daily budget), shared by every process through the database. Read and written by the ledger's users
(bot/publish/ledger.py re-exports these names)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from bot.store import Store, iso, parse_time


def channel_until(store: Store, channel: str, now: datetime | None = None) -> tuple[datetime, str] | None:
    """When `channel` may send again, and why it may not before (a 429's reset, the daily budget); None if it
    may send at `now` (default: the current time) or never waited."""
    row = store.db.execute("SELECT until, reason FROM channel_state WHERE channel = ?", [channel]).fetchone()
    if not row or not row[0]:
        return None
    until = parse_time(row[0])
    return (until, row[1] or "") if until > (now or datetime.now(UTC)) else None


def set_channel_until(conn: sqlite3.Connection, channel: str, until: datetime, reason: str) -> None:
    """Record that nothing goes out on `channel` before `until` (UTC), by any process. Never moves it earlier."""
    conn.execute("INSERT INTO channel_state (channel, until, reason, updated_at) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (channel) DO UPDATE SET until = excluded.until, reason = excluded.reason, "
                 "updated_at = excluded.updated_at WHERE channel_state.until IS NULL "
                 "OR channel_state.until < excluded.until",
                 [channel, iso(until), reason[:1000], iso(datetime.now(UTC))])


def hold_channel(store: Store, channel: str, until: datetime, reason: str) -> None:
    """`set_channel_until` in its own committed transaction on the main thread's store."""
    with store.atomic():
        set_channel_until(store.db.conn, channel, until, reason)


def next_wake(store: Store, now: datetime) -> datetime | None:
    """The earliest rate-limited-until still ahead of `now` on any channel: when the daemon comes back."""
    row = store.db.execute("SELECT min(until) FROM channel_state WHERE until > ?", [iso(now)]).fetchone()
    return parse_time(row[0]) if row and row[0] else None
