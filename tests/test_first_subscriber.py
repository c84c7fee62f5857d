"""issue #25, finding 4: the first week went to nobody.

init -> check -> run with SMTP set: the backfill week went out at once, "published to nobody", before anyone
could subscribe. Now, with no active subscriber, email holds its week (other channels publish as usual), `status`
says "waiting for the first subscriber", the first subscriber's welcome email carries the newest waiting week,
and the older waiting weeks become `skipped` with that reason, never mailed in a burst. Real parts: the CLI, an
aiosmtpd server, `paperbot serve` as a subprocess, a browser's requests over HTTP.
"""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest
from click.testing import CliRunner
from newsletter_fixtures import sample_edition, store_edition
from publish_support import SECRET, smtp_server
from test_web_reader import KEY, _form, _link, _post, _subscribe, _wait_mail, start, stop

from bot.channels import load_config
from bot.cli import cli
from bot.store import Store
from bot.track.model import Link, Paper

OLDER, NEWER = "2024-02-26..2024-03-03", "2024-03-04..2024-03-10"


def _edition(key: str):
    d = date.fromisoformat(key[:10])
    paper = Paper(title=f"Paper of {key[:10]}", summary="One line.", number=1,
                  links=(Link("Paper", f"https://example.org/{key[:10]}"),))
    return sample_edition(key=key).__class__(source="digest", key=key, title=f"Week of {key[:10]}", first_day=d,
                                             last_day=date.fromisoformat(key[-10:]), papers=(paper,))


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", KEY)
    monkeypatch.delenv("PAPERBOT_NOW", raising=False)
    monkeypatch.delenv("PAPERBOT_DISCORD_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("PAPERBOT_DISCORD_BOT_TOKEN", raising=False)


def run_cli(cfg, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


def _states(cfg) -> dict:
    con = sqlite3.connect(cfg.db_path)
    try:
        weeks = dict(con.execute("SELECT key, state FROM weeks").fetchall())
        pubs = {(k, c): (s, n) for k, c, s, n in con.execute(
            "SELECT week_key, channel, state, note FROM publications").fetchall()}
        return {"weeks": weeks, "pubs": pubs}
    finally:
        con.close()


def _two_ready_weeks(cfg) -> None:
    store = Store.open(cfg.db_path)
    for key in (OLDER, NEWER):
        store_edition(store, _edition(key), state="ready")
    store.close()


def _nobody_yet(cfg, rec) -> None:
    """Two ready weeks, nobody subscribed: email holds both, Discord (a trial here) publishes as usual."""
    out = run_cli(cfg, "publish")
    assert out.exit_code == 0, out.output
    assert rec.count() == 0
    assert "waiting for the first subscriber" in out.output and "published to nobody" not in out.output
    st = _states(cfg)
    assert st["weeks"] == {OLDER: "ready", NEWER: "ready"}
    assert ("2024-03-04..2024-03-10", "email") not in st["pubs"]  # not planned to nobody
    assert st["pubs"][(NEWER, "discord")][0] == "trial" and st["pubs"][(OLDER, "discord")][0] == "trial"
    status = run_cli(cfg, "status").output
    assert f"ready digest:{NEWER}" in status and "email: waiting for the first subscriber" in status, status
    again = run_cli(cfg, "publish")  # every round: still waiting, still nothing sent
    assert again.exit_code == 0 and rec.count() == 0


def test_the_first_subscriber_s_welcome_carries_the_newest_waiting_week_and_older_ones_are_skipped_25_4(tmp_path):
    with smtp_server() as (rec, smtp_port):
        proc, base, cfg = start(tmp_path, smtp_port, "[x]\nenabled = false")
        try:
            store = Store.open(cfg.db_path)  # start() stored published weeks and two subscribers: a fresh list
            store.db.execute("DELETE FROM subscribers")
            store.db.execute("DELETE FROM weeks")
            store.db.conn.commit()
            store.close()
            _two_ready_weeks(cfg)
            _nobody_yet(cfg, rec)
            _subscribe(base, "first@example.org")
            link = _link(_wait_mail(rec, "first@example.org"), r"http://127\.0\.0\.1:\d+/confirm/\S+")
            cookie, csrf = _form(link)
            status, page, _ = _post(link, {"csrf": csrf}, cookie)
            assert status == 200 and "You are subscribed" in page
            welcome = _wait_mail(rec, "first@example.org", 2)
        finally:
            stop(proc)
        text = welcome.get_body(("plain",)).get_content()
        assert "Week of 2024-03-04" in text and "Paper of 2024-03-04" in text  # the newest waiting week
        assert "Week of 2024-02-26" not in text
        st = _states(cfg)
        assert st["pubs"][(NEWER, "email")][0] == "published" and "welcome" in st["pubs"][(NEWER, "email")][1]
        assert st["pubs"][(OLDER, "email")][0] == "skipped"
        assert "waiting for the first subscriber" in st["pubs"][(OLDER, "email")][1]
        assert st["weeks"][NEWER] == "published" and st["weeks"][OLDER] == "skipped"
        out = run_cli(cfg, "publish")  # the next round mails neither week: no burst, no second copy
        assert out.exit_code == 0, out.output
        assert [r for r, _ in rec.messages].count("first@example.org") == 2  # confirmation and welcome


def test_a_subscriber_added_by_hand_gets_the_newest_waiting_week_only_25_4(tmp_path):
    with smtp_server() as (rec, smtp_port):
        path = tmp_path / "paperbot.toml"
        path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
starttls = false
[web]
base_url = "http://127.0.0.1:8080"
[x]
enabled = false
""", encoding="utf-8")
        cfg = load_config(path)
        _two_ready_weeks(cfg)
        _nobody_yet(cfg, rec)
        assert run_cli(cfg, "subscribers", "add", "reader@example.net").exit_code == 0
        out = run_cli(cfg, "publish")
        assert out.exit_code == 0, out.output
        assert [r for r, _ in rec.messages] == ["reader@example.net"]
    assert "Week of 2024-03-04" in rec.messages[0][1].decode()
    st = _states(cfg)
    assert st["pubs"][(OLDER, "email")][0] == "skipped" and st["pubs"][(NEWER, "email")][0] == "published"
    assert "waiting for the first subscriber" in st["pubs"][(OLDER, "email")][1]


def test_other_channels_are_not_held_25_4(tmp_path):
    """Only email waits for an audience: the week is still published to a live channel with nobody on it
    (a channel without `waits_for_audience`)."""
    from bot.publish import first

    class Channel:
        name, live, waits_for_audience = "discord", True, False

        def plan(self, store, week):
            return []

    cfg = load_config(None)
    store = Store.open(None)
    store_edition(store, _edition(NEWER), state="ready")
    assert first.before_plan(cfg, store, store.week("digest", NEWER), Channel(), sample_now()) is None
    store.close()
    assert SECRET  # the publish helpers' key is not the web one: both long enough


def sample_now():
    from datetime import UTC, datetime
    return datetime(2024, 3, 11, 12, tzinfo=UTC)
