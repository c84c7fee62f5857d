"""Kill -9 a real `paperbot publish` mid-send, three times, and restart it: nobody misses the week, and only
rows that were `sending` at a kill may have a second copy: at most one batch per connection (`[email] batch`,
issue #27), at most one message per connection with `batch = 1`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from publish_support import KEY, SECRET, add_subscribers, addresses, parse, ready_week, smtp_server, write_config

from bot.publish import ledger
from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
N = 5000
KILL_AT = (500, 2000, 3500)


def start(cfg_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    env.pop("PAPERBOT_SMTP_PASSWORD", None)
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "publish"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def in_flight(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT unit FROM deliveries WHERE state = 'sending'")}
    finally:
        conn.close()


@pytest.mark.parametrize("batch", [None, 1])
def test_kills_lose_nothing_and_duplicate_only_rows_in_flight(tmp_path, batch):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port, connections=2, batch=batch)
        most = 2 * cfg.email.batch  # in flight at a kill: a batch per connection (#27)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        people = addresses(N)
        add_subscribers(store, tmp_path, people)
        store.close()

        flights: list[set[str]] = []
        for threshold in KILL_AT:
            proc = start(cfg.path)
            deadline = time.monotonic() + 60
            while rec.count() < threshold:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the sender made no progress"
                time.sleep(0.002)
            proc.kill()
            proc.wait()
            flights.append(in_flight(cfg.db_path))
        proc = start(cfg.path)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()

        got = rec.recipients()
        assert set(got) == set(people), "every subscriber has the week"
        extra = {a: n - 1 for a, n in got.items() if n > 1}
        for address, copies in extra.items():
            assert copies <= sum(address in f for f in flights), f"{address}: a copy beyond its rows in flight"
        assert all(len(f) <= most for f in flights), f"at most `connections` batches ({most} rows) are in flight"
        for address in extra:
            ids = {parse(raw)["Message-ID"] for rcpt, raw in rec.messages if rcpt == address}
            assert len(ids) == 1, "a resend carries the same Message-ID"

        store = Store.open(cfg.db_path)
        assert ledger.counts(store, "dair", KEY, "email")["sent"] == N
        assert store.week("dair", KEY).state == "published"
        print(f"kills at {KILL_AT}: in flight {[sorted(f) for f in flights]}; duplicates {extra}")
