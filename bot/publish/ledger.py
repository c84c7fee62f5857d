"""The publishing ledger in SQLite: what each channel must send for a week, and what became of each unit.

`publications` has one row per (source, week, channel): `sending` once planned, `published` when every unit
is done. `deliveries` has one row per unit: planned -> sending -> sent | failed | bounced | skipped.

A trial (a channel that is not live: email without `smtp_url` writes to the outbox) uses the same rows with
`trial` set on the publication: its units end `trial` instead of `sent`, and the publication ends `trial`
instead of `published`, so nothing a trial did counts as having reached anyone. When the channel goes live, a
trial publication is either planned again for real (`plan` replaces it) or given up (`skip`).
An ordered channel (a thread on X) adds `uncertain` (the request went out, no answer came back: reconciled
before any resend) and `refused` (the remote side refused it for good: the chain waits for `paperbot resolve`);
both keep the publication unfinished. `channel_state` holds a channel's rate-limited-until.
`failed` is retried by the next run; `sending` found at the start of a run was in flight when a previous
run died, and is sent again (with the same Message-ID). A unit that may have gone out and is sent again without
being looked for first (email, a Discord webhook alone) keeps why in `possible_duplicate` (issue #21): it may
show twice, and `paperbot publish`, `history` and an alert say so. Planning is one transaction; the sending threads
write through `LedgerWriter`, whose every mark is its own committed transaction (WAL, synchronous=NORMAL:
durable against the process being killed at any instant; see README "Publishing").
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.channels.base import StorageError, Unit, storage_error
from bot.edition.holdings import went_out_at as went_out_at  # the one definition of "went out", read by editions too
from bot.publish.holds import channel_until, hold_channel, next_wake, set_channel_until  # noqa: F401 (re-exported)
from bot.store import Store, iso, parse_time

STATES = ("planned", "sending", "sent", "failed", "bounced", "skipped", "trial", "uncertain", "refused")
OPEN = ("planned", "sending", "failed")  # still to send
_OPEN_SQL = "('planned', 'sending', 'failed')"
# An ordered chain's rows that wait for a reconcile or the operator (`paperbot resolve`): not sent, not given up.
WAITING = ("uncertain", "refused")
_UNFINISHED_SQL = "('planned', 'sending', 'failed', 'uncertain', 'refused')"


@dataclass(frozen=True)
class Publication:
    source: str
    week_key: str
    channel: str
    state: str  # sending | trial | published | skipped
    units: int
    planned_at: str
    published_at: str | None
    trial: bool = False  # planned on a channel that was not live: its units went to a local folder
    note: str | None = None  # why it was skipped, or that it went to nobody


def publication(store: Store, source: str, key: str, channel: str) -> Publication | None:
    row = store.db.execute(
        f"SELECT {_PUB_COLUMNS} FROM publications WHERE source = ? AND week_key = ? AND channel = ?",
        [source, key, channel]).fetchone()
    return _publication(row) if row else None


_PUB_COLUMNS = "source, week_key, channel, state, units, planned_at, published_at, trial, note"


def _publication(row: tuple) -> Publication:
    return Publication(*row[:7], trial=bool(row[7]), note=row[8])


def publications(store: Store, source: str | None = None, key: str | None = None) -> list[Publication]:
    where, args = [], []
    if source is not None:
        where.append("source = ?")
        args.append(source)
    if key is not None:
        where.append("week_key = ?")
        args.append(key)
    sql = (f"SELECT {_PUB_COLUMNS} FROM publications"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY planned_at, source, week_key, channel")
    return [_publication(r) for r in store.db.execute(sql, args).fetchall()]


def plan(store: Store, source: str, key: str, channel: str, units: Iterable[Unit], now: datetime, *,
         trial: bool = False, note: str | None = None) -> int:
    """Record every unit to send, and the publication, in one transaction. Returns the number of rows.

    A live plan replaces a trial publication of the same week (its rows were only ever written to a local
    folder), in the same transaction: the week is then sent for real, exactly as if never tried."""
    t = iso(now)
    conn = store.db.conn
    where = [source, key, channel]
    with store.atomic():
        old = publication(store, source, key, channel)
        if old is not None:
            if trial or not old.trial:
                raise ValueError(f"{channel} {source}:{key} is planned already")
            conn.execute("DELETE FROM deliveries WHERE source = ? AND week_key = ? AND channel = ?", where)
            conn.execute("DELETE FROM publications WHERE source = ? AND week_key = ? AND channel = ?", where)
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO deliveries (source, week_key, channel, unit, ref, state, attempts, "
            "updated_at) VALUES (?, ?, ?, ?, ?, 'planned', 0, ?)",
            ((source, key, channel, u.key, u.ref, t) for u in units))
        n = conn.total_changes - before
        conn.execute("INSERT INTO publications (source, week_key, channel, state, units, planned_at, trial, note) "
                     "VALUES (?, ?, ?, 'sending', ?, ?, ?, ?)", [source, key, channel, n, t, int(trial), note])
    return n


def top_up(store: Store, source: str, key: str, channel: str, units: Iterable[Unit], now: datetime) -> int:
    """Add the units of a publication still being sent that it does not hold yet (issue #24: a reader who
    confirmed while the week's email went out), each once. Returns how many were added; 0 when the
    publication is not `sending` any more."""
    conn = store.db.conn
    with store.atomic():
        pub = publication(store, source, key, channel)
        if pub is None or pub.state != "sending" or pub.trial:
            return 0
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO deliveries (source, week_key, channel, unit, ref, state, attempts, "
            "updated_at) VALUES (?, ?, ?, ?, ?, 'planned', 0, ?)",
            ((source, key, channel, u.key, u.ref, iso(now)) for u in units))
        n = conn.total_changes - before
        if n:
            conn.execute("UPDATE publications SET units = units + ? WHERE source = ? AND week_key = ? "
                         "AND channel = ?", [n, source, key, channel])
    return n


def add_note(store: Store, source: str, key: str, channel: str, note: str) -> None:
    """Add `note` to what the publication's note says (once): `paperbot history` shows it."""
    with store.atomic():
        store.db.execute("UPDATE publications SET note = CASE WHEN coalesce(note, '') = '' THEN ?1 "
                         "WHEN instr(note, ?1) > 0 THEN note ELSE note || '; ' || ?1 END "
                         "WHERE source = ?2 AND week_key = ?3 AND channel = ?4", [note, source, key, channel])


def skip(store: Store, source: str, key: str, channel: str, note: str, now: datetime) -> None:
    """Give a (trial) publication up for good: it becomes `skipped` with `note` saying why, and any unit it
    still had open becomes `skipped` too, so nothing of it is ever sent."""
    where = [source, key, channel]
    with store.atomic():
        store.db.execute(f"UPDATE deliveries SET state = 'skipped', last_error = ?, updated_at = ? "
                         f"WHERE source = ? AND week_key = ? AND channel = ? AND state IN {_OPEN_SQL}",
                         [note[:1000], iso(now), *where])
        store.db.execute("UPDATE publications SET state = 'skipped', note = ? "
                         "WHERE source = ? AND week_key = ? AND channel = ?", [note, *where])


def counts(store: Store, source: str, key: str, channel: str) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for state, n in store.db.execute(
            "SELECT state, count(*) FROM deliveries WHERE source = ? AND week_key = ? AND channel = ? "
            "GROUP BY state", [source, key, channel]):
        out[state] = n
    return out


def rows_in(store: Store, source: str, key: str, channel: str, states: tuple[str, ...],
            limit: int | None = None) -> list[dict]:
    marks = ", ".join("?" * len(states))
    sql = (f"SELECT id, unit, ref, state, remote_id, attempts, last_error, updated_at, sent_at "
           f"FROM deliveries WHERE source = ? AND week_key = ? AND channel = ? AND state IN ({marks}) "
           f"ORDER BY id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = store.db.execute(sql, [source, key, channel, *states])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def possible_duplicates(store: Store, source: str, key: str, channel: str) -> list[dict]:
    """The units of a publication that may show twice (issue #21), in plan order: id, unit, state, why."""
    cur = store.db.execute("SELECT id, unit, state, possible_duplicate FROM deliveries WHERE source = ? "
                           "AND week_key = ? AND channel = ? AND possible_duplicate IS NOT NULL ORDER BY id",
                           [source, key, channel])
    return [{"id": i, "unit": u, "state": st, "why": why} for i, u, st, why in cur.fetchall()]


def finish(store: Store, source: str, key: str, channel: str, now: datetime) -> bool:
    """Mark the publication published (a trial one: `trial`) if no unit is left to send. True if it is done."""
    with store.atomic():
        left = store.db.execute(
            f"SELECT count(*) FROM deliveries WHERE source = ? AND week_key = ? AND channel = ? "
            f"AND state IN {_UNFINISHED_SQL}", [source, key, channel]).fetchone()[0]
        if left:
            return False
        store.db.execute("UPDATE publications SET state = 'trial' "
                         "WHERE source = ? AND week_key = ? AND channel = ? AND trial = 1 AND state = 'sending'",
                         [source, key, channel])
        store.db.execute("UPDATE publications SET state = 'published', "
                         "published_at = coalesce(published_at, ?) "
                         "WHERE source = ? AND week_key = ? AND channel = ? AND trial = 0 AND state = 'sending'",
                         [iso(now), source, key, channel])
    return True


def sent_times(store: Store, channel: str, since: datetime) -> list[datetime]:
    """When each unit sent for real on `channel` after `since` went out, oldest first (the daily budget)."""
    rows = store.db.execute("SELECT sent_at FROM deliveries WHERE channel = ? AND state = 'sent' AND sent_at > ? "
                            "ORDER BY sent_at", [channel, iso(since)]).fetchall()
    return [parse_time(r[0]) for r in rows]


def resolve(store: Store, source: str, key: str, channel: str, number: int, *, posted: str | None,
            now: datetime) -> dict:
    """The operator settles unit `number` (1-based, in plan order) of a chain: `posted` records it as sent
    with that remote id; None puts it back to `planned` to be sent again. Returns the row as it was.
    ValueError when there is no such unit or it is already settled."""
    rows = rows_in(store, source, key, channel, STATES)
    if not 1 <= number <= len(rows):
        raise ValueError(f"{channel} {source}:{key} has no unit {number} (it has {len(rows)})")
    row = rows[number - 1]
    if row["state"] not in (*WAITING, "failed", "sending"):
        raise ValueError(f"unit {number} of {channel} {source}:{key} is {row['state']}, not waiting for the "
                         "operator (only uncertain, refused, failed or sending units can be resolved)")
    with store.atomic():
        if posted is not None:
            store.db.execute("UPDATE deliveries SET state = 'sent', remote_id = ?, last_error = ?, updated_at = ?, "
                             "sent_at = ? WHERE id = ?",
                             [posted, f"resolved by the operator: posted as {posted}", iso(now), iso(now), row["id"]])
        else:
            store.db.execute("UPDATE deliveries SET state = 'planned', last_error = ?, updated_at = ? WHERE id = ?",
                             [f"resolved by the operator: to be sent again (was {row['state']}: "
                              f"{row['last_error'] or ''})"[:1000], iso(now), row["id"]])
    return row


def db_path(store: Store) -> Path:
    """The file behind `store`; the sending threads open their own connection to it."""
    for _, name, file in store.db.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file)
    raise ValueError("publishing needs a database file, not an in-memory store")


class LedgerWriter:
    """The sending threads' connection: every mark is one committed transaction, serialised by a lock.

    One connection behind a lock (rather than one per thread) means SQLite never sees two writers of ours
    at once, so no thread ever sleeps in SQLite's busy handler.
    """

    def __init__(self, path: Path, source: str, key: str, channel: str, *, trial: bool = False):
        self.where = (source, key, channel)
        self.trial = trial  # a delivered unit is marked `trial`, not `sent`: it only reached a local folder
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA busy_timeout = 30000")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.OperationalError as e:
            raise storage_error(e, "open the ledger in", path) from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _run(self, sql: str, args: list) -> sqlite3.Cursor:
        """One statement, one transaction. Disk full, I/O, read-only and lock errors become StorageError,
        raised before anything else happens to the unit: a mark that failed is a mark not made."""
        with self._lock:
            try:
                return self._conn.execute(sql, args)
            except sqlite3.OperationalError as e:
                raise storage_error(e, "write the ledger in", self.path) from e

    def open_page(self, after_id: int, limit: int) -> list[tuple[int, str, str | None, str]]:
        """(id, unit, ref, state) of the next rows still to send, by id."""
        return self._run(
            f"SELECT id, unit, ref, state FROM deliveries WHERE source = ? AND week_key = ? "
            f"AND channel = ? AND state IN {_OPEN_SQL} AND id > ? ORDER BY id LIMIT ?",
            [*self.where, after_id, limit]).fetchall()

    def open_count(self) -> int:
        return self._run(
            f"SELECT count(*) FROM deliveries WHERE source = ? AND week_key = ? AND channel = ? "
            f"AND state IN {_OPEN_SQL}", list(self.where)).fetchone()[0]

    def _now(self) -> str:
        return iso(datetime.now(UTC))

    def chain(self) -> list[tuple[int, str, str | None, str, str | None]]:
        """(id, unit, ref, state, remote_id) of every row of the publication, in plan order: an ordered
        channel's whole chain, sent units included (their ids are the later units' `prior`)."""
        return self._run("SELECT id, unit, ref, state, remote_id FROM deliveries WHERE source = ? AND week_key = ? "
                         "AND channel = ? ORDER BY id", list(self.where)).fetchall()

    def channel_until(self, until: datetime, reason: str) -> None:
        """Nothing goes out on this channel before `until`, by any process (a 429's reset)."""
        with self._lock:
            try:
                set_channel_until(self._conn, self.where[2], until, reason)
            except sqlite3.OperationalError as e:
                raise storage_error(e, "write the ledger in", self.path) from e

    def sending(self, row_id: int) -> None:
        self._run("UPDATE deliveries SET state = 'sending', attempts = attempts + 1, "
                  "updated_at = ? WHERE id = ?", [self._now(), row_id])

    def _many(self, sql: str, rows: list) -> None:
        """One statement over many rows, one committed transaction (issue #27: a commit per message was the
        ledger's cost)."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(sql, rows)
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                raise storage_error(e, "write the ledger in", self.path) from e

    def sending_batch(self, row_ids: list[int]) -> None:
        """`sending` for a batch, committed before the first of them is sent."""
        t = self._now()
        self._many("UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                   [(t, i) for i in row_ids])

    def sent_batch(self, done: list[tuple[int, str, str]]) -> None:
        """(row id, remote id, when) of units delivered: `sent` (or `trial`) in one transaction."""
        state = "trial" if self.trial else "sent"
        self._many("UPDATE deliveries SET state = ?, remote_id = ?, last_error = NULL, updated_at = ?, sent_at = ? "
                   "WHERE id = ?", [(state, rid, t, t, i) for i, rid, t in done])

    def unsend_batch(self, rows: list[tuple[int, str]]) -> None:
        """(row id, state before) of units marked `sending` whose turn never came (the run stopped first): back
        to the state they had, the attempt not counted; they certainly did not go out."""
        self._many("UPDATE deliveries SET state = ?, attempts = max(attempts - 1, 0) WHERE id = ? "
                   "AND state = 'sending'", [(state, i) for i, state in rows])

    def sent(self, row_id: int, remote_id: str) -> None:
        """The unit is delivered: `sent`, or `trial` when this publication is a trial."""
        t = self._now()
        self._run("UPDATE deliveries SET state = ?, remote_id = ?, last_error = NULL, "
                  "updated_at = ?, sent_at = ? WHERE id = ?",
                  ["trial" if self.trial else "sent", remote_id, t, t, row_id])

    def ended(self, row_id: int, state: str, error: str) -> None:
        """failed (retry later), bounced (never again), skipped (no longer wanted), and for a chain uncertain
        (reconcile first) or refused (the operator decides)."""
        assert state in ("failed", "bounced", "skipped", "uncertain", "refused")
        self._run("UPDATE deliveries SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
                  [state, error[:1000], self._now(), row_id])

    def possible_duplicate(self, row_id: int, why: str) -> None:
        """The unit may have gone out and is sent again without being looked for: it may show twice. The first
        reason is kept; the row's state is left to the send that follows."""
        self._run("UPDATE deliveries SET possible_duplicate = coalesce(possible_duplicate, ?) WHERE id = ?",
                  [why[:1000], row_id])

    def mark_in_flight(self, why: str) -> int:
        """Mark every row left `sending` by a run that died mid-send a possible duplicate; how many."""
        return self._run("UPDATE deliveries SET possible_duplicate = coalesce(possible_duplicate, ?) WHERE "
                         "source = ? AND week_key = ? AND channel = ? AND state = 'sending'",
                         [why[:1000], *self.where]).rowcount

    def in_flight(self) -> list[int]:
        """The rows left `sending` by a run that died mid-send: each may have gone out."""
        return [r[0] for r in self._run("SELECT id FROM deliveries WHERE source = ? AND week_key = ? AND "
                                        "channel = ? AND state = 'sending'", list(self.where)).fetchall()]

    def ended_if_possible(self, row_id: int, state: str, error: str) -> None:
        """`ended`, unless the ledger cannot be written either (a full disk): the row then keeps its
        `sending` mark, which the next run resends, so nothing is lost either way."""
        try:
            self.ended(row_id, state, error)
        except StorageError:
            pass
