"""A week's email units, the active subscribers, read from the database as they are needed (issue #27).

A million subscribers held as `Unit`s and a set of their addresses cost the publishing process half a gigabyte;
a `Roster` holds none of them. Planning streams it into the ledger a page at a time, its length is a count,
and while sending each worker asks, once per batch, which of its addresses are still active (`wanted`), on a
connection of its own: an unsubscribe that lands mid-run is honoured when its batch comes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bot.channels.base import Unit
from bot.store import Store

PAGE = 10_000  # subscribers read per query while planning
_ACTIVE = "SELECT id, address FROM subscribers WHERE state = 'active' AND id > ? ORDER BY id LIMIT ?"


class Roster:
    """The active subscribers as units (key: the address, ref: the subscriber id), in the order they joined."""

    def __init__(self, store: Store, path: Path):
        self.store, self.path = store, path

    def __len__(self) -> int:
        return self.store.db.execute("SELECT count(*) FROM subscribers WHERE state = 'active'").fetchone()[0]

    def __bool__(self) -> bool:
        return self.store.db.execute("SELECT 1 FROM subscribers WHERE state = 'active' LIMIT 1").fetchone() is not None

    def __iter__(self) -> Iterator[Unit]:
        after = 0
        while rows := self.store.db.execute(_ACTIVE, [after, PAGE]).fetchall():
            for sid, address in rows:
                yield Unit(key=address, ref=str(sid))
            after = rows[-1][0]

    def wanted(self, keys: list[str]) -> set[str]:
        """Those of `keys` (addresses) still active now. Any thread: a connection of its own, per call (once per
        batch, so its cost is nothing beside the batch's messages)."""
        if not keys:
            return set()
        conn = sqlite3.connect(str(self.path), timeout=30)
        try:
            found: set[str] = set()
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                found.update(r[0] for r in conn.execute(
                    f"SELECT address FROM subscribers WHERE state = 'active' AND address IN "
                    f"({', '.join('?' * len(part))})", part))
            return found
        finally:
            conn.close()
