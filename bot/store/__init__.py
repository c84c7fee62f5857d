"""SQLite state: sources, versions seen, weeks and their papers. The only module that writes the database.

The schema evolves through `sqlite_utils.Migrations`; the database runs in WAL mode so `paperbot weeks` can
read while the daemon writes. Every change a poll makes happens inside `store.atomic()`, so a crash leaves
either the whole version recorded or none of it.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from bot.track.model import Link, Paper

migrations = Migrations("paperbot")


@migrations()
def m001_tracker(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "name": str, "kind": str, "location": str, "created_at": str, "polls": int,
            "last_version": str, "last_polled": str, "clock": str,
            "last_error": str, "last_error_at": str, "error_count": int, "validators": str,
        },
        pk="name", defaults={"polls": 0, "error_count": 0},
    )
    db["versions"].create(
        {"id": int, "source": str, "version": str, "changed_at": str, "fetched_at": str,
         "content_hash": str, "n_weeks": int, "new": str, "edited": str},
        pk="id", foreign_keys=[("source", "sources", "name")],
    )
    db["versions"].create_index(["source", "version"])
    db["weeks"].create(
        {
            "source": str, "key": str, "title": str, "state": str, "first_seen": str, "last_changed": str,
            "fingerprint": str, "text_hash": str, "titles": str, "present": int, "flagged": int,
            "backfill": int, "placeholders": int, "first_day": str, "last_day": str, "ready_at": str,
            "ready_version": str, "n_papers": int,
        },
        pk=("source", "key"), foreign_keys=[("source", "sources", "name")],
        defaults={"present": 1, "flagged": 0, "backfill": 0, "placeholders": 0, "n_papers": 0},
    )
    db["weeks"].create_index(["state"])
    db["aliases"].create({"source": str, "alias": str, "key": str}, pk=("source", "alias"))
    db["papers"].create(
        {"source": str, "week_key": str, "position": int, "number": int, "title": str, "summary": str,
         "links": str, "release_date": str, "authors": str, "published": str, "uid": str},
        pk=("source", "week_key", "position"),
    )
    db["papers"].create_index(["source", "uid"])


@migrations()
def m003_publishing(db: sqlite_utils.Database) -> None:
    """The publishing ledger (bot/publish/ledger.py): one row per unit a channel sends, one per week and channel."""
    db.execute("""
        CREATE TABLE publications (
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('sending', 'published')),
            units INTEGER NOT NULL, planned_at TEXT NOT NULL, published_at TEXT,
            PRIMARY KEY (source, week_key, channel)
        )""")
    db.execute("""
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            unit TEXT NOT NULL, ref TEXT,
            state TEXT NOT NULL DEFAULT 'planned'
                CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'bounced', 'skipped')),
            remote_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            updated_at TEXT, sent_at TEXT
        )""")
    db.execute("CREATE UNIQUE INDEX idx_deliveries_unit ON deliveries (source, week_key, channel, unit)")
    # No index on `state`: each send updates it twice, and an index on it would double the cost of each mark.
    db.execute("CREATE INDEX idx_deliveries_week ON deliveries (source, week_key, channel)")


@migrations()
def m004_subscribers(db: sqlite_utils.Database) -> None:
    """Newsletter subscribers (bot/channels/email/subscribers.py). Unsubscribed rows stay: no import re-adds them."""
    db.execute("""
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY,
            address TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'active'
                CHECK (state IN ('pending', 'active', 'unsubscribed', 'bounced')),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            origin TEXT NOT NULL DEFAULT '',
            reason TEXT
        )""")
    db.execute("CREATE INDEX idx_subscribers_state ON subscribers (state)")


@migrations()
def m005_source_clock(db: sqlite_utils.Database) -> None:
    """Each version's UTC offset as its commit wrote it (minutes east of UTC; NULL for a fetch time): the
    tracker learns a git source's clock from them (bot/track/gate.py, `usual_offset`). `changed_at` is kept
    in UTC, so the offset is stored beside it rather than in it."""
    db["versions"].add_column("utc_offset", int)


@migrations()
def m006_late_additions(db: sqlite_utils.Database) -> None:
    """Late additions (bot/track/late.py): papers found in a week after it went out on a channel.

    `channel_editions`: per week and channel, the identity keys of the papers its edition held when sent, when
    it went out (the first `sent` delivery), and the week's fingerprint when last searched for late papers.
    A publication from before this migration gets a row with no keys: the papers there at the first search (the
    first publishing round after the upgrade) count as sent. `late_additions`: each late paper once per channel,
    the later edition carrying it, and when that went out. `weeks.late_of`: set on an edition of late papers
    only ("<key>+late1"), the week they came from.
    """
    db.execute("""
        CREATE TABLE channel_editions (
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            paper_keys TEXT, went_out_at TEXT, checked TEXT,
            PRIMARY KEY (source, week_key, channel)
        )""")
    db.execute("""
        CREATE TABLE late_additions (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            paper_key TEXT NOT NULL, keys TEXT NOT NULL, paper TEXT NOT NULL,
            found_at TEXT NOT NULL, carried_in_key TEXT, delivered_at TEXT,
            UNIQUE (source, week_key, channel, paper_key)
        )""")
    db.execute("CREATE INDEX idx_late_additions_carrier ON late_additions (source, carried_in_key)")
    db.execute("ALTER TABLE weeks ADD COLUMN late_of TEXT")
    db.execute("INSERT INTO channel_editions (source, week_key, channel, went_out_at) "
               "SELECT p.source, p.week_key, p.channel, (SELECT min(d.sent_at) FROM deliveries d "
               "WHERE d.source = p.source AND d.week_key = p.week_key AND d.channel = p.channel "
               "AND d.state = 'sent') FROM publications p")


@migrations()
def m007_trial_deliveries(db: sqlite_utils.Database) -> None:
    """Trial runs (issue #10): a unit written to a local folder (the outbox) is `trial`, never `sent`; a
    publication made that way is marked `trial`, and one given up when its channel went live is `skipped`,
    with a `note` saying why (also used for "published to nobody").

    SQLite cannot alter a CHECK constraint, so both tables are rebuilt and their rows copied, in the
    migration's one transaction: it applies whole or not at all."""
    db.execute("""
        CREATE TABLE publications_new (
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('sending', 'trial', 'published', 'skipped')),
            units INTEGER NOT NULL, planned_at TEXT NOT NULL, published_at TEXT,
            trial INTEGER NOT NULL DEFAULT 0 CHECK (trial IN (0, 1)),
            note TEXT,
            PRIMARY KEY (source, week_key, channel)
        )""")
    db.execute("INSERT INTO publications_new (source, week_key, channel, state, units, planned_at, published_at) "
               "SELECT source, week_key, channel, state, units, planned_at, published_at FROM publications")
    db.execute("DROP TABLE publications")
    db.execute("ALTER TABLE publications_new RENAME TO publications")
    db.execute("""
        CREATE TABLE deliveries_new (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            unit TEXT NOT NULL, ref TEXT,
            state TEXT NOT NULL DEFAULT 'planned'
                CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'bounced', 'skipped', 'trial')),
            remote_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            updated_at TEXT, sent_at TEXT
        )""")
    db.execute("INSERT INTO deliveries_new (id, source, week_key, channel, unit, ref, state, remote_id, attempts, "
               "last_error, updated_at, sent_at) SELECT id, source, week_key, channel, unit, ref, state, remote_id, "
               "attempts, last_error, updated_at, sent_at FROM deliveries")
    db.execute("DROP TABLE deliveries")  # drops its indexes too
    db.execute("ALTER TABLE deliveries_new RENAME TO deliveries")
    db.execute("CREATE UNIQUE INDEX idx_deliveries_unit ON deliveries (source, week_key, channel, unit)")
    db.execute("CREATE INDEX idx_deliveries_week ON deliveries (source, week_key, channel)")


@migrations()
def m008_reader_web(db: sqlite_utils.Database) -> None:
    """The reader's web (issue #13): an opaque `ref` per subscriber for links that name no address (filled
    by the web app from the signing key, NULL until then), single-use confirmation nonces for double opt-in,
    and a full-text index over the papers kept current by triggers (bot/web/reader.py searches it)."""
    db["subscribers"].add_column("ref", str)
    db.execute("CREATE UNIQUE INDEX idx_subscribers_ref ON subscribers (ref)")
    db.execute("""
        CREATE TABLE confirmations (
            nonce TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT
        )""")
    db.execute("CREATE INDEX idx_confirmations_address ON confirmations (address, created_at)")
    db["papers"].enable_fts(["title", "summary", "authors"], create_triggers=True,
                            tokenize="unicode61 remove_diacritics 2")


@migrations()
def m009_chains(db: sqlite_utils.Database) -> None:
    """Ordered chains (issue #11: a thread on X, later Discord's split messages). Two delivery states:
    `uncertain` (the request went out and no usable answer came back: reconcile before any resend) and
    `refused` (the remote side refused the unit for good; the chain waits for `paperbot resolve`). And
    `channel_state`: a channel's rate-limited-until, kept in the database so no process sends before it.

    SQLite cannot alter a CHECK constraint, so `deliveries` is rebuilt and its rows copied, in the migration's
    one transaction."""
    db.execute("""
        CREATE TABLE deliveries_new (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL, week_key TEXT NOT NULL, channel TEXT NOT NULL,
            unit TEXT NOT NULL, ref TEXT,
            state TEXT NOT NULL DEFAULT 'planned'
                CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'bounced', 'skipped', 'trial',
                                 'uncertain', 'refused')),
            remote_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            updated_at TEXT, sent_at TEXT
        )""")
    db.execute("INSERT INTO deliveries_new (id, source, week_key, channel, unit, ref, state, remote_id, attempts, "
               "last_error, updated_at, sent_at) SELECT id, source, week_key, channel, unit, ref, state, remote_id, "
               "attempts, last_error, updated_at, sent_at FROM deliveries")
    db.execute("DROP TABLE deliveries")
    db.execute("ALTER TABLE deliveries_new RENAME TO deliveries")
    db.execute("CREATE UNIQUE INDEX idx_deliveries_unit ON deliveries (source, week_key, channel, unit)")
    db.execute("CREATE INDEX idx_deliveries_week ON deliveries (source, week_key, channel)")
    db.execute("CREATE INDEX idx_deliveries_sent ON deliveries (channel, sent_at)")  # the daily budget
    db.execute("""
        CREATE TABLE channel_state (
            channel TEXT PRIMARY KEY,
            until TEXT,
            reason TEXT,
            updated_at TEXT NOT NULL
        )""")


@migrations()
def m010_approval(db: sqlite_utils.Database) -> None:
    """The editor's approval step (issue #14, `[publish] approve`): when a week awaiting approval was approved
    (`paperbot approve`), so it is never held again. NULL for every week released before."""
    db["weeks"].add_column("approved_at", str)


@migrations()
def m011_discord_edits(db: sqlite_utils.Database) -> None:
    """Discord announcements edited after a correction in the source (issue #12, `[discord] edit_on_correction`):
    one row per message edited, with what changed (a JSON list such as `["embed 2 title"]`), when, and the body
    it was given (bot/channels/discord/edit.py). The messages' ids are the ledger's `deliveries.remote_id`."""
    db.execute("""
        CREATE TABLE discord_edits (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL, week_key TEXT NOT NULL,
            position INTEGER NOT NULL, message_id TEXT NOT NULL,
            edited_at TEXT NOT NULL, changed TEXT NOT NULL, body TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX idx_discord_edits_week ON discord_edits (source, week_key)")


@migrations()
def m013_alerts(db: sqlite_utils.Database) -> None:
    """Alerts to the operator (issue #14, bot/ops/alerts.py): one row per problem and destination (`log`,
    `email`, `discord`), so each is sent at most once per `[alerts] every` however often it is seen."""
    db.execute("""
        CREATE TABLE alerts (
            problem TEXT NOT NULL, destination TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
            first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, last_sent TEXT,
            sends INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            PRIMARY KEY (problem, destination)
        )""")


@migrations()
def m013_subscriber_names(db: sqlite_utils.Database) -> None:
    """A subscriber's name (issue #14): `subscribers add "Alice Reader <alice@example.org>"` and an import's
    `name` column keep it; NULL for everyone added before."""
    db["subscribers"].add_column("name", str)


@migrations()
def m011_editions_shown(db: sqlite_utils.Database) -> None:
    """Corrections of weeks that went out (issue #12): `channel_editions.shown` is the week as a channel that edits
    its messages (Discord) last made them show it: the week's fingerprint and title (`fingerprint || ' ' ||
    title`), set when the channel plans the week and after each correction round. A published week whose
    fingerprint or title differs from it was corrected in the source (bot/publish/pipeline.py `correction_round`).
    NULL on every other channel, and on rows from before."""
    db.execute("ALTER TABLE channel_editions ADD COLUMN shown TEXT")


@migrations()
def m014_heartbeat(db: sqlite_utils.Database) -> None:
    """Health (issue #15, `GET /healthz`): the daemon's heartbeat, one row it rewrites every few seconds, so a
    web app in another process (`paperbot serve`) knows whether the daemon's loop still turns; `failing_since`
    on each source, when its current run of failed polls began (for the old rows: their last error, the best
    known). No index on `deliveries.state` for /healthz's counts: every send changes a row's state twice, and
    an index would add to those writes to save a scan (a year's ledger, 100k rows: ~70 ms) every half minute."""
    db.execute("""
        CREATE TABLE heartbeat (
            name TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            beat_at TEXT NOT NULL,
            stopped_at TEXT
        )""")
    db["sources"].add_column("failing_since", str)
    db.execute("UPDATE sources SET failing_since = last_error_at WHERE error_count > 0")


@migrations()
def m012_editor_notes(db: sqlite_utils.Database) -> None:
    """The editor's note of an edition (issue #16): a few words of the operator's own, set with `paperbot note`,
    shown at the top of the week's email and web edition."""
    db.execute("""
        CREATE TABLE editor_notes (
            source TEXT NOT NULL,
            week_key TEXT NOT NULL,
            note TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (source, week_key)
        )""")


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def parse_time(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


@dataclass(frozen=True)
class WeekRow:
    """A week as stored: what the gate and the diff need to know about it."""

    source: str
    key: str
    title: str
    state: str  # baseline | pending | ready | published | skipped (every channel gave it up: see pipeline.py)
    first_seen: datetime
    last_changed: datetime
    fingerprint: str
    text_hash: str
    titles: tuple[str, ...]
    present: bool
    flagged: bool
    backfill: bool
    placeholders: bool
    first_day: date | None
    last_day: date | None
    ready_at: datetime | None
    ready_version: str | None
    n_papers: int
    late_of: str | None = None  # an edition of papers added to earlier weeks: the week they came from

    @classmethod
    def from_row(cls, r: dict) -> WeekRow:
        return cls(
            source=r["source"], key=r["key"], title=r["title"], state=r["state"],
            first_seen=parse_time(r["first_seen"]), last_changed=parse_time(r["last_changed"]),
            fingerprint=r["fingerprint"] or "", text_hash=r["text_hash"] or "",
            titles=tuple(json.loads(r["titles"] or "[]")), present=bool(r["present"]),
            flagged=bool(r["flagged"]), backfill=bool(r["backfill"]), placeholders=bool(r["placeholders"]),
            first_day=date.fromisoformat(r["first_day"]) if r["first_day"] else None,
            last_day=date.fromisoformat(r["last_day"]) if r["last_day"] else None,
            ready_at=parse_time(r["ready_at"]), ready_version=r["ready_version"], n_papers=r["n_papers"] or 0,
            late_of=r.get("late_of"),
        )


class Store:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    @classmethod
    def open(cls, path: str | Path | None) -> Store:
        """Open (creating if needed) the database at `path`, or an in-memory one for None."""
        if path is None:
            db = sqlite_utils.Database(memory=True)
        else:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite_utils.Database(path)
            db.execute("PRAGMA busy_timeout = 10000")
            # Two processes opening a new database at once must not both create its tables.
            with open(path.with_name(path.name + ".migrate.lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                db.enable_wal()
                migrations.apply(db)
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

    # -- sources -------------------------------------------------------------------------------------------
    def ensure_source(self, name: str, kind: str = "", location: str = "", now: datetime | None = None) -> dict:
        t = self.db["sources"]
        rows = list(t.rows_where("name = ?", [name]))
        if rows:
            return rows[0]
        row = {"name": name, "kind": kind, "location": location,
               "created_at": iso(now or datetime.now(UTC)), "polls": 0, "error_count": 0}
        t.insert(row)
        return row

    def source(self, name: str) -> dict | None:
        rows = list(self.db["sources"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def sources(self) -> list[dict]:
        return list(self.db["sources"].rows_where(order_by="name"))

    def update_source(self, name: str, **fields) -> None:
        self.db["sources"].update(name, fields)

    def record_poll(self, name: str, version: str, at: datetime, validators: dict | None = None) -> None:
        src = self.source(name) or {}
        fields = {"polls": (src.get("polls") or 0) + 1, "last_version": version, "last_polled": iso(at),
                  "last_error": None, "last_error_at": None, "error_count": 0, "failing_since": None}
        if validators is not None:
            fields["validators"] = json.dumps(validators)
        self.update_source(name, **fields)

    def record_error(self, name: str, error: str, at: datetime) -> None:
        src = self.source(name) or {}
        self.update_source(name, last_error=error, last_error_at=iso(at),
                           error_count=(src.get("error_count") or 0) + 1,
                           failing_since=src.get("failing_since") or iso(at))  # the run's first failure

    def record_version(self, source: str, version: str, changed_at: datetime, fetched_at: datetime,
                       content_hash: str, n_weeks: int, new: list[str], edited: list[str],
                       utc_offset: timedelta | None = None) -> None:
        """`utc_offset`: the commit date's offset as written by its author (git only)."""
        minutes = None if utc_offset is None else int(utc_offset.total_seconds() // 60)
        self.db["versions"].insert({
            "source": source, "version": version, "changed_at": iso(changed_at), "fetched_at": iso(fetched_at),
            "content_hash": content_hash, "n_weeks": n_weeks, "new": json.dumps(new), "edited": json.dumps(edited),
            "utc_offset": minutes,
        })

    def versions(self, source: str) -> list[dict]:
        return list(self.db["versions"].rows_where("source = ?", [source], order_by="id"))

    def commit_offsets(self, source: str, limit: int = 1000) -> list[tuple[datetime, int]]:
        """(commit time, UTC offset in minutes) of the source's newest `limit` versions that have one, oldest first."""
        rows = self.db.execute(
            "select changed_at, utc_offset from versions where source = ? and utc_offset is not null "
            "order by id desc limit ?", [source, limit]).fetchall()
        return [(datetime.fromisoformat(at), int(m)) for at, m in reversed(rows)]

    def finished_counts(self, source: str, limit: int = 12) -> list[int]:
        """Papers in each of the source's newest `limit` finished weeks (released, or already there at its
        first poll): what a complete week of it usually holds."""
        rows = self.db.execute(
            "select n_papers from weeks where source = ? and state in ('ready', 'published', 'baseline') "
            "order by last_day desc, key desc limit ?", [source, limit]).fetchall()
        return [r[0] or 0 for r in rows]

    # -- weeks ---------------------------------------------------------------------------------------------
    def weeks(self, source: str | None = None, state: str | None = None) -> list[WeekRow]:
        where, args = [], []
        if source is not None:
            where.append("source = ?")
            args.append(source)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        rows = self.db["weeks"].rows_where(" and ".join(where) or None, args, order_by="source, last_day, key")
        return [WeekRow.from_row(r) for r in rows]

    def week(self, source: str, key: str) -> WeekRow | None:
        rows = list(self.db["weeks"].rows_where("source = ? and key = ?", [source, key]))
        return WeekRow.from_row(rows[0]) if rows else None

    def find_weeks(self, key: str) -> list[WeekRow]:
        """Weeks with this key (or alias) in any source."""
        keys = {key} | {r["key"] for r in self.db["aliases"].rows_where("alias = ?", [key])}
        out = []
        for k in keys:
            out += [WeekRow.from_row(r) for r in self.db["weeks"].rows_where("key = ?", [k])]
        return out

    def upsert_week(self, source: str, key: str, **fields) -> None:
        for name in ("first_seen", "last_changed", "ready_at"):
            if isinstance(fields.get(name), datetime):
                fields[name] = iso(fields[name])
        for name in ("first_day", "last_day"):
            if isinstance(fields.get(name), date):
                fields[name] = fields[name].isoformat()
        if "titles" in fields and not isinstance(fields["titles"], str):
            fields["titles"] = json.dumps(list(fields["titles"]), ensure_ascii=False)
        for name in ("present", "flagged", "backfill", "placeholders"):
            if name in fields:
                fields[name] = int(bool(fields[name]))
        self.db["weeks"].upsert({"source": source, "key": key, **fields}, pk=("source", "key"))

    def aliases(self, source: str) -> dict[str, str]:
        return {r["alias"]: r["key"] for r in self.db["aliases"].rows_where("source = ?", [source])}

    def add_alias(self, source: str, alias: str, key: str) -> None:
        self.db["aliases"].upsert({"source": source, "alias": alias, "key": key}, pk=("source", "alias"))

    # -- papers --------------------------------------------------------------------------------------------
    def replace_papers(self, source: str, week_key: str, papers: tuple[Paper, ...] | list[Paper]) -> None:
        self.db.execute("delete from papers where source = ? and week_key = ?", [source, week_key])
        self.db["papers"].insert_all(
            ({
                "source": source, "week_key": week_key, "position": i, "number": p.number, "title": p.title,
                "summary": p.summary, "links": json.dumps([[lk.label, lk.url] for lk in p.links], ensure_ascii=False),
                "release_date": p.release_date.isoformat() if p.release_date else None,
                "authors": p.authors, "published": p.published, "uid": p.uid,
            } for i, p in enumerate(papers)),
            pk=("source", "week_key", "position"),
        )

    # -- editor's notes ------------------------------------------------------------------------------------
    def note(self, source: str, week_key: str) -> str:
        """The editor's note of a week, "" if none."""
        row = self.db.execute("SELECT note FROM editor_notes WHERE source = ? AND week_key = ?",
                              [source, week_key]).fetchone()
        return row[0] if row else ""

    def set_note(self, source: str, week_key: str, note: str, now: datetime) -> None:
        """Set (or, with "", remove) the editor's note of a week."""
        with self.atomic():
            self.db.execute("DELETE FROM editor_notes WHERE source = ? AND week_key = ?", [source, week_key])
            if note:
                self.db.execute("INSERT INTO editor_notes (source, week_key, note, updated_at) VALUES (?, ?, ?, ?)",
                                [source, week_key, note, iso(now)])

    def papers(self, source: str, week_key: str | None = None) -> list[tuple[str, Paper]]:
        """(week key, paper) pairs in stored order."""
        if week_key is None:
            rows = self.db["papers"].rows_where("source = ?", [source], order_by="week_key, position")
        else:
            rows = self.db["papers"].rows_where("source = ? and week_key = ?", [source, week_key],
                                                order_by="position")
        return [(r["week_key"], _paper(r)) for r in rows]


def _paper(r: dict) -> Paper:
    return Paper(
        title=r["title"], summary=r["summary"] or "",
        links=tuple(Link(label, url) for label, url in json.loads(r["links"] or "[]")),
        number=r["number"], release_date=date.fromisoformat(r["release_date"]) if r["release_date"] else None,
        authors=r["authors"] or "", published=r["published"], uid=r["uid"] or "",
    )
