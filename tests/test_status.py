"""issue #14, point 2: `paperbot status [--json]`, what paperbot is doing at one glance.

Built from real parts: sources polled over a real local HTTP server (one of them answering 404), a week
published over a real aiosmtpd server, the daemon's real lock file. The JSON's shape is the one documented in the
README (the test reads the README's example and compares them), and the human form fits 80 columns.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import ROOT
from publish_support import SECRET, add_subscribers, ready_week, smtp_server
from sources_support import FAST, DocServer, fixture, write_config

from bot import locks
from bot.channels import load_config
from bot.cli import cli
from bot.publish.pipeline import publish_week
from bot.sources.poll import poll_source
from bot.store import Store

WEEK = "2024-01-08..2024-01-14"
T = datetime(2024, 1, 10, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)


def _status(cfg, now: str, *extra: str):
    r = CliRunner().invoke(cli, ["--config", str(cfg.path), "status", "--now", now, *extra], obj={},
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout) if "--json" in extra else r.stdout


@pytest.fixture
def world(tmp_path):
    """Two configured sources (`web` has a ready week, its first, and a pending one; `gone` failed twice) and
    `dair`, no longer in the config, with a week published by email to one subscriber."""
    with DocServer() as server, smtp_server() as (rec, port):
        server.put("/digest.md", fixture("digest_v1.md"))
        cfg = write_config(tmp_path, [{"name": "web", "url": server.url("/digest.md"), "timezone": "UTC"},
                                      {"name": "gone", "url": server.url("/gone/" + "x" * 90 + ".md")}],
                           settle="1h", max_wait="7d", backfill=1,
                           extra=f'[email]\nsmtp_url = "smtp://127.0.0.1:{port}"\nstarttls = false\n'
                                 'from = "Papers <papers@weekly.test>"\nlist_id = "papers.weekly.test"\n'
                                 '[web]\nbase_url = "https://papers.weekly.test"\n[x]\nenabled = false\n'
                                 '[discord]\nenabled = false\n[bluesky]\nenabled = false\n'
                                 '[mastodon]\nenabled = false\n')
        store = Store.open(cfg.db_path)
        web, gone = cfg.sources
        assert poll_source(store, cfg, web, datetime(2024, 1, 9, tzinfo=UTC), options=FAST).error is None
        server.put("/digest.md", fixture("digest_v2.md"))
        assert poll_source(store, cfg, web, datetime(2024, 1, 10, 9, tzinfo=UTC), options=FAST).error is None
        for hour in (10, 11):
            assert poll_source(store, cfg, gone, datetime(2024, 1, 10, hour, tzinfo=UTC), options=FAST).error
        week = ready_week(store, cfg, source="dair")
        add_subscribers(store, tmp_path, ["reader@example.net"])
        (rep,) = publish_week(cfg, store, week, now=datetime(2024, 1, 10, 11, 30, tzinfo=UTC))
        assert rep.published and rec.count() == 1
        store.close()
        yield cfg


def _shape(doc, real, path="") -> list[str]:
    """Where `real` differs in shape from the README's example `doc`: the same keys in every object (except
    the maps keyed by state or channel), values of the same JSON type (null standing for any)."""
    maps = {".weeks.counts", ".subscribers", ".channels", ".weeks.ready[].channels", ".weeks.ready[].waits_for_cap"}
    if doc is None or real is None:
        return []
    if isinstance(doc, dict):
        if not isinstance(real, dict):
            return [f"{path}: not an object"]
        if path in maps:
            return [e for k, v in real.items() for e in _shape(next(iter(doc.values())), v, f"{path}.*")
                    if doc] if path == ".channels" else []
        out = [f"{path}: keys {sorted(set(real) ^ set(doc))} differ"] if set(real) != set(doc) else []
        return out + [e for k in doc.keys() & real.keys() for e in _shape(doc[k], real[k], f"{path}.{k}")]
    if isinstance(doc, list):
        if not isinstance(real, list):
            return [f"{path}: not a list"]
        return [e for item in real for e in _shape(doc[0], item, f"{path}[]")] if doc else []
    kinds = (bool, (int, float), str)
    want = next(k for k in kinds if isinstance(doc, k))
    return [] if isinstance(real, want) and not (want is not bool and isinstance(real, bool)) else \
        [f"{path}: {real!r} is not like {doc!r}"]


def test_status_json_has_the_documented_shape(world):
    """issue #14: the docs document `status --json` (the README's reference moved to docs/cli.md in #26); every
    key and type of the real output is that one."""
    readme = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = readme.split("## `paperbot status", 1)[1].split("\n## ", 1)[0]
    doc = json.loads(re.findall(r"```json\n(.*?)```", section, re.DOTALL)[0])
    st = _status(world, "2024-01-10T12:00:00", "--json")
    assert _shape(doc, st) == []
    for part in ("pending", "ready", "published"):  # every list of the example is exercised
        assert st["weeks"][part], part


def test_status_reports_sources_weeks_channels_and_what_comes_next(world):
    st = _status(world, "2024-01-10T12:00:00", "--json")
    web, gone, dair = st["sources"]
    assert (web["name"], web["configured"], web["errors_in_a_row"], web["last_poll_ok"]) == ("web", True, 0, True)
    assert web["last_change"] == "2024-01-10T09:00:00+00:00" and web["timezone"] == "UTC"
    assert web["next_poll"] == "2024-01-10T09:30:00+00:00" and web["every"] == "30m"
    assert (gone["errors_in_a_row"], gone["last_poll_ok"]) == (2, False) and "404" in gone["last_error"]
    assert gone["last_poll"] == "2024-01-10T11:00:00+00:00" and gone["last_change"] is None
    assert (dair["configured"], dair["every"], dair["next_poll"]) == (False, None, None)
    (pending,) = st["weeks"]["pending"]
    assert (pending["key"], pending["waiting_for"], pending["ready_by"]) == (
        WEEK, "end of week", "2024-01-15T00:00:00+00:00")
    assert st["weeks"]["counts"] == {"ready": 1, "pending": 1, "published": 1}
    (ready,) = st["weeks"]["ready"]
    assert (ready["key"], ready["ready_at"], ready["channels"]) == (
        "2024-01-01..2024-01-07", "2024-01-09T00:00:00+00:00", {})
    (pub,) = st["weeks"]["published"]
    assert (pub["source"], pub["published_at"]) == ("dair", "2024-01-10T11:30:00+00:00")
    assert st["channels"]["email"] == {"live": True, "mode": "live", "weeks_sending": 0, "send_at": [],
                                       "next_window": None, "in_progress": 0, "failed": 0,
                                       "uncertain": 0, "rate_limited_until": None, "rate_limited_reason": None}
    assert st["subscribers"] == {"active": 1}
    assert st["next"] == {"poll": {"at": "2024-01-10T09:30:00+00:00", "source": "web"},
                          "release": {"at": "2024-01-15T00:00:00+00:00", "source": "web", "key": WEEK}}
    assert st["daemon"] == {"running": False, "pid": None}


def test_a_pending_week_says_what_it_waits_for(world, tmp_path):
    """End of week, then settle (an edit just after it ended), then its gate is open; with a usual size of
    10 papers, the same week waits for papers instead."""
    def waits(cfg, now):
        (p,) = _status(cfg, now, "--json")["weeks"]["pending"]
        return p["waiting_for"], p["detail"]

    assert waits(world, "2024-01-14T23:00:00")[0] == "end of week"
    assert waits(world, "2024-01-15T01:00:00") == ("next poll", "ready now: the next poll releases it")
    store = Store.open(world.db_path)
    store.upsert_week("web", WEEK, last_changed=datetime(2024, 1, 15, 0, 30, tzinfo=UTC))
    store.close()
    what, detail = waits(world, "2024-01-15T01:00:00")
    assert what == "settle" and "ready once unchanged for 1h, at 2024-01-15 01:30 UTC" in detail
    expecting = tmp_path / "expecting" / "paperbot.toml"
    expecting.parent.mkdir()
    expecting.write_text(world.path.read_text().replace('timezone = "UTC"', 'timezone = "UTC"\nexpect_papers = 10')
                         .replace('state_dir = "state"', f'state_dir = "{world.state_dir}"'), encoding="utf-8")
    what, detail = waits(load_config(expecting), "2024-01-15T01:00:00")
    assert what == "papers" and "of the usual 10; waits for the rest until 2024-01-17 00:00 UTC" in detail


def test_status_reads_a_rate_limit_and_sees_the_daemon(world):
    """A channel's rate-limited-until (`channel_state`, issue #11's migration) is shown; the daemon is seen by
    its lock on state_dir/paperbot.lock."""
    store = Store.open(world.db_path)
    store.db.execute("INSERT INTO channel_state VALUES ('email', '2024-01-10T13:00:00+00:00', "
                     "'429 from the server', '2024-01-10T11:00:00+00:00')")
    store.db.conn.commit()
    store.close()
    fd = locks.acquire(world.state_dir / "paperbot.lock")
    try:
        st = _status(world, "2024-01-10T12:00:00", "--json")
        text = _status(world, "2024-01-10T12:00:00")
    finally:
        locks.release(fd)
    assert st["daemon"]["running"] and st["daemon"]["pid"] > 0
    email = st["channels"]["email"]
    assert (email["rate_limited_until"], email["rate_limited_reason"]) == ("2024-01-10T13:00:00+00:00",
                                                                         "429 from the server")
    assert "rate-limited until 2024-01-10 13:00 UTC: 429 from the server" in text
    assert f"daemon: running (pid {st['daemon']['pid']})" in text
    later = _status(world, "2024-01-10T14:00:00", "--json")["channels"]["email"]
    assert later["rate_limited_until"] is None  # a limit in the past is over


def test_the_human_form_fits_80_columns_and_reads_at_a_glance(world):
    text = _status(world, "2024-01-10T12:00:00")
    lines = text.splitlines()
    # issue #25 (6): wrapped, not cut; only a word longer than 80 columns (the URL) keeps a line of its own
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), [ln for ln in lines if len(ln) > 80]
    assert lines[0] == "paperbot status at 2024-01-10 12:00 UTC"
    assert "daemon: not running (`paperbot run` starts it)" in lines
    assert "  gone: FAILING (2 in a row); polled 2024-01-10 11:00 UTC; changed -" in lines
    assert "    error: GET" in lines and "…" not in text
    assert "HTTP 404 Not Found" in " ".join(ln.strip() for ln in lines)  # the cause
    assert f"  pending web:{WEEK}: waits for end of week" in lines
    assert "    its last day ends 2024-01-15 00:00 UTC (UTC)" in lines
    assert "  email: live; 0 in progress, 0 failed, 0 uncertain" in lines
    assert f"next release: web:{WEEK} at 2024-01-15 00:00 UTC" in lines


def test_status_without_a_database_says_so_and_creates_none(tmp_path):
    cfg = write_config(tmp_path, [{"name": "web", "url": "http://127.0.0.1:9/x.md"}])
    text = _status(cfg, "2024-01-10T12:00:00")
    assert "no state database" in text and "  web: never polled" in text
    assert not cfg.db_path.exists()
