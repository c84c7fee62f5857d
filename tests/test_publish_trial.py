"""issue #10, items 4 and 5: a trial run (the outbox) uses nothing up, and a test edition goes to one address.

Real parts only: SQLite files, a real aiosmtpd server on 127.0.0.1 (tests/publish_support.py), the real CLI.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from publish_support import (
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
from bot.channels.email.mime import message_id
from bot.cli import cli
from bot.publish import ledger
from bot.publish.pipeline import after_poll
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

OLD, NEW = "2023-02-13..2023-02-19", "2023-02-20..2023-02-26"


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def run_cli(cfg, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


def _week(dates: str, *titles: str) -> str:
    rows = [f"| {i}) **{t}** - a summary of {t.lower()}. | [Paper](https://arxiv.org/abs/2302.{i:05d}) |"
            for i, t in enumerate(titles, 1)]
    return "\n".join([f"## Top ML Papers of the Week ({dates})", "", "| **Paper** | **Links** |", "| --- | --- |",
                      *rows, ""])


OLD_WEEK = _week("Feb 13-19", "Older Lanterns", "Older Gradients")
NEW_WEEK = _week("Feb 20-26", "Newer Lanterns", "Newer Gradients")


def _observe(store: Store, cfg, text: str, seen: datetime, version: str) -> None:
    doc = parse_document(("# Papers We Liked\n\n" + text).encode(), seen.date(), "digest")
    observe(store, "dair", doc, seen, version, cfg.publish)
    release(store, datetime(2023, 3, 10, tzinfo=UTC), cfg.publish)


def dump(db: Path) -> dict[str, list]:
    """Every row of every table (the migrations' own record included), for a before/after comparison."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def outbox(cfg, key: str) -> Path:
    return cfg.state_dir / "outbox" / "email" / "dair" / key


def _states(store: Store, key: str) -> tuple[str, str | None, list[str]]:
    pub = ledger.publication(store, "dair", key, "email")
    rows = store.db.execute("SELECT state FROM deliveries WHERE week_key = ? ORDER BY id", [key]).fetchall()
    return store.week("dair", key).state, pub.state if pub else None, [r[0] for r in rows]


# -- item 4: a trial run uses nothing up ------------------------------------------------------------------


def test_a_trial_in_the_outbox_keeps_the_week_ready_and_smtp_later_sends_it_to_every_subscriber_once(tmp_path):
    """issue #10: `make run` without smtp_url wrote the week to the outbox and marked it published, so once the
    operator configured SMTP that week never reached anyone. Now the outbox is a trial: deliveries `trial`,
    the week stays ready and is not written again; with SMTP it goes to every subscriber exactly once."""
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    people = addresses(3)
    add_subscribers(store, tmp_path, people)

    first = run_cli(cfg, "publish")
    assert first.exit_code == 0, first.output
    assert "3 written to the outbox" in first.output and "trial" in first.output
    emls = sorted(p.name for p in outbox(cfg, NEW).glob("*.eml"))
    assert [n.split("-", 1)[1] for n in emls] == [f"{a}.eml" for a in people]
    assert _states(store, NEW) == ("ready", "trial", ["trial"] * 3)
    weeks = json.loads(run_cli(cfg, "weeks", "--json").output)
    assert [(w["key"], w["state"]) for w in weeks] == [(NEW, "ready")]

    written, before = files(cfg.state_dir / "outbox"), dump(cfg.db_path)
    again = run_cli(cfg, "publish")
    assert again.exit_code == 0 and "tried already" in again.output, again.output
    after_poll(cfg, store, datetime(2023, 3, 11, tzinfo=UTC))  # the daemon's round leaves it alone too
    assert files(cfg.state_dir / "outbox") == written and dump(cfg.db_path) == before

    with smtp_server() as (rec, port):
        live = write_config(tmp_path, port)
        result = run_cli(live, "publish")
        assert result.exit_code == 0, result.output
        assert "3 sent" in result.output and "published" in result.output
        assert rec.count() == 3 and set(rec.recipients()) == set(people) and max(rec.recipients().values()) == 1
        assert all("Sparse Lanterns" in parse(raw).get_body(("html",)).get_content() for _, raw in rec.messages)
        assert _states(store, NEW) == ("published", "published", ["sent"] * 3)
        (entry,) = json.loads(run_cli(live, "history", "--json").output)
        assert entry["channels"]["email"]["trial"] is False
        assert "tried in the outbox" in entry["channels"]["email"]["note"]
        assert run_cli(live, "publish").output.strip() == "no ready weeks to publish"
        assert rec.count() == 3
    assert files(cfg.state_dir / "outbox") == written


def test_going_live_sends_the_newest_trial_week_and_skips_the_older_one_saying_why(tmp_path, caplog):
    """issue #10: with two weeks tried only in the outbox, configuring SMTP sent both (the older one weeks
    late). Now the newest (`[publish] backfill` = 1) goes out for real, the older one is `skipped` on email,
    and the log and `paperbot history` say which and why."""
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    people = addresses(4)
    add_subscribers(store, tmp_path, people)
    _observe(store, cfg, OLD_WEEK, datetime(2023, 2, 20, 9, tzinfo=UTC), "v1")
    assert run_cli(cfg, "publish").exit_code == 0
    _observe(store, cfg, NEW_WEEK + "\n" + OLD_WEEK, datetime(2023, 2, 27, 9, tzinfo=UTC), "v2")
    second = run_cli(cfg, "publish")
    assert second.exit_code == 0, second.output
    assert f"dair:{OLD}: tried already" in second.output and f"dair:{NEW}: 4 written to the outbox" in second.output
    assert _states(store, OLD) == ("ready", "trial", ["trial"] * 4)
    assert _states(store, NEW) == ("ready", "trial", ["trial"] * 4)

    with smtp_server() as (rec, port):
        live = write_config(tmp_path, port)
        dry = run_cli(live, "publish", "--dry-run")
        assert f"dair:{OLD}: would be skipped" in dry.output and f"dair:{NEW}: would send 4" in dry.output
        caplog.set_level(logging.INFO)
        result = run_cli(live, "publish")
        assert result.exit_code == 0, result.output
        assert rec.count() == 4 and set(rec.recipients()) == set(people) and max(rec.recipients().values()) == 1
        assert {parse(raw)["Subject"] for _, raw in rec.messages} == {"Top ML Papers of the Week (Feb 20-26)"}
        assert f"dair:{OLD}: skipped: only ever a trial" in result.output

    assert _states(store, NEW) == ("published", "published", ["sent"] * 4)
    assert _states(store, OLD) == ("skipped", "skipped", ["trial"] * 4)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and OLD in r.getMessage()]
    assert "skipped: only ever a trial" in warning and NEW in warning and "backfill = 1" in warning
    history = run_cli(live, "history").output
    assert f"dair:{OLD}  skipped" in history and "note: skipped: only ever a trial" in history
    assert f"dair:{NEW}  published" in history
    entry = next(e for e in json.loads(run_cli(live, "history", "--json").output) if e["week"] == OLD)
    assert entry["state"] == "skipped" and entry["channels"]["email"]["state"] == "skipped"
    assert NEW in entry["channels"]["email"]["note"]
    again = run_cli(live, "publish", f"dair:{OLD}")
    assert again.exit_code == 0 and "skipped: only ever a trial" in again.output and rec.count() == 4


def test_a_real_send_left_unfinished_is_never_finished_in_the_outbox(tmp_path):
    """issue #10: rows planned for real (over SMTP) and not yet sent must not end as outbox files once
    smtp_url is removed: they wait for SMTP, and `paperbot publish` says so and exits 1."""
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    add_subscribers(store, tmp_path, addresses(2))
    # what a live run leaves when it stops before sending (killed, or the server down): rows planned for real
    ledger.plan(store, "dair", NEW, "email", [Unit(a) for a in addresses(2)], datetime(2023, 3, 10, tzinfo=UTC))
    result = run_cli(cfg, "publish")
    assert result.exit_code == 1 and "email is not live now" in result.output, result.output
    assert not outbox(cfg, NEW).exists()
    assert _states(store, NEW) == ("ready", "sending", ["planned", "planned"])


def test_zero_subscribers_over_smtp_waits_for_the_first_subscriber_with_a_warning_in_the_log(tmp_path, caplog):
    """issue #10: a live week with no active subscribers was marked published in silence; it then went "published
    to nobody" with a warning. Issue #25 (4): it now waits on email for the first subscriber (tests/
    test_first_subscriber.py), said in the log, by `publish` and by `status`."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        caplog.set_level(logging.INFO)
        result = run_cli(cfg, "publish")
        assert result.exit_code == 0, result.output
        assert rec.count() == 0 and "waiting for the first subscriber" in result.output
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("waiting for the first subscriber" in w and "nobody is subscribed" in w for w in warnings), warnings
    assert store.week("dair", NEW).state == "ready"
    assert "email: waiting for the first subscriber" in run_cli(cfg, "status").output


# -- item 5: a test edition to yourself ----------------------------------------------------------------------


WEEKS_BY_STATE = {"baseline": "2023-02-13..2023-02-19", "published": "2023-02-20..2023-02-26",
                  "ready": "2023-02-27..2023-03-05", "pending": "2023-03-06..2023-03-12"}


def _old_db(tmp_path: Path, port: int | None):
    """The previous main's database (weeks in every state, a ledger, subscribers) under a fresh config."""
    cfg = write_config(tmp_path, port)
    cfg.db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "db" / "main-89dfc70.db", cfg.db_path)
    Store.open(cfg.db_path).close()  # upgrade it first: the migrations are not the command's doing
    store = Store.open(cfg.db_path)
    assert {w.key: w.state for w in store.weeks("dair")} == {v: k for k, v in WEEKS_BY_STATE.items()}
    store.close()
    return cfg


def test_publish_to_an_address_sends_one_copy_of_a_week_in_any_state_over_smtp_and_changes_no_row(tmp_path):
    """issue #10: there was no way to send yourself a test edition. `paperbot publish WEEK --to ADDRESS` sends
    one copy per WEEK, whatever its state, and no row of the database changes."""
    with smtp_server() as (rec, port):
        cfg = _old_db(tmp_path, port)
        before, state_files = dump(cfg.db_path), files(cfg.state_dir)
        for state, key in WEEKS_BY_STATE.items():
            result = run_cli(cfg, "publish", key, "--to", "Me Myself <me@Example.ORG>")
            assert result.exit_code == 0, (state, result.output)
            assert "one test copy sent to me@example.org" in result.output
        assert [r for r, _ in rec.messages] == ["me@example.org"] * 4
        for (_, raw), key in zip(rec.messages, WEEKS_BY_STATE.values(), strict=True):
            msg = parse(raw)
            assert msg["To"] == "me@example.org" and msg["Subject"].startswith("Top ML Papers of the Week")
            assert msg["Message-ID"] != message_id("dair", key, "me@example.org", "papers.weekly.test")
        assert "Old Paper" in parse(rec.messages[0][1]).get_body(("plain",)).get_content()
        assert "Fresh Week Paper" in parse(rec.messages[3][1]).get_body(("plain",)).get_content()
    assert dump(cfg.db_path) == before
    assert {k: v for k, v in files(cfg.state_dir).items() if not k.startswith("paperbot.db")} == {
        k: v for k, v in state_files.items() if not k.startswith("paperbot.db")}  # no key, edition or outbox file


def test_publish_to_an_address_without_smtp_writes_one_copy_apart_from_the_outbox_and_changes_no_row(tmp_path):
    """issue #10: the same without smtp_url: one .eml per WEEK in state_dir/outbox/test/, not in the week's
    own outbox folder (which a trial fills), and no row of the database changes."""
    cfg = _old_db(tmp_path, None)
    before = dump(cfg.db_path)
    for key in WEEKS_BY_STATE.values():
        result = run_cli(cfg, "publish", f"dair:{key}", "--to", "me@example.org")
        assert result.exit_code == 0 and "one test copy written to" in result.output, result.output
    copies = sorted((cfg.state_dir / "outbox" / "test" / "email" / "dair").rglob("*.eml"))
    assert sorted(p.parent.name for p in copies) == sorted(WEEKS_BY_STATE.values())
    assert all(parse(p.read_bytes())["To"] == "me@example.org" for p in copies)
    assert not (cfg.state_dir / "outbox" / "email").exists()
    assert dump(cfg.db_path) == before


@pytest.mark.parametrize("args, expected", [
    (["--to", "me@example.org"], "--to needs the WEEK"),
    ([NEW, "--to", "not an address"], "--to: not an email address"),
    ([NEW, "--to", "me@example.org", "--dry-run"], "do not go together"),
    (["nope", "--to", "me@example.org"], "no week 'nope'"),
])
def test_publish_to_with_bad_input_is_one_line_and_sends_nothing(tmp_path, args, expected):
    """issue #10: a mistake in `--to` is one line naming it, exit status 1, nothing sent or written."""
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    before = dump(cfg.db_path)
    result = run_cli(cfg, "publish", *args)
    assert result.exit_code == 1 and expected in result.output, result.output
    assert result.output.count("\n") == 1 and dump(cfg.db_path) == before
    assert not (cfg.state_dir / "outbox").exists()


def test_publish_to_when_the_smtp_server_is_down_is_one_line(tmp_path):
    cfg = write_config(tmp_path, free_port())  # nothing listens there
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    before = dump(cfg.db_path)
    result = run_cli(cfg, "publish", NEW, "--to", "me@example.org")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "the test copy to me@example.org was not sent" in result.output and "cannot connect" in result.output
    assert dump(cfg.db_path) == before


# -- issue #14: the wording of preview, publish and history ------------------------------------------------


def test_preview_and_publish_say_what_a_baseline_and_a_published_week_are(tmp_path):
    """issue #14: `preview` of a baseline or published week said it "would go to 5 active subscribers", and
    `publish` of a baseline week said "nothing to publish yet" though it never can be published."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        _observe(store, cfg, NEW_WEEK + "\n" + OLD_WEEK, datetime(2023, 2, 27, 12, tzinfo=UTC), "v1")
        assert (store.week("dair", OLD).state, store.week("dair", NEW).state) == ("baseline", "ready")
        add_subscribers(store, tmp_path, addresses(5))
        store.close()

        preview = run_cli(cfg, "preview", f"dair:{OLD}")
        assert preview.exit_code == 0
        assert (f"  would go to nobody: dair:{OLD} is baseline, never published (`paperbot publish dair:{OLD} "
                "--to ADDRESS` sends yourself a test copy)") in preview.output
        assert "active subscriber" not in preview.output
        refused = run_cli(cfg, "publish", f"dair:{OLD}")
        assert refused.exit_code == 1 and "nothing to publish yet" not in refused.output
        assert (f"dair:{OLD} is baseline (it was there at the source's first poll): it is never published"
                in refused.output)
        assert "would go to 5 active subscriber(s)" in run_cli(cfg, "preview", f"dair:{NEW}").output

        assert run_cli(cfg, "publish").exit_code == 0 and rec.count() == 5
        done = run_cli(cfg, "preview", f"dair:{NEW}")
        assert (f"  already published: sent to 5 (see `paperbot history dair:{NEW}`); nothing more goes out"
                in done.output)
        assert "would go to" not in done.output


def test_history_counts_say_what_is_left_to_send_sent_and_written_to_the_outbox(tmp_path):
    """issue #14: `history` said "0 open of 5", which reads like open tracking: now "N to send", "N sent",
    "N written to the outbox"."""
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    add_subscribers(store, tmp_path, addresses(2))
    store.close()
    assert run_cli(cfg, "publish").exit_code == 0
    text = run_cli(cfg, "history").output
    assert "email: trial (outbox only); 2 written to the outbox (of 2); planned " in text, text  # #25 (13c)
    assert "open" not in text
    store = Store.open(cfg.db_path)  # planned for real (SMTP live), half done: the ledger as the pipeline leaves it
    add_subscribers(store, tmp_path, addresses(4))
    ledger.plan(store, "dair", NEW, "email", [Unit(a, str(i)) for i, a in enumerate(addresses(4), 1)],
                datetime(2023, 3, 10, tzinfo=UTC))
    store.db.execute("UPDATE deliveries SET state = 'sent' WHERE unit = 'reader0@example.net'")
    store.db.execute("UPDATE deliveries SET state = 'bounced' WHERE unit = 'reader1@example.net'")
    store.db.conn.commit()
    store.close()
    text = run_cli(cfg, "history").output
    assert "email: sending; 2 to send, 1 sent, 1 bounced (of 4); planned 2023-03-10" in text, text
