"""issue #24: one mailbox, one subscription. `alice@`, `Alice@` and `ALICE@` are one reader: the database holds
one subscriber per mailbox key (local part case-folded), a +tag is its own subscription, the confirmation cap
counts the mailbox without its tag, the spelling given is the one mail goes to, and an unsubscribe applies to
the mailbox. Migration m017_mailbox_key merges what an earlier main stored twice.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import FIXTURES
from publish_support import DIGEST, SECRET, free_port, ready_week, smtp_server, write_config

from bot.channels import load_config
from bot.channels.email import subscribers as subs
from bot.channels.email.addresses import InvalidAddress, cap_key, mailbox_key
from bot.publish.pipeline import publish_week
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

OLD = FIXTURES / "db" / "main-070f0af.db"
NOW = datetime(2024, 3, 11, tzinfo=UTC)


def _rows(db, table="subscribers") -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT address, state FROM {table} ORDER BY id").fetchall()
    finally:
        con.close()


def test_the_mailbox_key_folds_the_local_part_and_the_cap_key_drops_the_tag():
    """issue #24: the key of a mailbox, and of its confirmation cap."""
    assert mailbox_key(" Alice@Example.ORG ") == mailbox_key("ALICE@example.org") == "alice@example.org"
    assert mailbox_key("Alice <alice@BÜCHER.example>") == "alice@xn--bcher-kva.example"
    assert mailbox_key("alice+ml@example.org") == "alice+ml@example.org"  # its own subscription
    assert cap_key("Alice+ML@example.org") == cap_key("alice@example.org") == "alice@example.org"
    assert cap_key("+x@example.org") == "+x@example.org"  # a local part that is all tag stays itself
    with pytest.raises(InvalidAddress):
        mailbox_key("no-at-sign")


def test_an_old_database_with_case_duplicates_upgrades_to_one_unsubscribed_alice(tmp_path, caplog):
    """issue #24: main-070f0af.db holds alice@, Alice@ (active) and ALICE@ (unsubscribed), and alice+ml@: after
    the upgrade alice is one subscriber, unsubscribed (unsubscribed wins), alice+ml stays its own; the merged
    rows are kept whole in subscriber_merges, deliveries untouched; the migration says how many it merged."""
    db = tmp_path / "state" / "paperbot.db"
    db.parent.mkdir()
    shutil.copy(OLD, db)
    con = sqlite3.connect(db)
    deliveries = con.execute("SELECT * FROM deliveries ORDER BY id").fetchall()
    con.close()
    with caplog.at_level(logging.INFO):
        Store.open(db).close()
    assert "merged 2 subscriber row(s)" in caplog.text
    rows = _rows(db)
    alice = [(a, s) for a, s in rows if a.lower() == "alice@example.org"]
    assert alice == [("ALICE@example.org", "unsubscribed")]
    assert ("alice+ml@example.org", "active") in rows
    assert ("active@example.net", "active") in rows and ("gone@example.net", "unsubscribed") in rows
    assert sorted(_rows(db, "subscriber_merges")) == [("Alice@example.org", "active"), ("alice@example.org", "active")]
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT * FROM deliveries ORDER BY id").fetchall() == deliveries
        with pytest.raises(sqlite3.IntegrityError):  # the mailbox key is unique from now on
            con.execute("INSERT INTO subscribers (address, state, created_at, updated_at) "
                        "VALUES ('aLiCe@example.org', 'active', 'x', 'x')")
    finally:
        con.close()
    store = Store.open(db)
    try:  # the unsubscribed reader gets nothing, whichever spelling is asked
        assert [a for _, a in subs.active(store)] == ["active@example.net", "alice+ml@example.org"]
        assert subs.state_of(store, "alice@EXAMPLE.org") == "unsubscribed"
    finally:
        store.close()


def test_spellings_are_one_subscriber_and_an_unsubscribe_applies_to_the_mailbox(tmp_path):
    """issue #24: CSV import, the operator's add and the web's request all find the mailbox; the first spelling
    stays the one mail goes to; unsubscribing any spelling stops it."""
    store = Store.open(tmp_path / "paperbot.db")
    try:
        csv = tmp_path / "list.csv"
        csv.write_text("email\nAlice@Example.org\nalice@example.org\nALICE@EXAMPLE.ORG\nalice+ml@example.org\n",
                       encoding="utf-8")
        report = subs.import_csv(store, csv, now=NOW)
        assert (report.added, report.already) == (2, 2)
        report = subs.import_csv(store, csv, now=NOW)  # again: everything is there
        assert (report.added, report.already) == (0, 4)
        subs.add(store, "aLiCe@example.org", origin="cli", now=NOW)
        assert [a for _, a in subs.active(store)] == ["Alice@example.org", "alice+ml@example.org"]
        assert subs.unsubscribe(store, "ALICE@example.ORG", now=NOW, origin="test")
        assert [a for _, a in subs.active(store)] == ["alice+ml@example.org"]
        assert subs.count(store) == 2
    finally:
        store.close()


def test_the_confirmation_cap_counts_a_mailbox_with_every_spelling_and_tag(tmp_path):
    """issue #24: 20 case spellings and +tags of one inbox sent 60 confirmation emails on main; now 3."""
    store = Store.open(tmp_path / "paperbot.db")
    try:
        sent = []
        for i in range(20):
            local = "".join(c.upper() if i >> n & 1 else c for n, c in enumerate("victim"))
            address = f"{local}+t{i}@example.org" if i % 2 else f"{local}@example.org"
            sent.append(subs.request_confirmation(store, subs.normalize_address(address), now=NOW,
                                                  ttl=timedelta(hours=48), per_day=3, nonce=f"n{i:02d}"))
        assert sum(s is not None for s in sent) == 3
        assert store.db.execute("SELECT count(*) FROM confirmations").fetchone()[0] == 3
        later = NOW + timedelta(days=1, seconds=1)  # a day on, the mailbox may ask again
        assert subs.request_confirmation(store, "Victim@example.org", now=later, ttl=timedelta(hours=48),
                                         per_day=3, nonce="later") == "confirm"
    finally:
        store.close()


def test_pending_addresses_go_after_pending_ttl_with_their_confirmations(tmp_path):
    """issue #24: pending subscribers whose last link expired more than pending_ttl ago are deleted with their
    confirmations; a younger one, an active one and one the operator added as pending stay."""
    store = Store.open(tmp_path / "paperbot.db")
    try:
        ttl = timedelta(hours=48)
        for address, at in (("old@example.org", NOW - timedelta(days=20)), ("young@example.org", NOW),
                            ("kept@example.org", NOW - timedelta(days=20))):
            subs.request_confirmation(store, address, now=at, ttl=ttl, per_day=3, nonce=address[:4])
        subs.add(store, "kept@example.org", origin="cli", now=NOW)  # active now
        subs.add(store, "manual@example.org", origin="cli", now=NOW - timedelta(days=30), state="pending")
        assert subs.purge_pending(store, now=NOW, keep=timedelta(days=7)) == 1
        assert [r["address"] for r in subs.rows(store)] == ["young@example.org", "kept@example.org",
                                                            "manual@example.org"]
        left = {r[0] for r in store.db.execute("SELECT address FROM confirmations")}
        assert left == {"young@example.org", "kept@example.org"}
    finally:
        store.close()


# --- through the real parts: CSV import (the CLI), the web form, a real SMTP server, the link in the email ---


def _cli(tmp, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    run = subprocess.run([sys.executable, "-m", "bot", "--config", str(tmp / "paperbot.toml"), *args], cwd=tmp,
                         env=env, capture_output=True, text=True, timeout=60)
    assert not check or run.returncode == 0, run.stdout + run.stderr
    return run


def _form(base: str) -> tuple[str, str]:
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        body = r.read().decode("utf-8")
        cookie = r.headers["Set-Cookie"].split(";")[0]
    return cookie, re.search(r'name="csrf" value="([^"]+)"', body).group(1)


def _post(url: str, fields: dict, cookie: str = "") -> tuple[int, str]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST",
                                 headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def _second_week(store, cfg) -> None:
    more = DIGEST + "\n".join(["## Top ML Papers of the Week (Feb 27 - Mar 5, 2023)", "",
                               "| **Paper**  | **Links** |", "| ------------- | ------------- |",
                               "| 1) **Tidy Kernels** - kernels that sort themselves. "
                               "| [Paper](https://arxiv.org/abs/2303.00001) |", ""])
    observe(store, "dair", parse_document(more.encode(), date(2023, 3, 6), "digest"),
            datetime(2023, 3, 6, 12, tzinfo=UTC), "v2", cfg.publish)
    release(store, datetime(2023, 3, 17, tzinfo=UTC), cfg.publish)


def _copies(rec, mailbox: str, subject: str) -> int:
    import email
    import email.policy
    n = 0
    for rcpt, raw in list(rec.messages):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if rcpt.lower() == mailbox and subject in str(msg["Subject"]):
            n += 1
    return n


def test_one_mailbox_given_in_three_spellings_by_csv_and_the_form_gets_one_copy_then_none(tmp_path, monkeypatch):
    """issue #24, the finding: a mailbox put on the list as `reader@`, `Reader@` and `READER@` through CSV import
    and the web form receives exactly one copy of an edition from a real SMTP server; the unsubscribe link in
    that copy stops the mailbox: the next edition sends it nothing."""
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    with smtp_server() as (rec, smtp_port):
        write_config(tmp_path, smtp_port)
        port = free_port()
        path = tmp_path / "paperbot.toml"
        path.write_text(path.read_text(encoding="utf-8").replace(
            "[web]\n", f'[web]\nlisten = "127.0.0.1:{port}"\nsubscribe_limit = "100/1m"\n'), encoding="utf-8")
        cfg = load_config(path)
        (tmp_path / "list.csv").write_text("email\nreader@example.net\nREADER@example.net\nother@example.net\n",
                                           encoding="utf-8")
        out = _cli(tmp_path, "subscribers", "import", "list.csv")
        assert "added 2, already there 1" in out.stdout
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(tmp_path / "paperbot.toml"), "serve"],
                                cwd=tmp_path, env={**os.environ, "PAPERBOT_SECRET_KEY": SECRET},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(base + "/static/site.css", timeout=1)
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                    time.sleep(0.1)
            cookie, csrf = _form(base)
            for spelling in ("Reader@Example.net", "rEaDeR@example.NET"):
                assert _post(base + "/subscribe", {"email": spelling, "csrf": csrf}, cookie)[0] == 200
            deadline = time.monotonic() + 10
            while _copies(rec, "reader@example.net", "already subscribed") < 2:  # told, not subscribed twice
                assert time.monotonic() < deadline, rec.recipients()
                time.sleep(0.05)
            assert _copies(rec, "reader@example.net", "Confirm") == 0
            assert {r for r, _ in rec.messages} == {"reader@example.net"}  # the spelling the list holds

            store = Store.open(cfg.db_path)
            try:
                assert subs.count(store) == 2
                week = ready_week(store, cfg)
                publish_week(cfg, store, week, channels=["email"], now=datetime(2023, 3, 10, tzinfo=UTC))
            finally:
                store.close()
            subject = "Top ML Papers of the Week"
            assert _copies(rec, "reader@example.net", subject) == 1  # one mailbox, one copy
            assert _copies(rec, "other@example.net", subject) == 1
            copy = next(raw for rcpt, raw in rec.messages if rcpt == "reader@example.net" and b"List-Unsubscribe:"
                        in raw)
            link = re.search(rb"List-Unsubscribe: <(https://papers\.weekly\.test/unsubscribe/[^>]+)>", copy).group(1)
            local = link.decode().replace("https://papers.weekly.test", base)  # the proxy's address, here
            assert _post(local, {"List-Unsubscribe": "One-Click"}) == (200, "unsubscribed\n")

            store = Store.open(cfg.db_path)
            try:
                _second_week(store, cfg)
                week = store.week("dair", "2023-02-27..2023-03-05")
                assert week is not None and week.state == "ready", week
                publish_week(cfg, store, week, channels=["email"], now=datetime(2023, 3, 17, tzinfo=UTC))
                assert subs.state_of(store, "READER@example.net") == "unsubscribed"
            finally:
                store.close()
            assert _copies(rec, "other@example.net", subject) == 2  # the second edition went out
            assert _copies(rec, "reader@example.net", subject) == 1  # and nothing more to the mailbox that left
        finally:
            proc.terminate()
            proc.wait(timeout=10)
