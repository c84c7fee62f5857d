"""issue #14, point 3: alerts to the operator, at most once per problem per `[alerts] every`, also in the log.

A real HTTP source is driven through failures, a layout change and silence, with `now` passed in (no sleeping);
the alerts arrive at a real aiosmtpd server and at a real local HTTP server standing in for the Discord webhook.
The publishing problems (a week held past max_wait, deliveries failed for good, an edition that bounced) come
from a week really published over aiosmtpd, or from ledger rows planned as the pipeline plans them.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ROOT
from publish_support import (
    DIGEST,
    KEY,
    SECRET,
    add_subscribers,
    addresses,
    free_port,
    ready_week,
    smtp_server,
    write_config,
)
from sources_support import FAST, DocServer
from webhook_support import Webhook

from bot.channels import load_config
from bot.channels.base import Unit
from bot.daemon import after_poll_hooks
from bot.ops import alerts
from bot.publish import ledger
from bot.publish.pipeline import publish_week
from bot.sources.poll import poll_source
from bot.store import Store, iso
from bot.track.parsing import parse_document
from bot.track.tracker import observe

T0 = datetime(2024, 2, 1, 12, tzinfo=UTC)
HOOK_PATH = "/api/webhooks/1234/hook-token-abcdef"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)


def _week(dates: str, n: int = 3) -> str:
    rows = [f"| {i}) **Paper {dates} {i}** - about {i}. | [Paper](https://arxiv.org/abs/2401.{i:05d}) |"
            for i in range(1, n + 1)]
    return "\n".join([f"## Top ML Papers of the Week ({dates}) - 2024", "", "| **Paper** | **Links** |",
                      "| --- | --- |", *rows, ""])


DATES = ("Jan 22 - Jan 28", "Jan 15 - Jan 21", "Jan 8 - Jan 14", "Jan 1 - Jan 7")
FOUR = "# Digest\n\n" + "\n".join(_week(d) for d in DATES)
ONE = FOUR  # the layout changed: three of the four headings are no week headings any more
for _n, _d in enumerate(DATES[1:], 2):
    ONE = ONE.replace(f"## Top ML Papers of the Week ({_d}) - 2024", f"## Papers, part {_n}")


def _config(tmp_path, smtp_port: int, alerts_toml: str, source_url: str | None = None):
    cfg = write_config(tmp_path, smtp_port)
    with cfg.path.open("a", encoding="utf-8") as f:
        f.write("[alerts]\n" + alerts_toml + "\n")
        if source_url:  # no week of the source is released on its first poll (backfill 0): no week is held
            f.write('[publish]\nbackfill = 0\n')
            f.write(f'\n[[sources]]\nname = "lab"\nurl = "{source_url}"\ntimezone = "UTC"\n')
    return load_config(cfg.path)


def _subjects(rec) -> list[str]:
    out = []
    for rcpt, raw in rec.messages:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert rcpt == "ops@weekly.test" and msg["Auto-Submitted"] == "auto-generated"
        assert "What to do:" in msg.get_content()
        out.append(str(msg["Subject"]))
    return out


def test_alerts_arrive_once_per_problem_by_email_and_webhook_through_failures_layout_and_silence(
        tmp_path, monkeypatch, caplog):
    """issue #14: nothing told the operator that a source had been failing for two days, that its layout changed
    or that it went quiet. Each problem now arrives once at the SMTP server and at the webhook, again only after
    `every`, and is logged."""
    caplog.set_level("WARNING", logger="bot.ops.alerts")
    with DocServer() as server, smtp_server() as (rec, port), Webhook() as hook:
        monkeypatch.setenv(alerts.WEBHOOK_ENV, hook.url(HOOK_PATH))
        server.put("/digest.md", FOUR.encode())
        cfg = _config(tmp_path, port, 'email = "Ops <ops@weekly.test>"\nevery = "6h"\nfailures = 3\nquiet = "10d"',
                      server.url("/digest.md"))
        store = Store.open(cfg.db_path)
        src = cfg.sources[0]

        def step(hours: float) -> list[str]:
            at = T0 + timedelta(hours=hours)
            poll_source(store, cfg, src, at, options=FAST)
            return [p.kind for p in alerts.run(cfg, store, at)]

        assert step(0) == []  # the first poll: four weeks, all well
        del server.resources["/digest.md"]  # the source answers 404 from now on
        assert step(1) == [] and step(2) == []
        assert step(3) == ["failing"]  # the third failure in a row
        assert step(4) == []  # inside `every`: not again
        assert step(9.5) == ["failing"]  # still failing, `every` later: once more
        server.put("/digest.md", ONE.encode())
        assert step(10) == ["layout"]  # the poll works again, with one week where there were four
        assert step(11) == []
        server.put("/digest.md", FOUR.encode())
        assert step(12) == []  # the headings are back: no layout problem
        assert step(15 * 24) == ["quiet"]  # no new week since T0
        assert step(15 * 24 + 1) == []
        store.close()

        subjects = _subjects(rec)
        assert subjects == ["[paperbot] source lab: 3 polls in a row failed",
                            "[paperbot] source lab: 5 polls in a row failed",
                            "[paperbot] source lab: its newest version has 1 week where the one before had 4",
                            "[paperbot] source lab: no new week for 15 days"]
        assert [path for path, _ in hook.posts] == [HOOK_PATH] * 4
        contents = hook.contents()
        assert [c.split("\n", 1)[0] for c in contents] == [f"**paperbot: {s.removeprefix('[paperbot] ')}**"
                                                           for s in subjects]
        assert all(body["allowed_mentions"] == {"parse": []} for _, body in hook.posts)
        assert "404" in contents[0] and "`paperbot check`" in contents[0]
        assert "`paperbot parse`" in contents[2]
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert: ")]
        assert [m.split(".", 1)[0] for m in logged] == [f"alert: {s.removeprefix('[paperbot] ')}" for s in subjects]

    store = Store.open(cfg.db_path)
    rows = {(r["problem"], r["destination"]): r for r in store.db["alerts"].rows}
    store.close()
    assert rows[("failing:lab", "email")]["sends"] == 2 and rows[("failing:lab", "discord")]["sends"] == 2
    assert rows[("quiet:lab", "log")]["sends"] == 1
    assert HOOK_PATH not in json.dumps(list(rows.values()))  # the webhook URL is a secret: never stored


def test_a_destination_that_fails_is_tried_again_at_the_next_poll(tmp_path, monkeypatch):
    """A webhook answering 500 does not count as sent: the next run sends it, even inside `every`."""
    with DocServer() as server, smtp_server() as (rec, port), Webhook(status=500) as hook:
        monkeypatch.setenv(alerts.WEBHOOK_ENV, hook.url(HOOK_PATH))
        cfg = _config(tmp_path, port, 'email = "ops@weekly.test"\nfailures = 1', server.url("/nothing.md"))
        store = Store.open(cfg.db_path)
        poll_source(store, cfg, cfg.sources[0], T0, options=FAST)
        assert [p.kind for p in alerts.run(cfg, store, T0)] == ["failing"]  # by email (and the log)
        assert len(hook.posts) == 1 and rec.count() == 1
        row = store.db["alerts"].get(("failing:lab", "discord"))
        assert row["sends"] == 0 and row["last_error"] == "Discord webhook: HTTP 500"
        hook.status = 204
        alerts.run(cfg, store, T0 + timedelta(minutes=30))
        assert len(hook.posts) == 2 and rec.count() == 1  # the webhook again; email not inside `every`
        store.close()


def test_without_smtp_url_alert_emails_go_to_the_outbox(tmp_path):
    with DocServer() as server:
        cfg = _config(tmp_path, None, 'email = "ops@weekly.test"\nfailures = 1', server.url("/nothing.md"))
        store = Store.open(cfg.db_path)
        poll_source(store, cfg, cfg.sources[0], T0, options=FAST)
        alerts.run(cfg, store, T0)
        store.close()
    (eml,) = (cfg.state_dir / "outbox" / "alerts").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert str(msg["Subject"]) == "[paperbot] source lab: 1 poll in a row failed"


def test_an_edition_that_bounced_too_much_is_an_alert(tmp_path):
    with smtp_server() as (rec, port):
        cfg = _config(tmp_path, port, "bounce_rate = 0.05")
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        people = addresses(10)
        add_subscribers(store, tmp_path, people)
        rec.refuse |= set(people[:3])
        (rep,) = publish_week(cfg, store, week, now=T0)
        assert rep.published and rec.count() == 7
        (p,) = alerts.detect(cfg, store, T0)
        store.close()
    assert p.key == f"bounces:dair:{KEY}"
    assert p.subject == f"email dair:{KEY}: 3 of 10 addresses bounced (30%)"
    assert "SPF, DKIM and DMARC" in p.body


def test_a_few_bounces_under_the_share_are_not_an_alert(tmp_path):
    with smtp_server() as (rec, port):
        cfg = _config(tmp_path, port, "bounce_rate = 0.05")
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        people = addresses(50)
        add_subscribers(store, tmp_path, people)
        rec.refuse |= set(people[:2])  # 4%
        (rep,) = publish_week(cfg, store, week, now=T0)
        assert rep.published and alerts.detect(cfg, store, T0) == []
        store.close()


def test_deliveries_failed_for_good_are_an_alert_after_failed_after(tmp_path):
    """A row left `failed` (a 4xx at every try) is retried after every poll; still failed `failed_after` after its
    week was planned, it is an alert naming the error and what to do."""
    cfg = _config(tmp_path, 9, 'failed_after = "24h"')
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    ledger.plan(store, "dair", KEY, "email", [Unit(a, str(i)) for i, a in enumerate(addresses(3), 1)], T0)
    store.db.execute("UPDATE deliveries SET state = 'failed', attempts = 4, last_error = ? WHERE unit = ?",
                     ["451 4.3.0 mailbox busy, try again later", "reader0@example.net"])
    store.db.conn.commit()
    def found(at):  # the week is also held (ready since 2023, still sending): that alert has its own test
        return [p for p in alerts.detect(cfg, store, at) if p.kind == "deliveries"]

    assert found(T0 + timedelta(hours=23)) == []
    (p,) = found(T0 + timedelta(hours=25))
    store.close()
    assert p.key == f"deliveries:email:dair:{KEY}" and p.kind == "deliveries"
    assert "1 still failed 24 hours after it was planned" in p.body and "451 4.3.0 mailbox busy" in p.quote
    assert f"`paperbot history dair:{KEY}`" in p.body


def test_a_refused_or_uncertain_post_on_x_is_an_alert_saying_how_to_settle_it(tmp_path):
    """issues #11 and #14: a post X refused for good (`refused`) or whose fate nobody knows (`uncertain`) stops
    the thread until the operator settles it: an alert at once, naming `paperbot resolve`."""
    cfg = _config(tmp_path, 9, 'failed_after = "24h"')
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    ledger.plan(store, "dair", KEY, "x", [Unit(f"post-{i:02d}", str(i)) for i in range(4)], T0)
    store.db.execute("UPDATE deliveries SET state = 'refused', last_error = ? WHERE unit = 'post-02'",
                     ["X refused it: 403 reply not allowed"])
    store.db.execute("UPDATE deliveries SET state = 'uncertain', last_error = 'dropped' WHERE unit = 'post-01'")
    store.db.conn.commit()
    (p,) = [p for p in alerts.detect(cfg, store, T0 + timedelta(minutes=5)) if p.kind == "deliveries"]
    store.close()
    assert p.key == f"deliveries:x:dair:{KEY}"
    assert "1 refused for good" in p.body and "1 uncertain" in p.body
    assert f"paperbot resolve dair:{KEY} --channel x --unit N" in p.body


def test_a_week_held_past_max_wait_is_an_alert_unless_it_is_only_a_trial(tmp_path):
    cfg = _config(tmp_path, 9, "")
    store = Store.open(cfg.db_path)
    week = ready_week(store, cfg)  # ready at 2023-03-10, never planned
    assert alerts.detect(cfg, store, week.ready_at + timedelta(hours=47)) == []
    (p,) = alerts.detect(cfg, store, week.ready_at + timedelta(hours=49))
    assert (p.key, p.subject) == (f"held:dair:{KEY}", f"week dair:{KEY} held past max_wait")
    assert "ready but not out (not planned on any channel)" in p.body and "`paperbot publish`" in p.body
    ledger.plan(store, "dair", KEY, "email", [Unit("papers@weekly.test", "sample")], week.ready_at, trial=True)
    store.db.execute("UPDATE publications SET state = 'trial'")
    store.db.conn.commit()
    assert alerts.detect(cfg, store, week.ready_at + timedelta(hours=49)) == []  # the outbox trial: by design
    store.close()


def test_a_week_waiting_for_papers_past_max_wait_is_an_alert_saying_so(tmp_path):
    cfg = _config(tmp_path, 9, "")
    text = cfg.path.read_text(encoding="utf-8")
    cfg.path.write_text(text.replace('state_dir = "state"', 'state_dir = "state"\n[publish]\nmax_wait = "1h"\n'
                                     'wait_for_papers = "48h"') + '\n[[sources]]\nname = "dair"\n'
                        'url = "https://digest.weekly.test/README.md"\nexpect_papers = 10\n', encoding="utf-8")
    cfg = load_config(cfg.path)
    store = Store.open(cfg.db_path)
    seen = datetime(2023, 2, 25, 12, tzinfo=UTC)  # during the week (Feb 20-26), three papers of the usual 10
    observe(store, "dair", parse_document(DIGEST.encode(), seen.date(), "digest"), seen, "v1", cfg.publish)
    assert store.week("dair", KEY).state == "pending"
    over = datetime(2023, 2, 27, tzinfo=UTC)  # its last day ends: from there, max_wait (1h) counts
    assert alerts.detect(cfg, store, over + timedelta(minutes=50)) == []
    (p,) = alerts.detect(cfg, store, over + timedelta(hours=2))
    store.close()
    assert p.kind == "held" and "pending, waiting for papers: 3 of the usual 10" in p.body
    assert "set its `expect_papers`" in p.body and iso(over) in p.body


def test_the_daemon_sends_alerts_after_its_polls(tmp_path):
    """The alerts run in the daemon's after-poll hooks: a real `paperbot run` whose source answers 404 mails
    the alert to aiosmtpd."""
    assert [h.__module__ for h in after_poll_hooks(None)] == ["bot.publish.pipeline", "bot.ops.alerts", "bot.daemon"]
    with DocServer() as server, smtp_server() as (rec, port):
        cfg = _config(tmp_path, port, 'email = "ops@weekly.test"\nfailures = 1', server.url("/nothing.md"))
        with cfg.path.open("a", encoding="utf-8") as f:
            f.write('every = "1h"\n')
        text = cfg.path.read_text(encoding="utf-8").replace('base_url = "https://papers.weekly.test"',
                                                            f'base_url = "https://papers.weekly.test"\nlisten = '
                                                            f'"127.0.0.1:{free_port()}"')
        cfg.path.write_text(text, encoding="utf-8")
        log = tmp_path / "daemon.log"
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "run"], cwd=ROOT,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while rec.count() == 0 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        assert rec.count() == 1, log.read_text()
        assert "[paperbot] source lab: 1 poll in a row failed" in rec.messages[0][1].decode()
        assert "alert: source lab: 1 poll in a row failed" in log.read_text()
