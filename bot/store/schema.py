"""The database's schema: every migration, in the order it is applied. The one place that lists them.

sqlite-utils records each migration applied to a database by its name (`_sqlite_migrations`), and applies the ones it
has not seen in the order they are defined here: a migration is never renamed, moved or edited once it is on main; a
schema change is a new one at the end (tested on the previous main's database, tests/test_store_upgrade.py). The
numbers are not the order: some branches took the same number, and the file order is what counts.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils import Migrations

from bot.store import mailboxes, versions
from bot.store.arxiv import arxiv_tables

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


@migrations()
def m015_publish_guard(db: sqlite_utils.Database) -> None:
    """The guard on age and volume (issue #21, bot/track/age.py and bot/publish/cap.py): `weeks.held`, why a week
    was held when it first became ready (state `held`: new after its source's first poll but older than the newest
    week released or than `[publish] max_age`), NULL for every other week, and for every week released before.
    An index on `publications (channel, source, planned_at)` for the daily cap's count."""
    db["weeks"].add_column("held", str)
    db.execute("CREATE INDEX idx_publications_cap ON publications (channel, source, planned_at)")


@migrations()
def m016_possible_duplicates(db: sqlite_utils.Database) -> None:
    """Possible duplicates (issue #21): `deliveries.possible_duplicate` says why a unit may show twice (NULL for
    every other row, and every row from before): it may have gone out (a 5xx to a Discord create, a lost answer,
    a connection dropped after an email's data, a run killed mid-send) and it was sent again without reading the
    channel back (a Discord webhook alone, SMTP). `paperbot publish` and `history` show it; an alert names it."""
    db["deliveries"].add_column("possible_duplicate", str)


@migrations()
def m017_mailbox_key(db: sqlite_utils.Database) -> None:
    """One mailbox, one subscription (issue #24): spellings of one address that differ only in case are merged
    into one subscriber (bot/store/mailboxes.py: the strongest state wins, unsubscribed first; each merged row
    kept whole in `subscriber_merges`, its deliveries as they were), `lower(address)` (the mailbox key) is
    unique from now on, and `confirmations.mailbox` holds the cap key (no `+tag`) that `confirm_per_day`
    counts. Logs how many rows it merged."""
    mailboxes.merge_spellings(db)


@migrations()
def m021_arxiv(db: sqlite_utils.Database) -> None:
    """Papers known by their arXiv record (#32). `papers.arxiv_id` (the paper a row links, no version; filled here
    for every stored row) and `papers.title_marked` (0 when the row's title was not set off by markup, so the
    arXiv title may stand in for a title cut in the wrong place; NULL for rows stored before: left as written).
    `arxiv_papers`: the cache of arXiv's records (`found` 0 when arXiv knows no such id), with a full-text index
    over title, authors and abstract for search. `arxiv_state`: when the API last answered or failed."""
    arxiv_tables(db)


@migrations()
def m018_newcomer(db: sqlite_utils.Database) -> None:
    """The first subscriber (issue #25, bot/publish/first.py): a week ready on a live email channel with no active
    subscribers waits instead of going to nobody; `audience_waits` remembers each such week (`since`), and how its
    wait ended (`ended_at`, `outcome`: sent to the first subscriber's welcome, planned, or skipped for a newer
    waiting week), so the first subscriber gets the newest one and never a burst of the older ones.
    `shifted_clock`: each command that wrote under a shifted clock ($PAPERBOT_NOW or --now), so those times are
    never taken as real. `source_commits`: the commit dates (and their UTC offsets) of a git source's year before
    its first poll, which teach its clock from the start (`versions.utc_offset` has only the commits polled)."""
    db.execute("""
        CREATE TABLE audience_waits (
            source TEXT NOT NULL,
            week_key TEXT NOT NULL,
            channel TEXT NOT NULL,
            since TEXT NOT NULL,
            ended_at TEXT,
            outcome TEXT,
            PRIMARY KEY (source, week_key, channel)
        )""")
    db.execute("""
        CREATE TABLE shifted_clock (
            id INTEGER PRIMARY KEY,
            real_at TEXT NOT NULL,
            shifted_to TEXT NOT NULL,
            command TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE source_commits (
            source TEXT NOT NULL,
            committed_at TEXT NOT NULL,
            utc_offset INTEGER NOT NULL,
            sha TEXT NOT NULL,
            PRIMARY KEY (source, sha)
        )""")


migrations(name="m023_web_cache")(versions.create)  # the archive's version the web caches follow (#24, #29)
