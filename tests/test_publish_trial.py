"""issue #10, items 4 and 5: a trial run (the outbox) uses nothing up, and a test edition goes to one address.

Real parts only: SQLite files, a real aiosmtpd server on 127.0.0.1 (tests/publish_support.py), the real CLI.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from publish_support import (
    SECRET,
    add_subscribers,
    addresses,
    parse,
    ready_week,
    smtp_server,
    write_config,
)

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
    with smtp_server() as (rec, port):
        live = write_config(tmp_path, port)
        store = Store.open(live.db_path)
        ready_week(store, live)
        add_subscribers(store, tmp_path, addresses(2))
        rec.reject_content = True  # every DATA refused: the run stops with both rows failed
        assert run_cli(live, "publish").exit_code == 1
    cfg = write_config(tmp_path, None)
    result = run_cli(cfg, "publish")
    assert result.exit_code == 1 and "email is not live now" in result.output, result.output
    assert not outbox(cfg, NEW).exists()
    assert _states(store, NEW)[:2] == ("ready", "sending")
    assert set(_states(store, NEW)[2]) == {"failed"}


def test_zero_subscribers_over_smtp_is_published_to_nobody_with_a_warning_in_the_log_and_history(tmp_path, caplog):
    """issue #10: a live week with no active subscribers was marked published in silence. It still is (the
    ledger has nobody to wait for), but with a warning in the log and a note `paperbot history` shows."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        caplog.set_level(logging.INFO)
        result = run_cli(cfg, "publish")
        assert result.exit_code == 0, result.output
        assert rec.count() == 0 and "published to nobody" in result.output
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("published to nobody" in w and "no active subscribers" in w for w in warnings), warnings
    assert _states(store, NEW) == ("published", "published", [])
    assert "note: published to nobody: there were no active subscribers" in run_cli(cfg, "history").output
    (entry,) = json.loads(run_cli(cfg, "history", NEW, "--json").output)
    assert entry["channels"]["email"]["note"].startswith("published to nobody")
