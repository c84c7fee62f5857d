"""SQLite state: the database of sources, versions seen, weeks and their papers, and the ledger beside them.

`Store.open` applies the schema's migrations (schema.py, in order) and runs the database in WAL mode so
`paperbot weeks` can read while the daemon writes. Every change a poll makes happens inside `store.atomic()`, so
a crash leaves either the whole version recorded or none of it. The queries are grouped by what they serve:
sources.py, weeks.py, papers.py, arxiv.py (#32: arXiv's records); rows.py turns stored values into Python ones.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from bot.store import files
from bot.store.arxiv import ArxivQueries
from bot.store.papers import PaperQueries
from bot.store.rows import WeekRow, iso, parse_time  # noqa: F401 (imported from bot.store everywhere)
from bot.store.schema import migrations
from bot.store.sources import SourceQueries
from bot.store.weeks import WeekQueries


class Store(SourceQueries, WeekQueries, PaperQueries, ArxivQueries):
    """The database, migrated on open, and every query on it (grouped by what they serve in sources.py, weeks.py
    and papers.py; the ledger, subscribers and late additions keep their own SQL beside their logic)."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    @classmethod
    def open(cls, path: str | Path | None) -> Store:
        """Open (creating if needed) the database at `path`, or an in-memory one for None."""
        if path is None:
            db = sqlite_utils.Database(memory=True)
        else:
            path = Path(path)
            path.parent.mkdir(mode=files.DIR_MODE, parents=True, exist_ok=True)
            files.tighten(path.parent, db_name=path.name)  # issue #24: an older state folder made private, once
            db = sqlite_utils.Database(path)
            db.execute("PRAGMA busy_timeout = 10000")
            # Two processes opening a new database at once must not both create its tables.
            lock_path = path.with_name(path.name + ".migrate.lock")
            with open(os.open(lock_path, os.O_RDWR | os.O_CREAT, files.FILE_MODE), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                db.enable_wal()
                migrations.apply(db)
            # SQLite gives the WAL and SHM the database's mode: 0600 for every one of them, whatever the umask
            files.make_private(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            return cls(db)
        migrations.apply(db)
        return cls(db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction; nested calls are savepoints. The outermost takes the write lock up front
        (BEGIN IMMEDIATE), so a writer in another process makes us wait (busy_timeout) instead of failing
        halfway with "database is locked"."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")  # a COMMIT that fails (disk full) leaves the transaction open: roll it back
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

