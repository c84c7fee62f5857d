"""Issue #21, "uncertain means uncertain on every channel": for each channel and each way a send can fail, is the
unit certainly not sent, or may it have gone out? docs/channels.md has the table; every row of it is a case
here, driven through the real client (smtplib, tweepy, discord.py, paperbot's XRPC client, Mastodon.py) against
the local servers (aiosmtpd, tests/x_server.py, tests/discord_server.py, tests/bluesky_server.py,
tests/mastodon_server.py), asserting what the client concluded and what the server holds.
Then the ledger: the regression tests of #21 run the real pipeline and look at the rows, the summary of
`paperbot publish`, `paperbot history` and the alerts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bluesky_server import CREATE as BSKY_CREATE
from bluesky_server import BlueskyServer
from click.testing import CliRunner
from discord_server import DiscordServer
from mastodon_server import STATUSES, MastodonServer
from publish_support import SECRET, add_subscribers, free_port, ready_week, smtp_server, write_config
from x_server import XServer

from bot.channels.base import PermanentError, RateLimited, TransientError, Uncertain
from bot.channels.bluesky import client as bc
from bot.channels.bluesky.account import Account
from bot.channels.discord.channel import DiscordChannel
from bot.channels.discord.client import DiscordClient
from bot.channels.discord.transport import Credentials
from bot.channels.email.smtp import SmtpConnection, SmtpTarget
from bot.channels.mastodon import client as mc
from bot.channels.mastodon.channel import _error as mastodon_outcome
from bot.channels.x import client as xc
from bot.cli import cli
from bot.cli.history import history_json
from bot.ops import alerts
from bot.publish import ledger
from bot.publish.pipeline import publish_ready
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

ROOT = Path(__file__).resolve().parents[1]
NOT_SENT, MAYBE = "certainly not sent", "may have gone out"
X_CREDS = xc.XCredentials("ck-uncertain-1", "cs-uncertain-2", "at-uncertain-3", "ats-uncertain-4")
WEBHOOK, TOKEN = "PAPERBOT_DISCORD_WEBHOOK_URL", "PAPERBOT_DISCORD_BOT_TOKEN"
TO = "reader@example.net"
MAIL = (b"From: papers@weekly.test\r\nTo: reader@example.net\r\nSubject: t\r\nMessage-ID: <1@weekly.test>\r\n\r\n"
        b"One line.\r\n")
PAYLOAD = {"content": "", "embeds": [{"title": "Paper number 1", "description": "What it found."}],
           "allowed_mentions": {"parse": []}}


def verdict(e: BaseException) -> str:
    """What a failure says about the unit: only an uncertain outcome leaves open that it went out."""
    if isinstance(e, xc.XError | bc.BskyError):
        return MAYBE if e.kind in (xc.UNCERTAIN, bc.UNCERTAIN) else NOT_SENT
    return MAYBE if isinstance(e, Uncertain) else NOT_SENT


def closed_port() -> int:
    """A port nothing listens on: a connection to it is refused before anything is sent."""
    return free_port()


# -- one case per row of docs/channels.md's table -------------------------------------------------------------
def email_case(fault: str) -> tuple[BaseException, int]:
    """Send one message through SmtpConnection with `fault`; (the failure, messages the server took)."""
    if fault == "connection refused":
        conn = SmtpConnection(SmtpTarget.from_url(f"smtp://127.0.0.1:{closed_port()}", False), "papers@weekly.test",
                              timeout=1.0)
        with pytest.raises(Exception) as info:
            conn.send(TO, MAIL)
        return info.value, 0
    with smtp_server() as (rec, port):
        if fault == "4xx":
            rec.defer[TO] = 1
        elif fault == "5xx":
            rec.refuse.add(TO)
        elif fault == "timeout":
            rec.after_data[TO] = ("hang", 2.0)
        elif fault == "dropped connection":
            rec.after_data[TO] = ("drop", 0.0)
        elif fault == "dropped before the data":
            rec.drop_at_rcpt.add(TO)
        conn = SmtpConnection(SmtpTarget.from_url(f"smtp://127.0.0.1:{port}", False), "papers@weekly.test",
                              timeout=1.0)
        with pytest.raises(Exception) as info:
            conn.send(TO, MAIL)
        conn.close()
        time.sleep(0.1)
        return info.value, rec.count()


def x_case(fault: str) -> tuple[BaseException, int]:
    """Create one post through tweepy with `fault`; (the failure, posts the server holds)."""
    if fault == "connection refused":
        client = xc.make_client(X_CREDS, api_base=f"http://127.0.0.1:{closed_port()}", timeout=1.0)
        with pytest.raises(xc.XError) as info:
            xc.create_post(client, "A post.")
        return info.value, 0
    with XServer(X_CREDS.consumer_key, X_CREDS.consumer_secret, X_CREDS.access_token,
                 X_CREDS.access_token_secret) as x:
        route = "POST /2/tweets"
        if fault == "5xx":
            x.fail_next(route, "status_after_create", status=503)
        elif fault == "timeout":
            x.fail_next(route, "hang", seconds=1.5)
        elif fault == "dropped connection":
            x.fail_next(route, "drop_after_create")
        elif fault == "429":
            x.fail_next(route, status=429, headers={"x-rate-limit-remaining": "0",
                                                    "x-rate-limit-reset": str(int(time.time()) + 900)})
        elif fault == "4xx":
            x.fail_next(route, status=400)
        elif fault == "403 duplicate content":
            xc.create_post(xc.make_client(X_CREDS, api_base=x.api_base, timeout=1.0), "A post.")
        client = xc.make_client(X_CREDS, api_base=x.api_base, timeout=1.0)
        with pytest.raises(xc.XError) as info:
            xc.create_post(client, "A post.")
        deadline = time.monotonic() + 3
        while fault == "timeout" and not x.ours() and time.monotonic() < deadline:
            time.sleep(0.05)  # the hung request makes its post after the client gave up
        made = len(x.ours()) - (1 if fault == "403 duplicate content" else 0)
        return info.value, made


def discord_case(fault: str, *, bot: bool) -> tuple[BaseException, int]:
    """Create one message (through the webhook, or as the bot) with `fault`; (the failure, messages made)."""
    if fault == "connection refused":
        d_api = f"http://127.0.0.1:{closed_port()}/api/v10"
        creds = Credentials(None, None, "bot-token-" + "x" * 40) if bot else Credentials(
            1200000000000000001, "T" * 68)
        client = DiscordClient(creds, api_base=d_api, timeout=1.0)
        with pytest.raises(Exception) as info:
            client.post("1200000000000000010", PAYLOAD, nonce="n1") if bot else client.execute(PAYLOAD)
        client.close()
        return info.value, 0
    with DiscordServer(rate=50) as d:
        route = "POST /channels/" if bot else "POST /webhooks/"
        if fault == "5xx":
            d.fail_next(route, "status_after_create", status=500)
        elif fault == "timeout":
            d.fail_next(route, "hang_after_create", seconds=1.5)
        elif fault == "dropped connection":
            d.fail_next(route, "drop_after_create")
        elif fault == "429":
            d.fail_next(route, status=429, body={"message": "You are being rate limited.", "retry_after": 600,
                                                 "global": False}, headers={"Retry-After": "600"})
        elif fault == "4xx":
            d.fail_next(route, status=400, body={"message": "Invalid Form Body", "code": 50035})
        creds = (Credentials(None, None, d.bot_token) if bot
                 else Credentials(int(d.webhook_id), d.webhook_token))
        client = DiscordClient(creds, api_base=d.api_base, timeout=1.0, max_wait=5.0)
        with pytest.raises(Exception) as info:
            client.post(d.webhook_channel, PAYLOAD, nonce="n1") if bot else client.execute(PAYLOAD)
        client.close()
        d.idle()
        return info.value, len(d.messages)


BSKY_RECORD = {"$type": "app.bsky.feed.post", "text": "A post.", "createdAt": "2026-12-07T10:00:00.000Z",
               "langs": ["en"]}


def bluesky_case(fault: str, tmp_path: Path) -> tuple[BaseException, int]:
    """Create one post through paperbot's XRPC client with `fault` (issue #30); (the failure, posts stored)."""
    creds = bc.Credentials("paperbot.test", "app-pass-word-0001")
    if fault == "connection refused":
        account = Account(bc.Xrpc(f"http://127.0.0.1:{closed_port()}", 1.0), creds, tmp_path / "s.json")
        with pytest.raises(bc.BskyError) as info:
            account.create_record("app.bsky.feed.post", "3ke6kg3wk2227", BSKY_RECORD)
        return info.value, 0
    with BlueskyServer(creds.handle, creds.password) as b:
        account = Account(bc.Xrpc(b.service, 1.0), creds, tmp_path / "s.json")
        account.login()
        if fault == "5xx":
            b.fail_next(BSKY_CREATE, "status_after_create", status=502)
        elif fault == "timeout":
            b.fail_next(BSKY_CREATE, "hang", seconds=1.5)
        elif fault == "dropped connection":
            b.fail_next(BSKY_CREATE, "drop_after_create")
        elif fault == "429":
            b.fail_next(BSKY_CREATE, status=429, body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                        headers={"ratelimit-remaining": "0", "ratelimit-reset": str(int(time.time()) + 900)})
        elif fault == "4xx":
            b.fail_next(BSKY_CREATE, status=400, body={"error": "InvalidRequest", "message": "too long"})
        elif fault == "record key taken":
            account.create_record("app.bsky.feed.post", "3ke6kg3wk2227", BSKY_RECORD)
        with pytest.raises(bc.BskyError) as info:
            account.create_record("app.bsky.feed.post", "3ke6kg3wk2227", BSKY_RECORD)
        account.xrpc.close()
        deadline = time.monotonic() + 3
        while fault == "timeout" and not b.ours() and time.monotonic() < deadline:
            time.sleep(0.05)  # the hung request stores its record after the client gave up
        return info.value, len(b.ours()) - (fault == "record key taken")
def mastodon_case(fault: str) -> tuple[BaseException, int]:
    """Post one status through Mastodon.py with `fault` (issue #31); (the pipeline's outcome, statuses made)."""
    base = f"http://127.0.0.1:{closed_port()}" if fault == "connection refused" else None
    with MastodonServer("uncertain-token") as m:
        if fault == "5xx":
            m.fail_next(STATUSES, "status_after_create", status=503)
        elif fault == "timeout":
            m.fail_next(STATUSES, "hang", seconds=1.5)
        elif fault == "dropped connection":
            m.fail_next(STATUSES, "drop_after_create")
        elif fault == "429":
            m.fail_next(STATUSES, status=429, headers=m._limited(time.time() + 300))
        elif fault == "4xx":
            m.fail_next(STATUSES, status=422, body={"error": "Validation failed"})
        api = mc.make_client(base or m.base_url, "uncertain-token", 1.0)
        with pytest.raises(mc.MastodonFailure) as info:
            mc.post_status(api, "A status.", reply_to=None, visibility="unlisted", language="en", idempotency_key="k")
        deadline = time.monotonic() + 3
        while fault == "timeout" and not m.ours() and time.monotonic() < deadline:
            time.sleep(0.05)
        return mastodon_outcome(info.value), len(m.ours())


RUN: dict[str, Callable[..., tuple[BaseException, int]]] = {
    "email (SMTP)": email_case, "X": x_case,
    "Discord webhook": lambda f: discord_case(f, bot=False), "Discord bot": lambda f: discord_case(f, bot=True),
    "Bluesky": bluesky_case, "Mastodon": mastodon_case}

# (channel, error, verdict, messages the server holds afterwards)
CASES = [
    ("email (SMTP)", "5xx", NOT_SENT, 0),
    ("email (SMTP)", "timeout", MAYBE, 1),
    ("email (SMTP)", "dropped connection", MAYBE, 1),
    ("email (SMTP)", "dropped before the data", NOT_SENT, 0),
    ("email (SMTP)", "4xx", NOT_SENT, 0),
    ("email (SMTP)", "connection refused", NOT_SENT, 0),
    ("X", "5xx", MAYBE, 1),
    ("X", "timeout", MAYBE, 1),
    ("X", "dropped connection", MAYBE, 1),
    ("X", "429", NOT_SENT, 0),
    ("X", "4xx", NOT_SENT, 0),
    ("X", "403 duplicate content", MAYBE, 0),
    ("X", "connection refused", NOT_SENT, 0),
    ("Discord webhook", "5xx", MAYBE, 1),
    ("Discord webhook", "timeout", MAYBE, 1),
    ("Discord webhook", "dropped connection", MAYBE, 1),
    ("Discord webhook", "429", NOT_SENT, 0),
    ("Discord webhook", "4xx", NOT_SENT, 0),
    ("Discord webhook", "connection refused", NOT_SENT, 0),
    ("Discord bot", "5xx", MAYBE, 1),
    ("Discord bot", "timeout", MAYBE, 1),
    ("Discord bot", "dropped connection", MAYBE, 1),
    ("Discord bot", "429", NOT_SENT, 0),
    ("Discord bot", "4xx", NOT_SENT, 0),
    ("Discord bot", "connection refused", NOT_SENT, 0),
    ("Bluesky", "5xx", MAYBE, 1),
    ("Bluesky", "timeout", MAYBE, 1),
    ("Bluesky", "dropped connection", MAYBE, 1),
    ("Bluesky", "429", NOT_SENT, 0),
    ("Bluesky", "4xx", NOT_SENT, 0),
    ("Bluesky", "record key taken", MAYBE, 0),
    ("Bluesky", "connection refused", NOT_SENT, 0),
    ("Mastodon", "5xx", MAYBE, 1),  # issue #31
    ("Mastodon", "timeout", MAYBE, 1),
    ("Mastodon", "dropped connection", MAYBE, 1),
    ("Mastodon", "429", NOT_SENT, 0),
    ("Mastodon", "4xx", NOT_SENT, 0),
    ("Mastodon", "connection refused", NOT_SENT, 0),
]


@pytest.mark.parametrize(("channel", "error", "expected", "held"), CASES,
                         ids=[f"{c}-{e}".replace(" ", "_") for c, e, _, _ in CASES])
def test_each_failure_is_classified_as_the_table_says(channel, error, expected, held, tmp_path):
    """issue #21: the real client, the local server, one failure: the client's conclusion is the table's, and
    the server's record shows why "may have gone out" is the honest answer (it often did)."""
    failure, made = RUN[channel](error, tmp_path) if channel == "Bluesky" else RUN[channel](error)
    assert verdict(failure) == expected, f"{channel} {error}: {type(failure).__name__}: {failure}"
    assert made == held
    if error == "429":
        assert isinstance(failure, RateLimited) or getattr(failure, "kind", "") == xc.RATE_LIMITED
    if error == "4xx" and channel != "email (SMTP)":
        assert isinstance(failure, PermanentError) or getattr(failure, "kind", "") == xc.REFUSED
    if expected == NOT_SENT and not isinstance(failure, xc.XError | bc.BskyError):
        assert isinstance(failure, TransientError | PermanentError), type(failure)


def doc_table() -> list[tuple[str, str, str]]:
    """(channel, error, verdict) of each row of docs/channels.md's table."""
    text = (ROOT / "docs" / "channels.md").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[2] in (NOT_SENT, MAYBE):
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_the_docs_table_is_the_tested_one():
    """issue #21: every row of the table in docs/channels.md is a case above, with the same verdict."""
    assert sorted(doc_table()) == sorted((c, e, v) for c, e, v, _ in CASES)


# -- the ledger: the regression tests of #21 ----------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    for name in (WEBHOOK, TOKEN, "PAPERBOT_SMTP_PASSWORD", alerts.WEBHOOK_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


LOREM = "Sparse experts route each token to a few of many feed-forward blocks, halving compute at equal quality. "
LONG = (LOREM * 45)[:4000].rsplit(" ", 1)[0]  # one paper with this summary fills most of a Discord message


def two_message_digest() -> bytes:
    """A digest whose one week is two papers with 4,000-character summaries: two Discord messages."""
    rows = [f"| {i}) **Paper number {i}** - {LONG} | [Paper](https://arxiv.org/abs/2302.{i:05d}) |" for i in (1, 2)]
    return "\n".join(["# Papers We Liked This Week", "", "## Top ML Papers of the Week (Feb 20-26)", "",
                      "| **Paper**  | **Links** |", "| ------------- | ------------- |", *rows, ""]).encode()


def discord_week(tmp_path: Path, d: DiscordServer, env, *, bot: bool):
    """A ready week of two Discord messages; email is a trial, X off."""
    lines = f'api_base = "{d.api_base}"\ntimeout = "2s"\nmax_wait = "5s"\n'
    if bot:
        lines += f'channel_id = "{d.webhook_channel}"\n'
        env.setenv(TOKEN, d.bot_token)
    else:
        env.setenv(WEBHOOK, d.webhook_url())
    cfg = write_config(tmp_path, None, discord=lines)
    store = Store.open(cfg.db_path)
    at = datetime(2023, 2, 27, 12, tzinfo=UTC)
    observe(store, "dair", parse_document(two_message_digest(), at.date(), "digest"), at, "v1", cfg.publish)
    release(store, at + timedelta(days=14), cfg.publish)
    assert planned_messages(cfg, store) == 2
    return cfg, store


def planned_messages(cfg, store) -> int:
    return len(DiscordChannel(cfg).plan(store, store.weeks(state="ready")[0]))


def test_21_a_bot_reads_a_500_back_and_makes_exactly_the_planned_messages_after_the_nonce_is_forgotten(
        tmp_path, env):
    """#21: Discord stores a message, then answers 500. The retry comes after Discord forgot the message's nonce
    (here 0.3 s; Discord: minutes, while a retry can wait for the next run), so the nonce no longer saves it:
    the bot must read the channel back first. Exactly as many messages as planned, each id in the ledger."""
    with DiscordServer(rate=50, nonce_window=0.3) as d:
        cfg, store = discord_week(tmp_path, d, env, bot=True)
        planned = planned_messages(cfg, store)
        d.fail_next("POST /channels/", "status_after_create", status=500)
        [report] = publish_ready(cfg, store, datetime.now(UTC), channels=["discord"])
        time.sleep(0.4)  # past the nonce window: a later run must not make a second copy either
        publish_ready(cfg, store, datetime.now(UTC), channels=["discord"])
        d.idle()
        rows = ledger.rows_in(store, "dair", report.key, "discord", ledger.STATES)
        assert report.published and len(d.messages) == planned == len(rows) == 2
        assert [r["remote_id"] for r in rows] == list(d.messages) and all(r["state"] == "sent" for r in rows)
        assert ledger.possible_duplicates(store, "dair", report.key, "discord") == []
        assert [s.status for s in d.posts()][:1] == [500] and len(d.posts()) == planned  # nothing sent twice
        assert any(s.method == "GET" and s.path.endswith("/messages") for s in d.requests)  # it looked


def test_21_when_the_read_back_fails_too_the_message_waits_uncertain_and_the_next_run_finds_it(tmp_path, env):
    """#21: the 500 after the message was stored, then the channel cannot be read either. Nothing is sent again:
    the unit waits `uncertain`; the next run, long after Discord forgot the nonce, reads the channel, finds the
    message and records it. Two messages for two planned."""
    with DiscordServer(rate=50, nonce_window=0.3) as d:
        cfg, store = discord_week(tmp_path, d, env, bot=True)
        d.fail_next("POST /channels/", "status_after_create", status=500)
        d.fail_next(f"GET /channels/{d.webhook_channel}/messages", status=503)
        [first] = publish_ready(cfg, store, datetime.now(UTC), channels=["discord"])
        d.idle()
        rows = ledger.rows_in(store, "dair", first.key, "discord", ledger.STATES)
        assert not first.published and [r["state"] for r in rows] == ["uncertain", "planned"]
        assert len(d.messages) == 1
        time.sleep(0.4)  # the nonce is forgotten: a resend now would make a second copy
        [second] = publish_ready(cfg, store, datetime.now(UTC), channels=["discord"])
        d.idle()
        rows = ledger.rows_in(store, "dair", first.key, "discord", ledger.STATES)
        assert second.published and len(d.messages) == 2 and [r["remote_id"] for r in rows] == list(d.messages)
        assert len(d.posts()) == 2 and ledger.possible_duplicates(store, "dair", first.key, "discord") == []


def test_21_a_webhook_alone_resends_a_500_and_says_it_may_show_twice_in_publish_history_and_an_alert(
        tmp_path, env):
    """#21: a webhook cannot read the channel back. A 500 to a message Discord did store is sent again (the
    week must not wait forever), and that possible duplicate is no longer silent: the ledger row is marked,
    `paperbot publish` says so, `paperbot history` names the unit, and an alert goes out once."""
    with DiscordServer(rate=50) as d:
        cfg, store = discord_week(tmp_path, d, env, bot=False)
        planned = planned_messages(cfg, store)
        d.fail_next("POST /webhooks/", "status_after_create", status=500)
        run = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "publish",
                                       "--channel", "discord"], obj={})
        d.idle()
        assert run.exit_code == 0, run.output
        assert len(d.messages) == planned + 1 == 3  # the one way to a second copy, now said out loud
        assert "1 possible duplicate" in run.output and "may show it twice" in run.output
        key = store.weeks(state="published")[0].key
        [dup] = ledger.possible_duplicates(store, "dair", key, "discord")
        assert dup["unit"] == "message-1" and dup["state"] == "sent" and "could not be read back" in dup["why"]
        hist = history_json(store, None)[0]["channels"]["discord"]["possible_duplicates"]
        assert [(h["unit"], h["number"]) for h in hist] == [("message-1", 1)]
        text = CliRunner().invoke(cli, ["--config", str(tmp_path / "paperbot.toml"), "history"], obj={})
        assert "possible duplicate: message-1 (unit 1, sent)" in text.output
        now = datetime.now(UTC)
        sent = alerts.run(cfg, store, now)
        assert [p.kind for p in sent if p.kind == "duplicates"] == ["duplicates"]
        assert not [p for p in alerts.run(cfg, store, now + timedelta(days=30)) if p.kind == "duplicates"]


def test_21_an_email_whose_answer_is_lost_after_its_data_is_resent_and_marked_a_possible_duplicate(tmp_path, env):
    """#21 on email: the server took the message and the connection dropped before its answer. The client cannot
    tell, so it is sent again (same Message-ID), and the row says it may have arrived twice; a drop before the
    data (nothing taken) is retried with no such mark."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, ["one@example.net", "two@example.net"])
        rec.after_data["one@example.net"] = ("drop", 0.0)
        rec.drop_at_rcpt.add("two@example.net")
        [report] = publish_ready(cfg, store, datetime.now(UTC), channels=["email"])
        assert report.published and report.stats.duplicates == 1
        assert rec.recipients() == {"one@example.net": 2, "two@example.net": 1}
        twice = [raw for r, raw in rec.messages if r == "one@example.net"]
        assert len({re.search(rb"Message-ID: (<[^>]+>)", raw).group(1) for raw in twice}) == 1  # the same copy
        [dup] = ledger.possible_duplicates(store, "dair", week.key, "email")
        assert dup["unit"] == "one@example.net" and dup["state"] == "sent" and "may have gone out" in dup["why"]
