"""The database upgrades itself: a state database written by an earlier main opens with today's code.

`fixtures/db/main-89dfc70.db` was made by `fixtures/db/make_db.py` at commit 89dfc70 (the schema before issue
#10). Opening it applies every newer migration once; nothing it held is lost, and the daemon's commands work
on it. Each later schema change keeps this test passing (and adds its own checks of the new columns).
"""

from __future__ import annotations

import json
import shutil
import sqlite3

from click.testing import CliRunner
from conftest import FIXTURES

from bot.cli import cli
from bot.store import Store, migrations

OLD = FIXTURES / "db" / "main-89dfc70.db"


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
