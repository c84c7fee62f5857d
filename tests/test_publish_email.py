"""Publishing a week by email through a real aiosmtpd server on 127.0.0.1, real SQLite files, the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import commit_file, make_repo
from publish_support import (
    DIGEST,
    KEY,
    SECRET,
    add_subscribers,
    addresses,
    free_port,
    parse,
    ready_week,
    smtp_server,
    write_config,
)

from bot.channels.base import Unit
from bot.channels.email import subscribers
from bot.channels.email.tokens import subscriber_ref, verify_ref
from bot.cli import cli
from bot.publish import ledger
from bot.publish.pipeline import publish_ready, publish_week
from bot.store import Store

NOW = datetime(2023, 3, 10, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def run_cli(cfg, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


def check_message(raw: bytes, rcpt: str) -> str:
    """Assert `raw` is the newsletter for `rcpt`, well formed; return its Message-ID."""
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = list(msg.iter_parts())
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert msg["To"] == rcpt
    assert msg["List-Id"] == "<papers.weekly.test>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.match(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)
    assert url.startswith("https://papers.weekly.test/unsubscribe/")
    assert verify_ref(SECRET.encode(), url.rsplit("/", 1)[1]) == subscriber_ref(SECRET.encode(), rcpt)
    assert rcpt not in url  # issue #13: the link names no address
    assert url in text.get_content() and url in html.get_content()
    assert "unsubscribe.paperbot.invalid" not in raw.decode("ascii")
    assert "Sparse Lanterns" in html.get_content()
    return msg["Message-ID"]


def test_a_week_reaches_500_subscribers_once_each(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        people = addresses(500)
        add_subscribers(store, tmp_path, people)

        result = run_cli(cfg, "publish")
        assert result.exit_code == 0, result.output
        assert "500 sent" in result.output and "published" in result.output

        assert rec.count() == 500
        assert set(rec.recipients()) == set(people) and max(rec.recipients().values()) == 1
        ids = {check_message(raw, rcpt) for rcpt, raw in rec.messages}
        assert len(ids) == 500 and all(i.endswith("@papers.weekly.test>") for i in ids)
        assert ledger.counts(store, "dair", KEY, "email")["sent"] == 500
        remote = {r["remote_id"] for r in ledger.rows_in(store, "dair", KEY, "email", ("sent",))}
        assert remote == ids
        assert store.week("dair", KEY).state == "published"
        assert (cfg.state_dir / "editions" / "dair" / f"{KEY}.html").is_file()

        again = run_cli(cfg, "publish", f"dair:{KEY}")
        assert again.exit_code == 0 and "nothing to send" in again.output
        assert publish_week(cfg, store, store.week("dair", KEY), now=NOW)[0].already
        assert run_cli(cfg, "publish").output.strip() == "no ready weeks to publish"
        assert rec.count() == 500


def test_451_is_retried_550_bounces_and_is_never_retried(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        people = addresses(40)
        add_subscribers(store, tmp_path, people)
        refused, deferred = set(people[0:40:8]), set(people[3:40:8])
        rec.refuse = set(refused)
        rec.defer = dict.fromkeys(deferred, 2)  # two 451s, then accepted

        (rep,) = publish_week(cfg, store, week, now=NOW)

        got = rec.recipients()
        assert set(got) == set(people) - refused and max(got.values()) == 1
        assert deferred <= set(got)
        assert all(rec.rcpt_attempts[a] == 1 for a in refused)
        assert all(rec.rcpt_attempts[a] == 3 for a in deferred)
        assert rep.published and rep.counts["sent"] == 35 and rep.counts["bounced"] == 5
        for row in ledger.rows_in(store, "dair", KEY, "email", ("bounced",)):
            assert row["unit"] in refused and row["last_error"].startswith("RCPT: 550") and row["attempts"] == 1
        assert {a for a in refused if _state(store, a) == "bounced"} == refused
        for row in ledger.rows_in(store, "dair", KEY, "email", ("sent",)):
            assert row["attempts"] == (3 if row["unit"] in deferred else 1)

        publish_ready(cfg, store, NOW)
        assert rec.recipients() == got and all(rec.rcpt_attempts[a] == 1 for a in refused)


def _state(store: Store, address: str) -> str:
    return store.db.execute("SELECT state FROM subscribers WHERE address = ?", [address]).fetchone()[0]


def test_a_content_refusal_on_data_bounces_nobody_and_stops_the_run(tmp_path):
    """Regression (#4): a 5xx to DATA refuses the message, not the address; it must not bounce the list."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port, connections=1)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        people = addresses(60)
        add_subscribers(store, tmp_path, people)
        rec.reject_content = True

        result = run_cli(cfg, "publish")

        assert result.exit_code == 1
        assert rec.count() == 0
        assert subscribers.count(store, "bounced") == 0 and subscribers.count(store, "active") == 60
        failed = ledger.rows_in(store, "dair", KEY, "email", ("failed",))
        assert failed and all("554" in r["last_error"] for r in failed)
        assert len(failed) < 60  # the run stopped instead of trying the whole list
        assert not ledger.rows_in(store, "dair", KEY, "email", ("bounced",))
        assert store.week("dair", KEY).state == "ready"

        rec.reject_content = False
        publish_ready(cfg, store, NOW)
        assert set(rec.recipients()) == set(people) and store.week("dair", KEY).state == "published"


def test_a_row_still_refused_after_its_tries_is_failed_and_the_next_run_sends_it(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(5))
        stubborn = "reader2@example.net"
        rec.defer = {stubborn: 100}

        result = run_cli(cfg, "publish")
        assert result.exit_code == 1 and "1 still to send" in result.output
        (row,) = ledger.rows_in(store, "dair", KEY, "email", ("failed",))
        assert row["unit"] == stubborn and row["attempts"] == 4 and "451" in row["last_error"]
        assert store.week("dair", KEY).state == "ready" and _state(store, stubborn) == "active"

        rec.defer = {}
        (rep,) = publish_week(cfg, store, store.week("dair", KEY), now=NOW)
        assert rep.stats.sent == 1 and rep.published
        assert rec.recipients()[stubborn] == 1 and rec.count() == 5
        assert week.key == KEY and store.week("dair", KEY).state == "published"


def test_rate_caps_the_whole_run(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port, connections=3, rate=40)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(21))
        started = datetime.now(UTC)
        publish_ready(cfg, store, NOW)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        assert rec.count() == 21
        assert elapsed >= 20 / 40 * 0.9  # a lower bound only: 20 gaps at 40/s


def test_without_smtp_url_messages_go_to_the_outbox(tmp_path):
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    add_subscribers(store, tmp_path, addresses(3))
    result = run_cli(cfg, "publish")
    assert result.exit_code == 0, result.output
    folder = cfg.state_dir / "outbox" / "email" / "dair" / KEY
    emls = sorted(folder.glob("*.eml"))
    assert [p.name.split("-", 1)[1] for p in emls] == [f"reader{i}@example.net.eml" for i in range(3)]
    for p, rcpt in zip(emls, addresses(3), strict=True):
        check_message(p.read_bytes(), rcpt)
    assert "Sparse Lanterns" in (folder / "edition.html").read_text(encoding="utf-8")
    assert run_cli(cfg, "publish", KEY).exit_code == 0
    assert len(list(folder.glob("*.eml"))) == 3


def test_with_no_subscribers_one_sample_goes_to_from(tmp_path):
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    assert run_cli(cfg, "publish").exit_code == 0
    (eml,) = (cfg.state_dir / "outbox" / "email" / "dair" / KEY).glob("*.eml")
    check_message(eml.read_bytes(), "papers@weekly.test")
    assert subscribers.count(store) == 0
    (row,) = ledger.rows_in(store, "dair", KEY, "email", ("trial",))
    assert row["ref"] == "sample"


def test_dry_run_and_preview_send_and_change_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("PAPERBOT_SECRET_KEY")
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(7))
        before = _dump(store)

        dry = run_cli(cfg, "publish", "--dry-run")
        assert dry.exit_code == 0 and "would send 7" in dry.output
        out = tmp_path / "preview"
        shown = run_cli(cfg, "preview", KEY, "--out", str(out))
        assert shown.exit_code == 0 and "would go to 7 active subscriber(s)" in shown.output

        assert rec.count() == 0 and _dump(store) == before
        assert not (cfg.state_dir / "secret.key").exists()
        assert not (cfg.state_dir / "editions").exists()
        sample = (out / "email" / "dair" / KEY / "sample.eml").read_bytes()
        assert parse(sample)["To"] == "papers@weekly.test"
        assert "Sparse Lanterns" in (out / "email" / "dair" / KEY / "edition.html").read_text(encoding="utf-8")


def _dump(store: Store) -> list:
    return [list(store.db.execute(f"SELECT * FROM {t}").fetchall())
            for t in ("deliveries", "publications", "weeks", "subscribers")]


def test_history_json_shape(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(4))
        rec.refuse = {"reader1@example.net"}
        assert run_cli(cfg, "publish").exit_code == 0
        for args in (["history", "--json"], ["history", KEY, "--json"]):
            (entry,) = json.loads(run_cli(cfg, *args).output)
            assert set(entry) == {"source", "week", "title", "state", "channels"}
            assert (entry["source"], entry["week"], entry["state"]) == ("dair", KEY, "published")
            c = entry["channels"]["email"]
            assert set(c) == {"state", "trial", "note", "units", "planned_at", "published_at", "counts", "failures",
                              "late", "waits_until", "waits_for", "possible_duplicates"}
            assert c["state"] == "published" and c["units"] == 4 and c["trial"] is False and c["note"] is None
            assert c["late"] == [] and c["possible_duplicates"] == []  # a refused RCPT took nothing: no doubt
            assert c["counts"] == {"planned": 0, "sending": 0, "sent": 3, "failed": 0, "bounced": 1, "skipped": 0,
                                   "trial": 0, "uncertain": 0, "refused": 0}
            (f,) = c["failures"]
            assert set(f) == {"unit", "number", "state", "attempts", "error", "at"}
            assert (f["unit"], f["state"], f["attempts"]) == ("reader1@example.net", "bounced", 1)
        text = run_cli(cfg, "history").output
        assert "email: published; 3 sent" in text and "reader1@example.net" in text


def test_an_ambiguous_key_must_name_its_source(tmp_path):
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg, "dair")
    ready_week(store, cfg, "mirror")
    result = run_cli(cfg, "publish", KEY)
    assert result.exit_code != 0 and "write SOURCE:KEY" in result.output and "mirror:" + KEY in result.output
    assert ledger.publications(store) == []
    assert run_cli(cfg, "publish", f"mirror:{KEY}").exit_code == 0
    assert [p.source for p in ledger.publications(store)] == ["mirror"]
    assert run_cli(cfg, "publish", "nope:" + KEY).exit_code != 0


def test_an_unsubscribe_between_runs_skips_the_row(tmp_path):
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    week = ready_week(store, cfg)
    add_subscribers(store, tmp_path, addresses(3))
    ledger.plan(store, "dair", KEY, "email", [_unit(a) for a in addresses(3)], NOW, trial=True)  # the outbox
    subscribers.unsubscribe(store, "reader1@example.net", now=NOW, origin="test")
    (rep,) = publish_week(cfg, store, week, now=NOW)
    assert rep.done and rep.counts["trial"] == 2 and rep.counts["skipped"] == 1
    assert not list(Path(cfg.state_dir / "outbox" / "email" / "dair" / KEY).glob("*reader1*"))


def _unit(address: str) -> Unit:
    return Unit(key=address)


def test_paperbot_run_publishes_a_week_as_it_becomes_ready_and_answers_unsubscribe_links(tmp_path):
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", DIGEST, "2023-02-27T12:00:00+00:00")
    web_port = free_port()
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        text = cfg.path.read_text(encoding="utf-8").replace(
            "[web]\n", f'[web]\nlisten = "127.0.0.1:{web_port}"\n')
        cfg.path.write_text(text + f'\n[[sources]]\nname = "dair"\ngit = "{repo}"\n', encoding="utf-8")
        store = Store.open(cfg.db_path)
        add_subscribers(store, tmp_path, addresses(20))
        store.close()
        env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "run"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while rec.count() < 20 or not _published(cfg.db_path):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=10)
                time.sleep(0.05)
            url = re.search(r"<(https://[^>]+)>", parse(rec.messages[0][1])["List-Unsubscribe"]).group(1)
            local = url.replace("https://papers.weekly.test", f"http://127.0.0.1:{web_port}")
            with urllib.request.urlopen(local, timeout=10) as r:
                assert r.status == 200 and b"<form method=\"post\"" in r.read()
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        assert sorted(rec.recipients()) == sorted(addresses(20)) and max(rec.recipients().values()) == 1


def _published(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT state FROM weeks WHERE key = ?", [KEY]).fetchone()
        return bool(row) and row[0] == "published"
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_uses_the_user_in_the_url_and_the_password_from_the_environment(tmp_path, monkeypatch, caplog):
    with smtp_server(auth=True) as (rec, port):
        cfg = write_config(tmp_path, port, user="news%40example.org")
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(6))

        (rep,) = publish_week(cfg, store, week, now=NOW)  # no password in the environment: nothing is tried
        assert rep.stats.stopped and "PAPERBOT_SMTP_PASSWORD" in rep.stats.stopped
        assert rec.logins == [] and rec.count() == 0 and not rep.published

        monkeypatch.setenv("PAPERBOT_SMTP_PASSWORD", "s3cret-pw")
        caplog.set_level("DEBUG")
        result = run_cli(cfg, "-vv", "publish")
        assert result.exit_code == 0, result.output
        assert rec.count() == 6 and set(rec.logins) == {(b"news@example.org", b"s3cret-pw")}
        assert "s3cret-pw" not in result.output + caplog.text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_login_without_tls_is_warned_about_once_and_the_password_never_logged(tmp_path, monkeypatch, caplog):
    """issue #8: with a user in smtp_url, `starttls = false` and smtp://, the AUTH exchange (the password)
    went out in clear without a word. Now one warning per run (not one per connection), password never shown."""
    with smtp_server(auth=True) as (rec, port):
        cfg = write_config(tmp_path, port, connections=3, user="news")
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(9))
        monkeypatch.setenv("PAPERBOT_SMTP_PASSWORD", "s3cret-pw")
        caplog.set_level("DEBUG")
        (rep,) = publish_week(cfg, store, week, now=NOW)
        assert rep.published and rec.count() == 9 and len(rec.logins) == 3  # three connections, three logins
        warnings = [r for r in caplog.records if r.levelname == "WARNING" and "without TLS" in r.getMessage()]
        assert len(warnings) == 1, caplog.text
        assert f"smtp://news@127.0.0.1:{port}" in warnings[0].getMessage()
        assert "starttls = true" in warnings[0].getMessage()
        assert "s3cret-pw" not in caplog.text


def test_no_tls_warning_without_a_login(tmp_path, caplog):
    """issue #8: the warning is about credentials: a server taking mail without a login gets none."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(2))
        caplog.set_level("DEBUG")
        (rep,) = publish_week(cfg, store, week, now=NOW)
        assert rep.published and rec.count() == 2
        assert "without TLS" not in caplog.text


def test_a_dropped_connection_is_reopened_and_the_message_sent(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port, connections=1)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(10))
        rec.drop = {"reader4@example.net", "reader7@example.net"}
        (rep,) = publish_week(cfg, store, week, now=NOW)
        assert rep.published and rep.counts["sent"] == 10
        assert sorted(rec.recipients()) == sorted(addresses(10)) and max(rec.recipients().values()) == 1


def test_an_unsubscribe_queued_by_the_web_app_counts_before_planning(tmp_path):
    """issue #8: an unsubscribe the web app queued while the database was locked must stop the next send,
    even when no web app runs to apply the queue first."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        add_subscribers(store, tmp_path, ["stays@example.net", "leaves@example.net"])
        subscribers.queue_unsubscribe(cfg.state_dir / subscribers.JOURNAL, "leaves@example.net",
                                      now=NOW, origin="web:one-click")
        ready_week(store, cfg)
        publish_ready(cfg, store, NOW)
        assert sorted(rec.recipients()) == ["stays@example.net"]
        states = {r["address"]: r["state"] for r in store.db["subscribers"].rows}
        assert states == {"stays@example.net": "active", "leaves@example.net": "unsubscribed"}
