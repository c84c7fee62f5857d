"""issue #15: `paperbot backup PATH` copies the state folder consistently while a writer keeps writing to it.

The writer is a separate process committing, many times a second, one transaction that spans several pages:
a row with a 10 KB blob and its digest, and a running total in another table. A copy of the database taken
mid-commit (as `cp` can) would break that invariant or SQLite's integrity; every backup must open as a
database that holds it, with the rest of the state folder beside it and no lock files.
"""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.store import Store

WRITER = r"""
import hashlib, os, sqlite3, sys, time
db, stop = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db, timeout=30, isolation_level=None)
con.execute("PRAGMA wal_autocheckpoint = 8")  # the main file is rewritten every few commits, as a busy daemon does
con.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, blob BLOB, digest TEXT)")
con.execute("CREATE TABLE IF NOT EXISTS probe_total (k INTEGER PRIMARY KEY, n INTEGER)")
con.execute("INSERT OR IGNORE INTO probe_total VALUES (1, 0)")
n, deadline = 0, time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:
    time.sleep(0.005)
    blob = os.urandom(10_000)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO probe (blob, digest) VALUES (?, ?)", [blob, hashlib.sha256(blob).hexdigest()])
    con.execute("UPDATE probe_total SET n = n + 1 WHERE k = 1")
    con.execute("COMMIT")
    n += 1
    print(n, flush=True)
"""


def _state(tmp_path: Path) -> Path:
    cfg = tmp_path / "paperbot.toml"
    cfg.write_text('state_dir = "state"\n', encoding="utf-8")
    state = tmp_path / "state"
    Store.open(state / "paperbot.db").close()
    (state / "secret.key").write_text("k" * 40)
    (state / "secret.key").chmod(0o600)
    (state / "paperbot.lock").write_text("4242\n")
    (state / "locks").mkdir()
    (state / "locks" / "lab.lock").write_text("")
    (state / "outbox" / "email" / "lab").mkdir(parents=True)
    (state / "outbox" / "email" / "lab" / "0001.eml").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
    (state / "git" / "lab").mkdir(parents=True)
    (state / "git" / "lab" / "HEAD").write_text("ref: refs/heads/main\n")
    (state / "git" / "lab" / "index.lock").write_text("")
    (state / "subscribers.journal").write_text("")
    return cfg


def _backup(cfg: Path, dest: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg), "backup", str(dest), *extra],
                          capture_output=True, text=True, timeout=60)


def _rows(db: Path) -> tuple[int, int, list[str]]:
    con = sqlite3.connect(db)
    try:
        total = con.execute("SELECT n FROM probe_total").fetchone()[0]
        count = con.execute("SELECT count(*) FROM probe").fetchone()[0]
        check = [r[0] for r in con.execute("PRAGMA integrity_check")]
        return total, count, [] if check == ["ok"] else check
    finally:
        con.close()


def _digests_match(db: Path) -> bool:
    con = sqlite3.connect(db)
    try:
        return all(hashlib.sha256(b).hexdigest() == d for b, d in con.execute("SELECT blob, digest FROM probe"))
    finally:
        con.close()


def test_backups_taken_while_a_writer_commits_are_whole_databases_with_the_rest_of_the_state(tmp_path):
    cfg = _state(tmp_path)
    db = tmp_path / "state" / "paperbot.db"
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(stop)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    copies = []
    try:
        assert writer.stdout.readline().strip() == "1", writer.stderr.read()  # it is writing
        for i in range(2):
            dest = tmp_path / "backups" / f"b{i}"
            run = _backup(cfg, dest)
            assert run.returncode == 0, run.stderr
            assert f"to {dest}" in run.stdout and "integrity ok" in run.stdout
            copies.append(dest)
            time.sleep(0.2)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    written = int(out.split()[-1])
    seen = []
    for dest in copies:
        total, count, problems = _rows(dest / "paperbot.db")
        assert problems == [] and total == count > 0, f"{dest}: a torn copy ({total} vs {count}: {problems})"
        assert _digests_match(dest / "paperbot.db")
        seen.append(count)
        files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
        assert not [f for f in files if f.endswith(".lock")], files
        assert {"secret.key", "outbox/email/lab/0001.eml", "git/lab/HEAD", "subscribers.journal"} <= set(files)
        assert stat.S_IMODE((dest / "secret.key").stat().st_mode) == 0o600
        assert stat.S_IMODE(dest.stat().st_mode) == 0o700
        assert (dest / "outbox/email/lab/0001.eml").read_bytes() == b"Subject: hi\r\n\r\nbody\r\n"
        Store.open(dest / "paperbot.db").close()  # paperbot opens it as its own state
    assert seen == sorted(seen) and seen[-1] < written, "the copies were taken while the writer went on"
    assert not list((tmp_path / "backups").glob(".*partial*")), "no half-made backup is left behind"
    print(f"rows in the two copies: {seen}; written in all: {written}")


def test_db_only_copies_just_the_database(tmp_path):
    cfg = _state(tmp_path)
    run = _backup(cfg, tmp_path / "only", "--db-only")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == ["paperbot.db"]


@pytest.mark.parametrize("where, message", [
    ("taken", "already exists; give a new folder (or an empty one)"),
    ("state/inside", "is inside the state folder"),
])
def test_backup_refuses_a_used_folder_or_one_inside_the_state_folder_and_changes_nothing(tmp_path, where, message):
    cfg = _state(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    run = _backup(cfg, tmp_path / where)
    assert run.returncode == 1 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "state" / "inside").exists()


def test_backup_without_a_database_says_where_it_looked(tmp_path):
    cfg = tmp_path / "paperbot.toml"
    cfg.write_text('state_dir = "nowhere"\n', encoding="utf-8")
    run = _backup(cfg, tmp_path / "b")
    assert run.returncode == 1 and f"{tmp_path / 'nowhere' / 'paperbot.db'}: no database here" in run.stderr
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.partial*"))
