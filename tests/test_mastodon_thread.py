"""Issue #31, "Done when", end to end: a week's thread on Mastodon sent by the real pipeline (bot/publish/chain.py
through bot/channels/mastodon/) with the real Mastodon.py client, to tests/mastodon_server.py on 127.0.0.1, which
checks the Bearer token, counts every status as Mastodon does, keeps Idempotency-Keys for its hour, and finds
mentions, hashtags and links by Mastodon's own rules.

What is asserted is what the server saw (its statuses, how they reply to each other, its request log) and the
ledger rows in the SQLite file. Where the issue says a kill, a real `paperbot publish` subprocess is SIGKILLed.
Nothing of Mastodon.py or paperbot is patched.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from mastodon_server import STATUSES, MastodonServer, mastodon_length
from publish_support import write_config

from bot.cli import cli
from bot.config import Config
from bot.ops import problems
from bot.publish import ledger
from bot.publish.pipeline import publish_ready, publish_week
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "dair"
TOKEN = "mastodon-token-31-secret"
KEY = "2023-02-20..2023-02-26"
READS = "GET /api/v1/accounts/"  # verify_credentials and the account's statuses: what reconciling reads
LONG_URL = "https://example.org/" + "a-rather-long-path/" * 9 + "?query=" + "x" * 40
TITLES = (
    "Sparse Lanterns 稀疏灯笼：专家路由的大规模研究",
    "🚀🔥 Rocket Gradients 🤖✨ for 🧠 Models",
    f"Reading {LONG_URL} at Scale",
    ("Scaling " + "remarkably deep and very wide transformer models " * 12)[:599] + "!",
    "Talking to @openai@mastodon.social and @dair_ai about #LLM and ＃RAG",
    "日本語の論文タイトル：大規模言語モデルの推論と計画",
    "Quiet Gradients via gemini://capsule.example/p and xmpp:room@conf.example",
    "Déjà vu: Tables All the Way Down",
    "Families 👩‍👩‍👧‍👦, Flags 🇯🇵🇰🇷 and Keycaps 1️⃣",
    "Plain Paper Ten",
)


def digest() -> str:
    out = ["# Papers We Liked This Week", "", "## Top ML Papers of the Week (Feb 20-26)", "",
           "| **Paper**  | **Links** |", "| ------------- | ------------- |"]
    for i, title in enumerate(TITLES, start=1):
        summary = (f"paper {i}: thanks to @author{i}@sigmoid.social (#tag{i}); the code is at {LONG_URL} "
                   + "and the results improve on every benchmark. " * 8)
        out.append(f"| {i}) **{title}** - {summary} | [Paper](https://arxiv.org/pdf/2301.{i:05d}v2.pdf), "
                   f"[Code](https://github.com/lab/paper{i}) |")
    return "\n".join(out) + "\n"


def ready(store: Store, cfg: Config) -> None:
    doc = parse_document(digest().encode(), date(2023, 2, 27), "digest")
    observe(store, SOURCE, doc, datetime(2023, 2, 27, 12, tzinfo=UTC), "v1", cfg.publish)
    release(store, datetime(2023, 3, 10, tzinfo=UTC), cfg.publish)
    week = store.week(SOURCE, KEY)
    assert week is not None and week.state == "ready" and len(store.papers(SOURCE, KEY)) == 10


def config(tmp: Path, m: MastodonServer | None, extra: str = "", delay: str = "0s") -> Config:
    tmp.mkdir(parents=True, exist_ok=True)
    instance = m.base_url if m else "http://127.0.0.1:9"
    return write_config(tmp, None, mastodon=f'instance = "{instance}"\ndelay = "{delay}"\ntimeout = "5s"\n'
                                            f'hashtags = ["MachineLearning"]\n{extra}')


@pytest.fixture
def m(monkeypatch):
    monkeypatch.setenv("PAPERBOT_MASTODON_TOKEN", TOKEN)
    with MastodonServer(TOKEN) as server:
        yield server


@pytest.fixture
def week(tmp_path, m):
    cfg = config(tmp_path, m)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    yield cfg, store
    store.close()


def publish(cfg: Config, store: Store) -> list:
    return publish_ready(cfg, store, datetime.now(UTC), channels=["mastodon"])


def posts(m: MastodonServer) -> list:
    return [r for r in m.requests if f"{r.method} {r.path}" == STATUSES]


def chain(store: Store) -> list[tuple[str, str | None]]:
    return [(r["state"], r["remote_id"]) for r in ledger.rows_in(store, SOURCE, KEY, "mastodon", ledger.STATES)]


def assert_one_thread(m: MastodonServer, cfg: Config, n: int = 11) -> list:
    """The account holds exactly one thread of `n` statuses in order, each within the instance's limit, each a
    reply to the one before; no mention, no hashtag but the configured one, no link but paperbot's."""
    ours = m.ours()
    thread = m.thread(ours[0].id)
    assert [s.id for s in thread] == [s.id for s in ours] and len(thread) == n, [s.text[:40] for s in ours]
    assert [s.in_reply_to for s in thread] == [None] + [s.id for s in thread[:-1]]
    assert thread[0].text.startswith("Top ML Papers of the Week") and all(
        s.text.startswith(f"{i}/10 ") for i, s in enumerate(thread[1:], start=1))
    for s in thread:
        assert s.length <= m.max_characters and s.visibility == "unlisted" and s.language == "en"
        assert s.mentions == [], s.text
    assert thread[0].tags == ["MachineLearning"] and all(s.tags == [] for s in thread[1:])
    web = f"https://papers.weekly.test/editions/{SOURCE}/{KEY}"
    assert set(thread[0].links) <= {web} and web in thread[0].text
    assert [s.links for s in thread[1:]] == [[f"https://arxiv.org/abs/2301.{i:05d}"] for i in range(1, 11)]
    return thread


def cli_run(cfg: Config, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


def env() -> dict[str, str]:
    return {**os.environ, "PAPERBOT_MASTODON_TOKEN": TOKEN}


def start_publish(cfg: Config, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot", *flags, "--config", str(cfg.path), "publish",
                             "--channel", "mastodon"], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_publish(cfg: Config, *flags: str) -> subprocess.CompletedProcess:
    proc = start_publish(cfg, *flags)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(what, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended first: {proc.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def row_state(cfg: Config, number: int) -> str:
    conn = sqlite3.connect(cfg.db_path)
    try:
        rows = conn.execute("SELECT state FROM deliveries WHERE channel = 'mastodon' ORDER BY id").fetchall()
    finally:
        conn.close()
    return rows[number - 1][0] if len(rows) >= number else ""


# -- 1. one thread of 11 --------------------------------------------------------------------------------------

def test_a_ten_paper_week_is_one_thread_of_eleven_statuses_within_the_limit_and_a_rerun_sends_nothing(m, week):
    """issue #31: 11 statuses in order, each a reply to the one before through in_reply_to_id (never a mention
    of the account), within the instance's limit as Mastodon counts it, unlisted, in English, each with an
    Idempotency-Key of its own; digest mentions, hashtags and URLs made inert; a rerun sends nothing."""
    cfg, store = week
    (rep,) = publish(cfg, store)
    assert rep.published and rep.stats.sent == 11, rep
    thread = assert_one_thread(m, cfg)
    keys = [r.headers.get("Idempotency-Key") for r in posts(m)]
    assert len(set(keys)) == 11 and all(keys)
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in m.requests)
    assert [r.path.rstrip("/") for r in m.requests[:1]] == ["/api/v2/instance"]  # the limits, read first
    assert "# LLM" in thread[5].text and "@ openai@" in thread[5].text and "gemini[:]//" in thread[7].text
    assert "稀疏灯笼" in thread[1].text and "🚀" in thread[2].text and "…" in thread[4].text
    assert chain(store) == [("sent", s.id) for s in thread]
    assert store.week(SOURCE, KEY).state == "published"

    before = len(m.requests)
    fresh = Store.open(cfg.db_path)
    assert publish(cfg, fresh) == []
    (again,) = publish_week(cfg, fresh, fresh.week(SOURCE, KEY), channels=["mastodon"])
    assert again.already and again.published and len(m.requests) == before


def test_the_limits_are_the_instances_v2_then_v1_then_500_with_a_warning(tmp_path, monkeypatch, caplog):
    """issue #31: an instance allowing 300 characters gets statuses of at most 300 (its /api/v2/instance); one
    without v2 that says `max_toot_chars = 280` in v1 gets at most 280 and a warning; one saying nothing, 500
    and a warning."""
    monkeypatch.setenv("PAPERBOT_MASTODON_TOKEN", TOKEN)
    for name, kw, limit, warned in (("v2", {"max_characters": 300}, 300, None),
                                    ("v1", {"v2": False, "v1_max_toot_chars": 280}, 280, "v1's 280"),
                                    ("none", {"v2": False}, 500, "default of 500")):
        caplog.clear()
        with MastodonServer(TOKEN, **kw) as m:
            cfg = config(tmp_path / name, m)
            store = Store.open(cfg.db_path)
            ready(store, cfg)
            (rep,) = publish(cfg, store)
            assert rep.published and len(m.ours()) == 11
            assert max(s.length for s in m.ours()) <= limit
            assert max(mastodon_length(s.text, 23) for s in m.ours()[1:]) > limit - 60  # filled, not cut short
            store.close()
        assert warned is None or any(warned in r.getMessage() and r.levelname == "WARNING"
                                     for r in caplog.records), name


# -- 2. a kill between statuses ----------------------------------------------------------------------------------

def test_kills_between_statuses_then_a_restart_complete_one_thread_without_a_duplicate(tmp_path, m):
    """issue #31: a real `paperbot publish` SIGKILLed between statuses (after 3, 6 and 9, while it waits its
    `[mastodon] delay`), then restarted: one thread, nothing posted twice, no read-back needed."""
    cfg = config(tmp_path, m, delay="1s")
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()
    for after in (3, 6, 9):
        proc = start_publish(cfg)
        wait_for(lambda a=after: len(m.ours()) >= a and row_state(cfg, a) == "sent", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(m.ours()) == after and row_state(cfg, after + 1) == "planned", "killed between two statuses"
    done = run_publish(cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    thread = assert_one_thread(m, cfg)
    assert len(posts(m)) == 11 and m.replays == 0, "no status was sent twice"
    assert chain(Store.open(cfg.db_path)) == [("sent", s.id) for s in thread]


def test_a_kill_while_a_status_is_in_flight_is_reconciled_on_restart(tmp_path, m):
    """issue #31: SIGKILL while status 3 is in flight (the server answers late, and makes it after the kill):
    the restart finds the row `sending`, reads the account's statuses, finds it, and goes on from it."""
    cfg = config(tmp_path, m)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()
    m.fail_next(STATUSES, "hang", after=2, seconds=1.5)
    proc = start_publish(cfg)
    wait_for(lambda: len(posts(m)) == 3 and row_state(cfg, 3) == "sending", proc=proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: len(m.ours()) == 3)
    done = run_publish(cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    thread = assert_one_thread(m, cfg)
    assert len(posts(m)) == 11 and thread[3].in_reply_to == thread[2].id


# -- 3. a 429 -----------------------------------------------------------------------------------------------------

def test_a_429_holds_the_channel_until_x_ratelimit_reset_then_the_thread_goes_on(m, week):
    """issue #31: a 429 after status 4 with `X-RateLimit-Reset` (ISO 8601) a few seconds ahead: the channel waits
    until then (a second process sends nothing, `paperbot history` shows the wait); then status 5 replies to 4."""
    cfg, store = week
    reset = time.time() + 8
    m.fail_next(STATUSES, after=4, status=429, body={"error": "Too many requests"}, headers=m._limited(reset))
    (first,) = publish(cfg, store)
    assert not first.done and len(m.ours()) == 4
    held = ledger.channel_until(store, "mastodon")
    assert held is not None and abs(held[0].timestamp() - reset) < 1.5, held
    seen = len(m.requests)
    second = run_publish(cfg)
    assert time.time() < reset, "the test machine is too slow for this test's few seconds"
    assert second.returncode == 1 and "waits until" in second.stdout, second.stdout + second.stderr
    assert len(m.requests) == seen, "a request reached the server before the reset"
    assert "waits until" in cli_run(cfg, "history", KEY).output
    # Mastodon.py moves the reset by the server's clock (its Date header, whole seconds): up to a second later
    wait_for(lambda: time.time() > held[0].timestamp() + 0.3, timeout=10)
    (third,) = publish(cfg, Store.open(cfg.db_path))
    assert third.published, third
    assert all(r.at >= reset for r in m.requests[seen:])
    thread = assert_one_thread(m, cfg)
    assert len(posts(m)) == 12 and thread[4].in_reply_to == thread[3].id


# -- 4. uncertain outcomes ------------------------------------------------------------------------------------------

def test_an_error_after_the_status_was_stored_is_reconciled_never_posted_twice(m, week):
    """issue #31: the server stores status 3, then answers 503: paperbot reads the account's statuses, finds it,
    records its id; status 4 replies to it."""
    cfg, store = week
    m.fail_next(STATUSES, "status_after_create", after=2, status=503)
    (rep,) = publish(cfg, store)
    assert rep.published, rep
    thread = assert_one_thread(m, cfg)
    assert [r.status for r in posts(m)] == [200, 200, 503] + [200] * 8 and m.replays == 0
    assert [r.path for r in m.requests if r.method == "GET" and "accounts" in r.path] == [
        "/api/v1/accounts/verify_credentials", f"/api/v1/accounts/{m.account_id}/statuses"]
    assert thread[3].in_reply_to == thread[2].id


def test_a_dropped_answer_is_reconciled_and_the_next_status_replies_to_it(m, week):
    """issue #31: status 6 was made and the connection dropped before its answer: found among the account's
    statuses, not sent again."""
    cfg, store = week
    m.fail_next(STATUSES, "drop_after_create", after=5)
    (rep,) = publish(cfg, store)
    assert rep.published, rep
    thread = assert_one_thread(m, cfg)
    assert len(posts(m)) == 11 and posts(m)[5].status is None and thread[6].in_reply_to == thread[5].id


def test_a_retry_after_the_idempotency_key_expired_finds_the_status_by_reading_the_account(m, week):
    """issue #31: status 6 was made, its answer lost, and the account cannot be read (403): the row waits
    `uncertain`. An hour later the server has forgotten the key; the next run reads the account, finds status
    6 and goes on: one thread, no duplicate (a blind resend would now make a second status)."""
    cfg, store = week
    m.refuse(READS, 403)
    m.fail_next(STATUSES, "drop_after_create", after=5)
    (rep,) = publish(cfg, store)
    assert not rep.done and chain(store)[5][0] == "uncertain" and len(m.ours()) == 6
    history = cli_run(cfg, "history", KEY).output
    assert "uncertain" in history and f"paperbot resolve {SOURCE}:{KEY} --channel mastodon --unit 6" in history
    (alert,) = [p for p in problems.detect(cfg, store, datetime.now(UTC)) if p.kind == "deliveries"]
    assert alert.subject.startswith("mastodon ") and "--channel mastodon" in alert.body, alert
    m.forget_keys()
    m.allow(READS)
    (rep,) = publish(cfg, Store.open(cfg.db_path))
    assert rep.published, rep
    assert_one_thread(m, cfg)
    assert len(posts(m)) == 11 and m.replays == 0


def test_a_status_not_made_is_sent_once_after_the_key_expired(m, week):
    """issue #31: the connection dropped before the server made status 6, the account cannot be read, the key
    is forgotten: the next run reads the account, does not find it, and sends it once."""
    cfg, store = week
    m.refuse(READS, 403)
    m.fail_next(STATUSES, "drop", after=5)
    publish(cfg, store)
    assert chain(store)[5][0] == "uncertain" and len(m.ours()) == 5
    m.forget_keys()
    m.allow(READS)
    (rep,) = publish(cfg, Store.open(cfg.db_path))
    assert rep.published
    assert_one_thread(m, cfg)
    assert len(posts(m)) == 12  # the dropped one, then the 11


def test_resolve_retry_within_the_hour_makes_no_duplicate_thanks_to_the_idempotency_key(m, week):
    """issue #31: status 6 was made, its answer lost, the account unreadable; the operator says `--retry` (it
    did go out, though): the resend carries the same Idempotency-Key and the server answers the status it made."""
    cfg, store = week
    m.refuse(READS, 403)
    m.fail_next(STATUSES, "drop_after_create", after=5)
    publish(cfg, store)
    assert cli_run(cfg, "resolve", KEY, "--channel", "mastodon", "--unit", "6", "--retry").exit_code == 0
    (rep,) = publish(cfg, Store.open(cfg.db_path))
    assert rep.published
    thread = assert_one_thread(m, cfg)
    assert m.replays == 1 and len(posts(m)) == 12 and posts(m)[5].headers["Idempotency-Key"] == posts(m)[6].headers[
        "Idempotency-Key"]
    assert chain(Store.open(cfg.db_path)) == [("sent", s.id) for s in thread]


def test_a_422_stops_the_chain_for_the_operator(m, week):
    """issue #31: the server refuses status 3 (422): `refused`, the chain waits for `paperbot resolve`, later runs
    send nothing."""
    cfg, store = week
    m.fail_next(STATUSES, after=2, status=422, body={"error": "Validation failed: Text character limit exceeded"})
    publish(cfg, store)
    assert chain(store)[2][0] == "refused" and len(m.ours()) == 2
    seen = len(m.requests)
    publish(cfg, Store.open(cfg.db_path))
    assert len(m.requests) <= seen + 1 and len(m.ours()) == 2  # at most the limits read again: no status
    assert "--unit 3" in cli_run(cfg, "history", KEY).output


# -- 5. a trial, preview, check, status --------------------------------------------------------------------------

def test_without_a_token_the_thread_is_a_trial_in_the_outbox_and_preview_shows_each_length(tmp_path, monkeypatch):
    """issue #31: no $PAPERBOT_MASTODON_TOKEN: the statuses go to state/outbox/mastodon/<source>/<key>/ (NN.json,
    thread.txt), the ledger says `trial`, nothing is asked of any server; `paperbot preview` shows each length."""
    monkeypatch.delenv("PAPERBOT_MASTODON_TOKEN", raising=False)
    cfg = config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    (rep,) = publish(cfg, store)
    assert rep.trial and rep.done and not rep.published
    folder = cfg.state_dir / "outbox" / "mastodon" / SOURCE / KEY
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.json" for i in range(11)] + ["thread.txt"]
    bodies = [json.loads((folder / f"{i:02d}.json").read_text(encoding="utf-8")) for i in range(11)]
    assert [b["in_reply_to_id"] for b in bodies] == [None] + [f"outbox-{i}" for i in range(10)]
    assert all(b["visibility"] == "unlisted" and b["language"] == "en" for b in bodies)
    assert all(mastodon_length(b["status"], 23) <= 500 for b in bodies)
    assert ledger.counts(store, SOURCE, KEY, "mastodon")["trial"] == 11
    shown = cli_run(cfg, "preview", KEY, "--channel", "mastodon")
    assert shown.exit_code == 0 and "[10] " in shown.output and "/500" in shown.output, shown.output


def test_check_warns_when_the_account_is_no_bot_or_visibility_is_public_and_fails_on_a_bad_token(tmp_path,
                                                                                                   monkeypatch):
    """issue #31: `paperbot check` asks verify_credentials and the instance (nothing posted): a note when the
    account is not marked as a bot and when visibility is public; FAIL when the token is refused."""
    monkeypatch.setenv("PAPERBOT_MASTODON_TOKEN", TOKEN)
    with MastodonServer(TOKEN, bot=False) as m:
        cfg = config(tmp_path, m, 'visibility = "public"\n')
        out = cli_run(cfg, "check").output
        assert "not marked as a bot" in out and 'visibility = "public"' in out, out
        assert "the token works (account @paperbot); 500 characters" in out
        monkeypatch.setenv("PAPERBOT_MASTODON_TOKEN", "wrong")
        out = cli_run(cfg, "check").output
        assert "FAIL  mastodon:" in out and "401" in out, out
        assert m.ours() == [] and "wrong" not in out


def test_status_knows_the_channel_and_the_token_is_in_no_log_even_at_debug(tmp_path, m):
    """issue #31: `paperbot -vv publish` logs requests at DEBUG, yet the token appears in no output and no file
    of the state folder; `paperbot status --json` shows the channel live."""
    cfg = config(tmp_path, m)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()
    done = run_publish(cfg, "-vv")
    assert done.returncode == 0 and len(m.ours()) == 11, done.stderr[-2000:]
    assert TOKEN not in done.stdout + done.stderr
    for path in cfg.state_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    st = json.loads(cli_run(cfg, "status", "--json").output)
    assert st["channels"]["mastodon"]["live"] is True


def test_preview_with_a_token_fits_the_statuses_to_the_instances_limit_and_posts_nothing(tmp_path, monkeypatch):
    """issue #31: `paperbot preview WEEK --channel mastodon` with a token reads the instance's limits (300 here)
    and shows each status against them; nothing is posted and nothing recorded."""
    monkeypatch.setenv("PAPERBOT_MASTODON_TOKEN", TOKEN)
    with MastodonServer(TOKEN, max_characters=300) as m:
        cfg = config(tmp_path, m)
        store = Store.open(cfg.db_path)
        ready(store, cfg)
        shown = cli_run(cfg, "preview", KEY, "--channel", "mastodon")
        assert shown.exit_code == 0, shown.output
        assert "limit 300 from" in shown.output and "[10] " in shown.output, shown.output
        sizes = [int(n) for n in re.findall(r"\[\d+\] (\d+)/300", shown.output)]
        assert len(sizes) == 11 and max(sizes) <= 300
        assert posts(m) == [] and ledger.counts(store, SOURCE, KEY, "mastodon")["planned"] == 0
