"""Issue #30, "Done when", end to end: a week's thread on Bluesky sent by the real pipeline (bot/publish/chain.py
through bot/channels/bluesky/) with paperbot's own XRPC client, to tests/bluesky_server.py on 127.0.0.1, which
checks every record as the reference PDS does (graphemes counted with another library, bytes, facets, strong
refs) and keeps what it stored.

What is asserted is what the server saw and stored, and the ledger rows in the SQLite file. Where the issue says
a kill, a real `paperbot publish` subprocess is SIGKILLed; otherwise the pipeline's `publish_ready` runs here.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grapheme
import pytest
from bluesky_server import CREATE, GET_RECORD, BlueskyServer
from click.testing import CliRunner
from publish_support import write_config
from test_x_thread import KEY, SOURCE, ready

from bot.channels import make
from bot.channels.bluesky.text import is_tid
from bot.cli import cli
from bot.config import Config
from bot.publish import ledger
from bot.publish.pipeline import publish_ready
from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
HANDLE, PASSWORD = "paperbot.test", "abcd-efgh-ijkl-mnop"
CREDS = {"PAPERBOT_BLUESKY_HANDLE": HANDLE, "PAPERBOT_BLUESKY_APP_PASSWORD": PASSWORD}
WEB = f"https://papers.weekly.test/editions/{SOURCE}/{KEY}"


def config(tmp: Path, b: BlueskyServer | None, extra: str = "", delay: str = "0s") -> Config:
    tmp.mkdir(parents=True, exist_ok=True)
    service = f'service = "{b.service}"\n' if b else ""
    return write_config(tmp, None, bluesky=f'{service}delay = "{delay}"\ntimeout = "5s"\n{extra}')


@pytest.fixture
def bsky(monkeypatch):
    for name, value in CREDS.items():
        monkeypatch.setenv(name, value)
    with BlueskyServer(HANDLE, PASSWORD) as server:
        yield server


@pytest.fixture
def week(tmp_path, bsky):
    cfg = config(tmp_path, bsky)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    yield cfg, store
    store.close()


def publish(cfg: Config, store: Store, now: datetime | None = None) -> list:
    return publish_ready(cfg, store, now or datetime.now(UTC), channels=["bluesky"])


def creates(b: BlueskyServer) -> list:
    return [r for r in b.requests if f"{r.method} {r.nsid}" == CREATE]


def rows(store: Store) -> list[dict]:
    return ledger.rows_in(store, SOURCE, KEY, "bluesky", ledger.STATES)


def assert_one_thread(b: BlueskyServer, store: Store | None = None, n: int = 11) -> list:
    """The account holds exactly one thread of `n` posts in order, each within the limits, its facets only
    paperbot's links; the ledger holds their URIs, and each post sits at the record key planned for it."""
    ours = b.ours()
    thread = b.thread(ours[0].uri)
    assert [p.uri for p in thread] == [p.uri for p in ours] and len(thread) == n, [p.text[:40] for p in ours]
    assert len({p.text for p in thread}) == n
    assert thread[0].text.startswith("Top ML Papers of the Week\n20–26 February 2023")
    for i, post in enumerate(thread[1:], start=1):
        assert post.text.startswith(f"{i}/10 "), post.text
    for post in thread:
        assert grapheme.length(post.text) <= 300 and len(post.text.encode("utf-8")) <= 3000
        assert post.record["langs"] == ["en"] and is_tid(post.rkey)
        links = [f["uri"] for _, f in post.facet_texts()]
        assert all(f["$type"] == "app.bsky.richtext.facet#link" for _, f in post.facet_texts())
        assert links == ([WEB] if post is thread[0] else [f"https://arxiv.org/abs/2301.{thread.index(post):05d}"])
    if store is not None:
        got = rows(store)
        assert [r["state"] for r in got] == ["sent"] * n
        assert [r["remote_id"] for r in got] == [p.uri for p in thread]
        assert [r["ref"].split(":")[1] for r in got] == [p.rkey for p in thread]
        assert ledger.possible_duplicates(store, SOURCE, KEY, "bluesky") == []
    return thread


# -- 1. a 10-paper week is one thread of 11 posts ---------------------------------------------------------------

def test_a_ten_paper_week_is_one_thread_of_eleven_posts_within_the_limits_and_a_rerun_sends_nothing(bsky, week):
    """issue #30: 11 posts in order, each a reply carrying root and parent strong refs, within 300 graphemes and
    3000 bytes as the server counts them, no facet but paperbot's links; one login; a rerun sends nothing."""
    cfg, store = week
    (rep,) = publish(cfg, store)
    assert rep.published and rep.stats.sent == 11
    thread = assert_one_thread(bsky, store)
    assert "reply" not in thread[0].record
    for before, post in zip(thread, thread[1:], strict=False):
        assert post.record["reply"] == {"root": {"uri": thread[0].uri, "cid": thread[0].cid},
                                        "parent": {"uri": before.uri, "cid": before.cid}}
    # the digest's @mentions, #tags and URLs stay plain text: no facet makes them live
    assert any("@openai" in p.text for p in thread) and any("https://example.org/" in p.text for p in thread)
    assert bsky.sessions_created == 1
    n = len(bsky.requests)
    assert publish(cfg, store) == [] and len(bsky.requests) == n
    assert store.week(SOURCE, KEY).state == "published"


def test_record_keys_are_in_the_ledger_before_anything_is_sent(tmp_path, bsky):
    """issue #30: planning writes each post's TID record key into its ledger row; the server then holds every
    post at exactly that key."""
    cfg = config(tmp_path, bsky)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    bsky.fail_next(CREATE, "status", status=400, body={"error": "InvalidRequest", "message": "scripted refusal"})
    (rep,) = publish(cfg, store)
    assert rep.stats.sent == 0 and not bsky.ours()
    planned = rows(store)
    assert len(planned) == 11 and planned[0]["state"] == "refused"
    keys = [r["ref"].split(":")[1] for r in planned]
    assert all(is_tid(k) for k in keys) and keys == sorted(keys) and len(set(keys)) == 11
    assert creates(bsky)[0].body["rkey"] == keys[0]
    result = CliRunner().invoke(cli, ["--config", str(cfg.path), "resolve", KEY, "--channel", "bluesky", "--unit",
                                      "1", "--retry"], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    publish(cfg, store)
    assert_one_thread(bsky, store)
    assert [p.rkey for p in bsky.ours()] == keys
    store.close()


# -- 2. a 429 with a reset ------------------------------------------------------------------------------------

def test_a_429_holds_the_channel_until_its_reset_then_the_thread_completes(bsky, week):
    """issue #30: a 429 on post 5 becomes the channel's rate-limited-until from its `ratelimit-reset`; nothing
    goes out before it; after it the thread completes without a duplicate."""
    cfg, store = week
    reset = int(time.time()) + 120
    bsky.fail_next(CREATE, "status", status=429, after=4, body={"error": "RateLimitExceeded", "message": "slow"},
                   headers={"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset),
                            "ratelimit-policy": "5000;w=3600"})
    (rep,) = publish(cfg, store)
    assert not rep.published and len(bsky.ours()) == 4
    until, reason = ledger.channel_until(store, "bluesky", datetime.now(UTC))
    assert until == datetime.fromtimestamp(reset, UTC) and "rate limit" in reason
    n = len(creates(bsky))
    publish(cfg, store)  # before the reset: nothing goes out
    assert len(creates(bsky)) == n
    (rep,) = publish(cfg, store, now=datetime.fromtimestamp(reset + 1, UTC))
    assert rep.published
    assert_one_thread(bsky, store)
    assert bsky.taken == []


# -- 3. an error after the record was stored, a dropped answer ---------------------------------------------------

@pytest.mark.parametrize("kind,after", [("status_after_create", 2), ("drop_after_create", 6), ("drop", 8)])
def test_an_uncertain_create_is_decided_by_get_record_never_a_duplicate(bsky, week, kind, after):
    """issue #30: a 502 after the record was stored, an answer dropped after it was stored, and a connection
    dropped before it was: getRecord at the post's own key decides; the thread completes, no post twice, and a
    stored post is never created again."""
    cfg, store = week
    bsky.fail_next(CREATE, kind, status=502, after=after)
    (rep,) = publish(cfg, store)
    assert rep.published and rep.stats.sent == 11
    assert_one_thread(bsky, store)
    reads = [r for r in bsky.requests if f"{r.method} {r.nsid}" == GET_RECORD]
    assert reads and reads[0].query["rkey"] == [rows(store)[after]["ref"].split(":")[1]]
    assert len(creates(bsky)) == 11 + (kind == "drop") and bsky.taken == []


# -- 4. the session: kept, refreshed, never in a log ----------------------------------------------------------

def test_the_session_is_kept_refreshed_when_expired_and_never_logged(bsky, week, caplog):
    cfg, store = week
    bsky.fail_next(CREATE, "status", status=400, after=3, body={"error": "InvalidRequest", "message": "no"})
    publish(cfg, store)
    path = cfg.state_dir / "bluesky" / "session.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert PASSWORD not in path.read_text() and saved["did"] == bsky.did
    bsky.expire_tokens()
    CliRunner().invoke(cli, ["--config", str(cfg.path), "resolve", KEY, "--channel", "bluesky", "--unit", "4",
                             "--retry"], obj={}, catch_exceptions=False)
    publish(cfg, store)
    assert_one_thread(bsky, store)
    assert bsky.sessions_created == 1 and bsky.refreshed == 1
    logged = caplog.text
    assert PASSWORD not in logged and saved["accessJwt"] not in logged and saved["refreshJwt"] not in logged


def test_a_wrong_app_password_stops_the_chain_and_says_which_variables(tmp_path, bsky, monkeypatch):
    monkeypatch.setenv("PAPERBOT_BLUESKY_APP_PASSWORD", "wrong-pass-word-here")
    cfg = config(tmp_path, bsky)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    (rep,) = publish(cfg, store)
    assert not rep.published and not bsky.ours() and "PAPERBOT_BLUESKY_APP_PASSWORD" in rep.stats.stopped
    assert "wrong-pass-word-here" not in rep.stats.stopped
    assert bsky.sessions_created == 0 and len(bsky.requests) == 1, "a refused login is not tried again"
    assert [r["state"] for r in rows(store)] == ["planned"] * 11
    check = make(cfg, "bluesky").check()
    assert not check[0].ok and "AuthenticationRequired" in check[0].detail
    store.close()


# -- 5. a kill between posts and mid-send, then a rerun ---------------------------------------------------------

def env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_BLUESKY_")}, **CREDS}


def start_publish(cfg: Config) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "publish", "--channel",
                             "bluesky"], cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def states(cfg: Config) -> list[str]:
    conn = sqlite3.connect(cfg.db_path)
    try:
        return [s for (s,) in conn.execute("SELECT state FROM deliveries WHERE channel = 'bluesky' ORDER BY id")]
    finally:
        conn.close()


def wait_for(what, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert proc.poll() is None, f"the process ended first: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_kills_between_posts_and_mid_send_end_with_the_whole_thread_and_no_duplicate(tmp_path, bsky):
    """issue #30: a real `paperbot publish` SIGKILLed after its fourth post (between two posts), then again
    while a create is in flight (the server stores it after the client died); the next run reconciles the row
    left `sending` with getRecord and completes the thread; one login for all three processes."""
    cfg = config(tmp_path, bsky, delay="1s")
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()

    proc = start_publish(cfg)
    wait_for(lambda: states(cfg).count("sent") >= 4 and "sending" not in states(cfg), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    between = len(bsky.ours())
    assert 4 <= between < 11

    bsky.fail_next(CREATE, "hang", seconds=1.0)  # the next create is stored 1 s after it arrives
    proc = start_publish(cfg)
    wait_for(lambda: len(creates(bsky)) > between and "sending" in states(cfg), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "sending" in states(cfg)
    time.sleep(1.3)  # the server stores the post the killed process sent
    assert len(bsky.ours()) == between + 1

    proc = start_publish(cfg)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    store = Store.open(cfg.db_path)
    assert_one_thread(bsky, store)
    assert bsky.taken == [] and bsky.sessions_created == 1
    assert PASSWORD not in out + err
    n = len(bsky.requests)
    proc = start_publish(cfg)
    proc.communicate(timeout=60)
    assert len(bsky.requests) == n, "a rerun sends nothing"
    store.close()


# -- 6. without credentials: a trial in the outbox ----------------------------------------------------------------

def test_without_credentials_the_thread_goes_to_the_outbox_as_a_trial(tmp_path, monkeypatch):
    for name in CREDS:
        monkeypatch.delenv(name, raising=False)
    cfg = config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    (rep,) = publish(cfg, store)
    assert rep.trial and rep.counts["trial"] == 11 and store.week(SOURCE, KEY).state == "ready"
    folder = cfg.state_dir / "outbox" / "bluesky" / SOURCE / KEY
    bodies = [json.loads((folder / f"{i:02d}.json").read_text()) for i in range(11)]
    assert [b["record"]["text"].split("\n")[0] for b in bodies[1:]] == [
        f"{i}/10 " + b["record"]["text"].split("\n")[0].split(" ", 1)[1] for i, b in enumerate(bodies[1:], 1)]
    assert all(is_tid(b["rkey"]) for b in bodies) and "reply" in bodies[1]["record"]
    assert "--- 10: reply" in (folder / "thread.txt").read_text()
    check = make(cfg, "bluesky").check()
    assert check[0].ok and "outbox" in check[0].detail
    store.close()


# -- 7. the operator's commands know the channel ----------------------------------------------------------------

def test_preview_status_and_resolve_know_bluesky(bsky, week):
    """issue #30: `paperbot preview --channel bluesky` shows each post with its counts and links and writes the
    request bodies; `status` shows the channel held by a 429; `resolve --posted` wants an at:// URI."""
    cfg, store = week
    out = cfg.path.parent / "preview"
    result = CliRunner().invoke(cli, ["--config", str(cfg.path), "preview", KEY, "--channel", "bluesky", "--out",
                                      str(out)], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "11 posts, a thread" in result.output and "/300 graphemes" in result.output
    assert f"[link] {WEB}" in result.output and not bsky.requests and not rows(store)
    body = json.loads((out / "bluesky" / SOURCE / KEY / "01.json").read_text())
    assert body["record"]["reply"]["root"]["uri"] == "outbox-0" and is_tid(body["rkey"])

    bsky.fail_next(CREATE, "status", status=429, after=1, body={"error": "RateLimitExceeded", "message": "slow"},
                   headers={"ratelimit-reset": str(int(time.time()) + 600)})
    publish(cfg, store)
    status = CliRunner().invoke(cli, ["--config", str(cfg.path), "status"], obj={}, catch_exceptions=False)
    assert "bluesky: live" in status.output and "rate-limited until" in status.output
    bad = CliRunner().invoke(cli, ["--config", str(cfg.path), "resolve", KEY, "--channel", "bluesky", "--unit",
                                   "2", "--posted", "12345"], obj={})
    assert bad.exit_code != 0 and "at:// URI" in bad.output
