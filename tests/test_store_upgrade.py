"""The database upgrades itself: a state database written by an earlier main opens with today's code.

`fixtures/db/main-89dfc70.db` was made by `fixtures/db/make_db.py` at commit 89dfc70 (the schema before issue
#10). Opening it applies every newer migration once; nothing it held is lost, and the daemon's commands work
on it. Each later schema change keeps this test passing (and adds its own checks of the new columns).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from bot.channels import load_config
from bot.cli import cli
from bot.edition.edition import edition_from_store
from bot.publish.ledger import LedgerWriter, possible_duplicates
from bot.publish.pipeline import late_round
from bot.store import Store, migrations
from bot.track.parsing import parse_document
from bot.track.tracker import observe

OLD = FIXTURES / "db" / "main-89dfc70.db"
# main-89dfc70.db as today's main left it: opened once by main at 92301e6
# (fixtures/db/upgrade_db.py), so it holds every migration that main applies.
UPGRADED = FIXTURES / "db" / "main-af4f69c-upgraded.db"


def _copy(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(OLD, state / "paperbot.db")
    (tmp_path / "paperbot.toml").write_text('state_dir = "state"\n[publish]\nbackfill = 0\n', encoding="utf-8")
    return state / "paperbot.db"


def _snapshot(path) -> dict:
    con = sqlite3.connect(path)
    try:
        return {
            "weeks": sorted(con.execute("SELECT source, key, state, title FROM weeks").fetchall()),
            "papers": con.execute("SELECT count(*) FROM papers").fetchone()[0],
            "subscribers": sorted(con.execute("SELECT address, state FROM subscribers").fetchall()),
            "deliveries": sorted(con.execute(
                "SELECT source, week_key, channel, unit, state FROM deliveries").fetchall()),
            "publications": sorted(con.execute(
                "SELECT source, week_key, channel, state FROM publications").fetchall()),
        }
    finally:
        con.close()


def test_a_database_from_the_previous_main_upgrades_and_keeps_every_row(tmp_path):
    db = _copy(tmp_path)
    before = _snapshot(db)
    assert before["weeks"] and before["deliveries"] and before["subscribers"]
    store = Store.open(db)
    applied = {r["name"] for r in store.db["_sqlite_migrations"].rows}
    store.close()
    assert {m.name for m in migrations._migrations} <= applied  # every migration of today's code ran
    after = _snapshot(db)
    assert after == before
    Store.open(db).close()  # a second open applies nothing and changes nothing
    assert _snapshot(db) == before


def test_the_commands_work_on_an_upgraded_database(tmp_path):
    _copy(tmp_path)
    run = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "weeks", "--json"], obj={})
    assert run.exit_code == 0, run.output
    states = {w["key"]: w["state"] for w in json.loads(run.stdout)}
    assert states == {"2023-02-13..2023-02-19": "baseline", "2023-02-20..2023-02-26": "published",
                      "2023-02-27..2023-03-05": "ready", "2023-03-06..2023-03-12": "pending"}
    hist = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "history", "--json"], obj={})
    assert hist.exit_code == 0, hist.output
    assert "2023-02-20..2023-02-26" in hist.stdout


def test_versions_gain_their_commit_offset_empty_for_the_old_rows(tmp_path):
    """issue #10 (m005_source_clock): `versions.utc_offset` exists after the upgrade; the rows written before
    it hold NULL (their offsets were never kept), so the old sources' clock is the default until new commits."""
    db = _copy(tmp_path)
    Store.open(db).close()
    con = sqlite3.connect(db)
    try:
        columns = {r[1]: r[2] for r in con.execute("PRAGMA table_info(versions)")}
        offsets = {r[0] for r in con.execute("SELECT utc_offset FROM versions")}
    finally:
        con.close()
    assert columns["utc_offset"] == "INTEGER"
    assert offsets == {None}
    run = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "weeks", "--json"], obj={})
    assert run.exit_code == 0, run.output
    assert {(w["timezone"], w["timezone_from"]) for w in json.loads(run.stdout)} == {("UTC", "default")}


def _ledger(path) -> dict:
    con = sqlite3.connect(path)
    try:
        return {"deliveries": con.execute("SELECT id, source, week_key, channel, unit, ref, state, remote_id, "
                                          "attempts, last_error, updated_at, sent_at FROM deliveries ORDER BY id"
                                          ).fetchall(),
                "publications": con.execute("SELECT source, week_key, channel, state, units, planned_at, published_at "
                                            "FROM publications ORDER BY week_key").fetchall()}
    finally:
        con.close()


def test_the_ledger_is_rebuilt_whole_and_takes_trial_deliveries_after_the_upgrade(tmp_path, monkeypatch):
    """issue #10: m007_trial_deliveries rebuilds `deliveries` and `publications` (SQLite cannot change a CHECK
    constraint in place). Every column of every row survives (ids included), the old publication is not a
    trial and has no note, the constraints still hold, and `paperbot publish` (the outbox: a trial) then
    records `trial` rows beside the previous main's `sent` one."""
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", "fixture-secret-key-0123456789-abcdefghijkl")
    db = _copy(tmp_path)
    before = _ledger(db)
    assert ("sent",) in {(r[6],) for r in before["deliveries"]} and before["publications"][0][3] == "published"
    Store.open(db).close()
    assert _ledger(db) == before
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT trial, note FROM publications").fetchall() == [(0, None)]
        for bad in ("UPDATE deliveries SET state = 'lost'", "UPDATE publications SET state = 'gone'",
                    "INSERT INTO deliveries (source, week_key, channel, unit) "
                    "SELECT source, week_key, channel, unit FROM deliveries LIMIT 1"):  # the unique index
            with pytest.raises(sqlite3.IntegrityError):
                con.execute(bad)
    finally:
        con.close()

    run = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "publish"], obj={})
    assert run.exit_code == 0, run.output
    assert "1 written to the outbox" in run.output
    after = _ledger(db)
    assert after["deliveries"][:len(before["deliveries"])] == before["deliveries"]
    new = after["deliveries"][len(before["deliveries"]):]
    assert [(r[2], r[4], r[6]) for r in new if r[3] == "email"] == [
        ("2023-02-27..2023-03-05", "active@example.net", "trial")]
    # issues #11, #12, #30 and #31: X's thread, Discord's announcement, Bluesky's and Mastodon's threads, all
    # trials (no credentials)
    assert {(r[3], r[6]) for r in new if r[3] != "email"} == {("x", "trial"), ("discord", "trial"),
                                                             ("bluesky", "trial"), ("mastodon", "trial")}
    store = Store.open(db)
    try:
        assert store.week("dair", "2023-02-27..2023-03-05").state == "ready"
        assert store.week("dair", "2023-02-20..2023-02-26").state == "published"
    finally:
        store.close()


def test_late_additions_upgrade_a_database_whose_weeks_went_out_before_them(tmp_path):
    """issue #10 (m006_late_additions): the new tables and `weeks.late_of` appear; a week published before the
    upgrade counts as having gone out with the papers it holds at the first publishing round, so nothing of it is
    late, and a paper added to it afterwards is a late addition."""
    _copy(tmp_path)
    cfg = load_config(tmp_path / "paperbot.toml")
    store = Store.open(cfg.db_path)
    sent = "2023-02-20..2023-02-26"
    assert {"paper_keys", "went_out_at", "checked"} <= set(store.db["channel_editions"].columns_dict)
    assert "late_of" in store.db["weeks"].columns_dict and store.week("dair", sent).late_of is None
    assert store.db.execute("SELECT week_key, channel, paper_keys, went_out_at IS NOT NULL FROM channel_editions"
                            ).fetchall() == [(sent, "email", None, 1)]
    assert store.db["late_additions"].count == 0
    late_round(cfg, store, datetime(2023, 3, 9, tzinfo=UTC), channels=["email"])
    assert store.db["late_additions"].count == 0, "what the week held at the upgrade counts as sent"
    assert json.loads(store.db["channel_editions"].get(("dair", sent, "email"))["paper_keys"])

    digest = (FIXTURES / "db" / "make_db.py").read_text().split('DIGEST = """', 1)[1].split('"""', 1)[0]
    row = "| 1) **Published Paper** - sent to everyone. | [Paper](https://arxiv.org/abs/2302.00001) |\n"
    assert row in digest
    added = "| 2) **Added Later** - after it went out. | [Paper](https://arxiv.org/abs/2302.00002) |\n"
    later = digest.replace(row, row + added)
    observe(store, "dair", parse_document(later.encode(), date(2023, 3, 9)), datetime(2023, 3, 9, 9, tzinfo=UTC),
            "c0ffee03", cfg.publish)
    late_round(cfg, store, datetime(2023, 3, 9, 10, tzinfo=UTC), channels=["email"])
    assert store.db.execute("SELECT week_key, channel, json_extract(paper, '$.title') FROM late_additions"
                            ).fetchall() == [(sent, "email", "Added Later")]
    store.close()


def test_the_reader_web_tables_exist_after_the_upgrade_and_search_covers_old_papers(tmp_path):
    """issue #13 (m008_reader_web): subscribers gain an empty `ref`, `confirmations` exists, and the papers
    already stored are in the full-text index (kept current by triggers from then on)."""
    db = _copy(tmp_path)
    Store.open(db).close()
    con = sqlite3.connect(db)
    try:
        assert "ref" in {r[1] for r in con.execute("PRAGMA table_info(subscribers)")}
        assert con.execute("SELECT count(*) FROM subscribers WHERE ref IS NOT NULL").fetchone()[0] == 0
        assert {r[1] for r in con.execute("PRAGMA table_info(confirmations)")} >= {"nonce", "address", "expires_at",
                                                                                   "used_at"}
        papers = con.execute("SELECT count(*) FROM papers").fetchone()[0]
        assert papers and con.execute("SELECT count(*) FROM papers_fts").fetchone()[0] == papers
        title = con.execute("SELECT title FROM papers LIMIT 1").fetchone()[0]
        word = next(w for w in title.split() if w.isalpha())
        assert con.execute("SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?", [f'"{word}"']).fetchone()[0]
    finally:
        con.close()


def test_chains_upgrade_keeps_the_ledger_and_adds_uncertain_refused_and_channel_state(tmp_path):
    """issue #11: m009_chains rebuilds `deliveries` for the chain states `uncertain` and `refused` (every row and
    id kept, the old states still allowed, an unknown one still refused) and adds `channel_state`, where a
    channel's rate-limited-until is kept."""
    db = _copy(tmp_path)
    before = _ledger(db)
    Store.open(db).close()
    assert _ledger(db)["deliveries"] == before["deliveries"]
    con = sqlite3.connect(db)
    try:
        (row_id,) = con.execute("SELECT id FROM deliveries LIMIT 1").fetchone()
        for state in ("uncertain", "refused", "sent"):
            con.execute("UPDATE deliveries SET state = ? WHERE id = ?", [state, row_id])
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("UPDATE deliveries SET state = 'lost' WHERE id = ?", [row_id])
        con.execute("INSERT INTO channel_state (channel, until, reason, updated_at) VALUES ('x', 'T', 'r', 'T')")
        assert con.execute("SELECT channel, until FROM channel_state").fetchall() == [("x", "T")]
        assert "m009_chains" in {r[0] for r in con.execute("SELECT name FROM _sqlite_migrations")}
    finally:
        con.close()


def test_the_discord_edits_table_exists_after_the_upgrade_and_starts_empty(tmp_path):
    """issue #12 (m011_discord_edits): the table recording each edit of a Discord announcement appears, empty,
    with its index; the rows the old database held are untouched (the first test of this file checks that)."""
    db = _copy(tmp_path)
    Store.open(db).close()
    con = sqlite3.connect(db)
    try:
        columns = {r[1] for r in con.execute("PRAGMA table_info(discord_edits)")}
        assert columns == {"id", "source", "week_key", "position", "message_id", "edited_at", "changed", "body"}
        assert con.execute("SELECT count(*) FROM discord_edits").fetchone()[0] == 0
        assert "idx_discord_edits_week" in {r[1] for r in con.execute("PRAGMA index_list(discord_edits)")}
    finally:
        con.close()


def test_the_alerts_table_and_subscriber_names_exist_after_the_upgrade(tmp_path):
    """issue #14 (m013_alerts, m013_subscriber_names): `alerts` records each problem once per destination, and
    subscribers gain a `name`, empty for everyone added before; `status` and `subscribers list` work on it."""
    db = _copy(tmp_path)
    Store.open(db).close()
    con = sqlite3.connect(db)
    try:
        assert {r[1] for r in con.execute("PRAGMA table_info(alerts)")} == {
            "problem", "destination", "kind", "subject", "first_seen", "last_seen", "last_sent", "sends",
            "last_error"}
        assert con.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
        assert "name" in {r[1] for r in con.execute("PRAGMA table_info(subscribers)")}
        assert {r[0] for r in con.execute("SELECT name FROM subscribers")} == {None}
    finally:
        con.close()
    config = str(tmp_path / "paperbot.toml")
    listed = CliRunner().invoke(cli, ["--config", config, "subscribers", "list", "--json"], obj={})
    assert listed.exit_code == 0 and all(s["name"] is None for s in json.loads(listed.stdout))
    status = CliRunner().invoke(cli, ["--config", config, "status", "--json"], obj={})
    assert status.exit_code == 0, status.output
    st = json.loads(status.stdout)
    assert st["weeks"]["counts"] == {"baseline": 1, "pending": 1, "published": 1, "ready": 1}


def test_channel_editions_get_the_shown_column_empty_after_the_upgrade(tmp_path):
    """issue #12 (m011_editions_shown): `channel_editions.shown` (the week as a channel that edits its messages
    last made them show it) appears, NULL on the rows the upgrade made for the old publications, so no week
    published before counts as corrected."""
    db = _copy(tmp_path)
    store = Store.open(db)
    try:
        from bot.publish.corrections import corrected

        assert corrected(store, ["email", "x", "discord"]) == []
    finally:
        store.close()
    con = sqlite3.connect(db)
    try:
        assert "shown" in {r[1] for r in con.execute("PRAGMA table_info(channel_editions)")}
        assert con.execute("SELECT count(*) FROM channel_editions").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM channel_editions WHERE shown IS NOT NULL").fetchone()[0] == 0
        assert "m011_editions_shown" in {r[0] for r in con.execute("SELECT name FROM _sqlite_migrations")}
    finally:
        con.close()


def test_the_heartbeat_table_and_failing_since_exist_after_the_upgrade(tmp_path):
    """issue #15 (m014_heartbeat): `heartbeat` appears, empty (no daemon has beaten on this database yet, so
    /healthz says so); sources gain `failing_since`, set from `last_error_at` for a source failing at the
    upgrade and empty for one that was fine.
    A failed poll after the upgrade starts a run of failures, a second keeps its start, a good poll ends it."""
    db = _copy(tmp_path)
    con = sqlite3.connect(db)
    try:  # the previous main's schema, a source failing since two polls
        con.execute("INSERT INTO sources (name, kind, location, created_at, polls, error_count, last_error, "
                    "last_error_at) VALUES ('broken', 'url', 'http://x', '2023-03-01T00:00:00+00:00', 0, 2, "
                    "'404', '2023-03-08T10:00:00+00:00')")
        con.commit()
    finally:
        con.close()
    store = Store.open(db)
    try:
        assert store.db["heartbeat"].count == 0
        assert set(store.db["heartbeat"].columns_dict) == {"name", "pid", "started_at", "beat_at", "stopped_at"}
        assert store.source("broken")["failing_since"] == "2023-03-08T10:00:00+00:00"
        assert store.source("dair")["failing_since"] is None
        store.record_error("dair", "HTTP 500", datetime(2023, 3, 9, 9, tzinfo=UTC))
        store.record_error("dair", "HTTP 500", datetime(2023, 3, 9, 10, tzinfo=UTC))
        assert store.source("dair")["failing_since"] == "2023-03-09T09:00:00+00:00"
        store.record_poll("dair", "v9", datetime(2023, 3, 9, 11, tzinfo=UTC))
        assert store.source("dair")["failing_since"] is None
    finally:
        store.close()


def test_editor_notes_exist_after_the_upgrade_and_old_weeks_have_none(tmp_path):
    """issue #16 (m012_editor_notes): the `editor_notes` table appears, empty; every old week renders without a
    note, and `paperbot note` sets one on an old week that its edition then carries."""
    db = _copy(tmp_path)
    Store.open(db).close()
    con = sqlite3.connect(db)
    try:
        assert {r[1] for r in con.execute("PRAGMA table_info(editor_notes)")} == {"source", "week_key", "note",
                                                                                  "updated_at"}
        assert con.execute("SELECT count(*) FROM editor_notes").fetchone()[0] == 0
    finally:
        con.close()
    store = Store.open(db)
    try:
        assert all(edition_from_store(store, w.source, w.key).note == "" for w in store.weeks())
    finally:
        store.close()
    config = str(tmp_path / "paperbot.toml")
    run = CliRunner().invoke(cli, ["--config", config, "note", "2023-02-27..2023-03-05", "Welcome back."], obj={})
    assert run.exit_code == 0, run.output
    store = Store.open(db)
    try:
        assert edition_from_store(store, "dair", "2023-02-27..2023-03-05").note == "Welcome back."
    finally:
        store.close()


PREVIOUS = FIXTURES / "db" / "main-40962be.db"  # made by fixtures/db/make_db.py at 40962be, the main before #21


def test_the_publish_guard_upgrade_keeps_the_previous_main_database_and_holds_only_new_old_weeks_issue_21(tmp_path):
    """#21 (`m015_publish_guard`) on the database the previous main wrote: every row kept, `weeks.held` empty for
    every old week, the daily cap's index there; the old pending week is released as before, and a week pasted
    in afterwards, older than those released, is held."""
    from bot.config import PublishSettings
    from bot.track.tracker import release

    state = tmp_path / "state"
    state.mkdir()
    db = state / "paperbot.db"
    shutil.copy(PREVIOUS, db)
    before = _snapshot(db)
    store = Store.open(db)
    try:
        applied = [r["name"] for r in store.db["_sqlite_migrations"].rows]
        assert "m015_publish_guard" in applied and "m014_heartbeat" in applied
        assert _snapshot(db) == before
        assert store.db.execute("SELECT count(*), count(held) FROM weeks").fetchone() == (4, 0)
        assert "idx_publications_cap" in {i.name for i in store.db["publications"].indexes}
        settings = PublishSettings()
        release(store, datetime(2023, 3, 14, tzinfo=UTC), settings)
        assert store.week("dair", "2023-03-06..2023-03-12").state == "ready"
        pasted = ("# Papers We Liked\n\n## Top ML Papers of the Week (Jan 3 - Jan 9) - 2022\n"
                  "| **Paper** | **Links** |\n| --- | --- |\n"
                  "| 1) **An Old Paper** - from the archive. | [Paper](https://arxiv.org/abs/2201.00001) |\n")
        at = datetime(2023, 3, 15, 9, tzinfo=UTC)
        observe(store, "dair", parse_document(pasted.encode(), at.date(), "digest"), at, "c0ffee03", settings)
        release(store, at.replace(hour=12), settings)
        old = store.week("dair", "2022-01-03..2022-01-09")
        assert old.state == "held" and "older than the newest week already released" in old.held
    finally:
        store.close()
    Store.open(db).close()  # a second open applies nothing more


def test_possible_duplicates_upgrade_marks_no_old_row_and_history_shows_none(tmp_path):
    """issue #21 (m016_possible_duplicates): `deliveries.possible_duplicate` appears, NULL on every row written
    before (nothing then was known to be one), every other column as it was; `paperbot history` lists no possible
    duplicate for the old publication, and a new mark lands on one row only."""
    db = _copy(tmp_path)
    before = _ledger(db)
    Store.open(db).close()
    assert _ledger(db) == before
    con = sqlite3.connect(db)
    try:
        assert {r[1]: r[2] for r in con.execute("PRAGMA table_info(deliveries)")}["possible_duplicate"] == "TEXT"
        assert {r[0] for r in con.execute("SELECT possible_duplicate FROM deliveries")} == {None}
    finally:
        con.close()
    hist = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "history", "--json"], obj={})
    assert hist.exit_code == 0, hist.output
    [entry] = [e for e in json.loads(hist.stdout) if e["week"] == "2023-02-20..2023-02-26"]
    assert entry["channels"]["email"]["possible_duplicates"] == []

    writer = LedgerWriter(db, "dair", "2023-02-20..2023-02-26", "email")
    row_id = before["deliveries"][0][0]
    writer.possible_duplicate(row_id, "may have gone out")
    writer.possible_duplicate(row_id, "a second reason is not kept")
    writer.close()
    store = Store.open(db)
    try:
        assert [(d["id"], d["why"]) for d in possible_duplicates(store, "dair", "2023-02-20..2023-02-26", "email")
                ] == [(row_id, "may have gone out")]
    finally:
        store.close()


def _migrations_applied(path) -> list[tuple[str, str]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT name, applied_at FROM _sqlite_migrations ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_a_database_upgraded_by_the_previous_main_applies_nothing_again_23(tmp_path):
    """#23: the layout moved every migration into bot/store/schema.py; each keeps its name and its place, so a
    database today's main already upgraded opens with nothing re-applied and nothing lost."""
    state = tmp_path / "state"
    state.mkdir()
    db = state / "paperbot.db"
    shutil.copy(UPGRADED, db)
    before, applied = _snapshot(db), _migrations_applied(db)
    today = [m.name for m in migrations._migrations]
    assert [name for name, _ in applied] == today[:len(applied)]  # every name and its place kept
    Store.open(db).close()
    after = _migrations_applied(db)
    assert after[:len(applied)] == applied  # nothing applied again, not even re-recorded
    assert [name for name, _ in after] == today  # only migrations newer than that main, if any, ran
    assert _snapshot(db) == before
    (tmp_path / "paperbot.toml").write_text('state_dir = "state"\n', encoding="utf-8")
    run = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "weeks", "--json"], obj={})
    assert run.exit_code == 0, run.output
    assert {w["key"] for w in json.loads(run.stdout)} == {key for _, key, _, _ in before["weeks"]}


def test_the_previous_main_and_today_apply_the_same_migrations_in_the_same_order_23(tmp_path):
    """#23: the previous main's database, upgraded by today's code, records the migrations in the order the
    previous main recorded them (then any newer ones after them)."""
    db = _copy(tmp_path)
    Store.open(db).close()
    ours = [name for name, _ in _migrations_applied(db)]
    theirs = [name for name, _ in _migrations_applied(UPGRADED)]
    assert ours[:len(theirs)] == theirs
    assert ours == [m.name for m in migrations._migrations]


PREVIOUS_32 = FIXTURES / "db" / "main-070f0af.db"  # made by fixtures/db/make_db.py at 070f0af, the main before #32


def test_the_arxiv_upgrade_knows_every_stored_paper_by_its_arxiv_id_and_starts_an_empty_cache_32(tmp_path):
    """#32: the previous main's database gains `papers.arxiv_id` for every stored row that links arXiv (so one
    paper in two digests is one paper), `title_marked` unknown (the rows stay as written), an empty cache, and
    keeps every row; `status` and `enrich` work on it."""
    state = tmp_path / "state"
    state.mkdir()
    db = state / "paperbot.db"
    shutil.copy(PREVIOUS_32, db)
    before = _snapshot(db)
    store = Store.open(db)
    rows = store.db.execute("SELECT title, links, arxiv_id, title_marked FROM papers ORDER BY title").fetchall()
    assert rows and all(aid and aid in links for _, links, aid, _ in rows), rows
    assert all(marked is None for *_, marked in rows)
    assert store.arxiv_counts().papers == len({aid for _, _, aid, _ in rows}) and store.arxiv_counts().enriched == 0
    assert all(p.title_marked for _, p in store.papers("dair"))  # unknown: as written, never replaced
    store.close()
    after = _snapshot(db)
    after.pop("subscribers"), before.pop("subscribers")  # #24's upgrade merges one mailbox's spellings
    assert after == before
    (tmp_path / "paperbot.toml").write_text('state_dir = "state"\n[arxiv]\nenabled = false\n', encoding="utf-8")
    run = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "status", "--json"], obj={})
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["arxiv"]["papers"] == len(rows)
