"""A week's email units, the active subscribers, read from the database as they are needed (issue #27).

A million subscribers held as `Unit`s and a set of their addresses cost the publishing process half a gigabyte;
a `Roster` holds none of them. Planning streams it into the ledger a page at a time and its length is a count.
While sending, `wanted` answers which planned addresses are still wanted: all but those no longer active (an
unsubscribe, a bounce, a removal since the week was planned), found by one query over the week's open rows when
the sending starts, so what is held is the few who left, not the many who stay.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from bot.channels.base import Unit
from bot.store import Store

PAGE = 10_000  # subscribers read per query while planning
_ACTIVE = "SELECT id, address FROM subscribers WHERE state = 'active' AND id > ? ORDER BY id LIMIT ?"
_GONE = ("SELECT d.unit FROM deliveries d WHERE d.source = ? AND d.week_key = ? AND d.channel = ? "
         "AND d.state IN ('planned', 'sending', 'failed') AND NOT EXISTS "
         "(SELECT 1 FROM subscribers s WHERE s.address = d.unit AND s.state = 'active')")


class Roster:
    """The active subscribers as units (key: the address, ref: the subscriber id), in the order they joined."""

    def __init__(self, store: Store, path: Path, source: str, key: str, channel: str):
        self.store, self.path, self.where = store, path, (source, key, channel)
        self._gone: set[str] | None = None
        self._lock = threading.Lock()

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
        """Those of `keys` (planned addresses) still wanted: any thread. The first call reads, on a connection
        of its own, who among the week's open rows is no longer active; later calls are set lookups."""
        with self._lock:
            if self._gone is None:
                conn = sqlite3.connect(str(self.path), timeout=30)
                try:
                    self._gone = {r[0] for r in conn.execute(_GONE, list(self.where))}
                finally:
                    conn.close()
            gone = self._gone
        return {k for k in keys if k not in gone}
