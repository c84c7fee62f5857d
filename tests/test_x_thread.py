"""Issue #11, "Done when", end to end: a week's thread on X sent by the real pipeline (bot/publish/chain.py through
bot/channels/x/) with the real tweepy client, to tests/x_server.py on 127.0.0.1, which checks every request's
OAuth 1.0a signature, counts every text with twitter-text and finds mentions by X's own rule.

What is asserted is what X (the server) saw: its posts, how they reply to each other, its request log with
times, and the ledger rows in the SQLite file. Where the issue says a process, a real `paperbot publish`
subprocess runs (and is SIGKILLed); otherwise the pipeline's own `publish_ready` runs in this process. Nothing
of tweepy or paperbot is patched.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from publish_support import write_config
from x_server import XServer, find_mentions, twitter_text

from bot.channels import load_config
from bot.cli import cli
from bot.config import Config
from bot.publish import ledger
from bot.publish.pipeline import late_round, publish_ready, publish_week
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "dair"
CREDS = {"PAPERBOT_X_CONSUMER_KEY": "ck-thread-1", "PAPERBOT_X_CONSUMER_SECRET": "cs-thread-2",
         "PAPERBOT_X_ACCESS_TOKEN": "at-thread-3", "PAPERBOT_X_ACCESS_TOKEN_SECRET": "ats-thread-4"}
POST = "POST /2/tweets"
READS = "GET /2/users/"  # /2/users/me and /2/users/:id/tweets: what reconciling reads

# The week's papers: CJK, emoji (sequences and flags too), a title holding a long URL, a 300-character title,
# and @mentions and #tags in titles and summaries (every summary names an @author and holds a long URL).
LONG_URL = "https://example.org/" + "a-rather-long-path/" * 9 + "?query=" + "x" * 40
TITLE_300 = ("Scaling " + "remarkably deep and very wide transformer models " * 7)[:299] + "!"
TITLES = (
    "Sparse Lanterns 稀疏灯笼：专家路由的大规模研究",
    "🚀🔥 Rocket Gradients 🤖✨ for 🧠 Models",
    f"Reading {LONG_URL} at Scale",
    TITLE_300,
    "Talking to @openai and @dair_ai about #LLM and #RAG",
    "日本語の論文タイトル：大規模言語モデルの推論と計画",
    "Quiet Gradients",
    "Déjà vu: Tables All the Way Down",
    "Families 👩‍👩‍👧‍👦, Flags 🇯🇵🇰🇷 and Keycaps 1️⃣",
    "Plain Paper Ten",
)
WEEKS = {"2023-02-20..2023-02-26": "Feb 20-26", "2023-02-13..2023-02-19": "Feb 13-19",
         "2023-02-27..2023-03-05": "Feb 27 - Mar 5"}
KEY, EARLIER, LATER = list(WEEKS)


def digest(keys: tuple[str, ...] = (KEY,), added: tuple[str, ...] = ()) -> str:
    """The digest's README in the seeds' form: a table per week, newest first; every week's texts differ.
    `added`: more papers at the end of the first week of `keys`, as when the digest adds to it later."""
    out = ["# Papers We Liked This Week", ""]
    for w, key in sorted(enumerate(keys, start=1), key=lambda wk: wk[1], reverse=True):
        out += [f"## Top ML Papers of the Week ({WEEKS[key]})", "", "| **Paper**  | **Links** |",
                "| ------------- | ------------- |"]
        for i, title in enumerate(TITLES + (added if w == 1 else ()), start=1):
            summary = (f"week {WEEKS[key]}, paper {i}: thanks to @author{i} (#tag{i}); the code is at {LONG_URL} "
                       + "and the results improve on every benchmark. " * 6)
            links = (f"[Paper](https://arxiv.org/pdf/230{w}.{i:05d}v2.pdf), "
                     f"[Code](https://github.com/lab/week{w}-paper{i})")
            out.append(f"| {i}) **{title}** - {summary} | {links} |")
        out.append("")
    return "\n".join(out)


def ready(store: Store, cfg: Config, keys: tuple[str, ...] = (KEY,)) -> None:
    """Observe the digest after its weeks are over and let the gate release them."""
    doc = parse_document(digest(keys).encode(), date(2023, 2, 27), "digest")
    observe(store, SOURCE, doc, datetime(2023, 2, 27, 12, tzinfo=UTC), "v1", cfg.publish)
    release(store, datetime(2023, 3, 10, tzinfo=UTC), cfg.publish)
    for key in keys:
        week = store.week(SOURCE, key)
        assert week is not None and week.state == "ready" and len(store.papers(SOURCE, key)) == 10


def config(tmp: Path, x: XServer | None, extra: str = "", delay: str = "0s") -> Config:
    tmp.mkdir(parents=True, exist_ok=True)
    api = f'api_base = "{x.api_base}"\n' if x else 'api_base = "http://127.0.0.1:9"\n'
    return write_config(tmp, None, x=f'{api}delay = "{delay}"\ntimeout = "5s"\n{extra}')


@pytest.fixture
def x(monkeypatch):
    for name, value in CREDS.items():
        monkeypatch.setenv(name, value)
    with XServer(*CREDS.values()) as server:
        yield server


@pytest.fixture
def week(tmp_path, x):
    """A ready 10-paper week, a config pointing [x] at the server; (cfg, store)."""
    cfg = config(tmp_path, x)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    yield cfg, store
    store.close()


def publish(cfg: Config, store: Store, now: datetime | None = None) -> list:
    return publish_ready(cfg, store, now or datetime.now(UTC), channels=["x"])


def posts_sent(x: XServer) -> list:
    """Every POST /2/tweets that reached the server, answered or not."""
    return [r for r in x.requests if f"{r.method} {r.path}" == POST]


def weight(text: str) -> int:
    return twitter_text.parse_tweet(text).weightedLength


def chain(store: Store, key: str = KEY) -> list[tuple[str, str | None]]:
    """(state, remote id) of each post's ledger row, in thread order."""
    return [(r["state"], r["remote_id"]) for r in ledger.rows_in(store, SOURCE, key, "x", ledger.STATES)]


def assert_one_thread(x: XServer, n: int = 11) -> list:
    """The account holds exactly one thread of `n` posts, each a reply to the one before, no text twice."""
    ours = x.ours()
    thread = x.thread(ours[0].id)
    assert [p.id for p in thread] == [p.id for p in ours] and len(thread) == n, [p.text[:40] for p in ours]
    assert [p.in_reply_to for p in thread] == [None] + [p.id for p in thread[:-1]]
    assert len({p.text for p in thread}) == n
    return thread


def cli_run(cfg: Config, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


def env(credentials: bool = True) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PAPERBOT_X_")}
    return {**out, **(CREDS if credentials else {})}


def start_publish(cfg: Config) -> subprocess.Popen:
    """A real `paperbot publish` process, with the X credentials in its environment."""
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "publish", "--channel", "x"],
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_publish(cfg: Config) -> subprocess.CompletedProcess:
    proc = start_publish(cfg)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(what, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended first: {proc.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def row_state(cfg: Config, number: int) -> str:
    conn = sqlite3.connect(cfg.db_path)
    try:
        rows = conn.execute("SELECT state FROM deliveries WHERE channel = 'x' ORDER BY id").fetchall()
    finally:
        conn.close()
    return rows[number - 1][0] if len(rows) >= number else ""


# -- 1. a 10-paper week is one thread of 11 posts -------------------------------------------------------------

def test_a_ten_paper_week_is_one_thread_of_eleven_posts_within_280_mentioning_nobody(x, week):
    """issue #11: 11 posts, each a reply to the one before, every one within 280 weighted characters as
    twitter-text counts them, no @mention X would link, the ledger holds the server's ids, a rerun sends nothing."""
    cfg, store = week
    (rep,) = publish(cfg, store)
    assert rep.published and rep.stats.sent == 11
    thread = assert_one_thread(x)
    for post in thread:
        parsed = twitter_text.parse_tweet(post.text)
        assert parsed.valid and parsed.weightedLength <= 280, (parsed.weightedLength, post.text)
        assert post.mentions == [] and find_mentions(post.text) == [], post.text
    assert all(r.signature_ok for r in x.requests)
    # the edition's link (`.test`, the domain reserved for tests, is no TLD X links: it is in the text as typed)
    assert f"https://papers.weekly.test/editions/{SOURCE}/{KEY}" in thread[0].text
    assert [p.urls for p in thread[1:]] == [[f"https://arxiv.org/abs/2301.{i:05d}"] for i in range(1, 11)]
    assert "稀疏灯笼" in thread[1].text and "🚀" in thread[2].text and "大規模言語モデル" in thread[6].text
    assert len(thread[4].text) < 300 and "…" in thread[4].text  # the 300-character title, shortened in one post
    assert "# LLM" in thread[5].text and "@ openai" in thread[5].text  # a tag and a mention made inert (#21)
    assert chain(store) == [("sent", p.id) for p in thread]
    assert store.week(SOURCE, KEY).state == "published"

    before = len(x.requests)
    fresh = Store.open(cfg.db_path)
    assert publish(cfg, fresh) == []  # no ready week left
    (again,) = publish_week(cfg, fresh, fresh.week(SOURCE, KEY), channels=["x"])  # asked for by name
    assert again.already and again.published and len(x.requests) == before


def test_papers_added_to_a_week_after_its_thread_go_out_at_the_end_of_the_next_thread(x, week):
    """issue #11 (with the completeness issue): a paper added to a week whose thread went out gets a post of
    its own at the end of the next week's thread ("Added to …"), once, within 280 and mentioning nobody."""
    cfg, store = week
    publish(cfg, store)
    late = "A Late 论文 🐢 about #agents by @someone"
    doc = parse_document(digest((KEY, LATER), added=(late,)).encode(), date(2023, 3, 6), "digest")
    observe(store, SOURCE, doc, datetime(2023, 3, 6, 12, tzinfo=UTC), "v2", cfg.publish)
    release(store, datetime(2023, 3, 20, tzinfo=UTC), cfg.publish)
    assert store.week(SOURCE, LATER).state == "ready"
    (rep,) = publish(cfg, store, datetime.now(UTC) + timedelta(days=7))  # a week on: the daily budget is free
    assert rep.key == LATER and rep.published, rep
    heads = [p for p in x.ours() if p.in_reply_to is None]
    first, second = (x.thread(h.id) for h in heads)
    assert len(first) == 11 and len(second) == 12
    assert second[-1].text.startswith("Added to 20–26 February 2023 (1/1): A Late 论文 🐢"), second[-1].text
    assert second[-1].urls == ["https://arxiv.org/abs/2301.00011"] and second[-1].mentions == []
    assert all(weight(p.text) <= 280 for p in second)
    assert publish(cfg, store) == [] and len(x.ours()) == 23  # carried once


def test_a_paper_added_after_the_thread_was_planned_but_before_it_went_out_is_carried_not_lost(x, week):
    """issue #15 (found while checking the chaos test, tests/test_e2e.py): a week planned on X (its posts counted
    from its papers) whose head was held by a 429, then given one more paper before any post went out, rendered
    the new paper into a post no unit was planned for, and recorded it as part of the week: the paper was never
    posted, nor found late. The week now goes out with the papers it was planned with, and the added paper is a
    late one, waiting for the next edition."""
    cfg, store = week
    reset = int(time.time()) + 2
    x.fail_next(POST, status=429, headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                                           "x-rate-limit-reset": str(reset)})
    (first,) = publish(cfg, store)
    assert not first.done and x.ours() == []
    late = "A Paper Added Before Any Post"
    doc = parse_document(digest((KEY,), added=(late,)).encode(), date(2023, 2, 28), "digest")
    observe(store, SOURCE, doc, datetime(2023, 2, 28, 12, tzinfo=UTC), "v2", cfg.publish)
    wait_for(lambda: time.time() > reset + 0.2, timeout=10)
    (rep,) = publish(cfg, store)
    assert rep.published and len(assert_one_thread(x)) == 11 and not any(late in p.text for p in x.ours())
    late_round(cfg, store, datetime.now(UTC))
    assert store.db.execute("SELECT week_key, channel, json_extract(paper, '$.title'), carried_in_key FROM "
                            "late_additions").fetchall() == [(KEY, "x", late, None)]


# -- 2. a 429 holds every process until its reset ---------------------------------------------------------------

def test_a_429_holds_every_process_until_the_reset_then_the_thread_goes_on(x, week):
    """issue #11: a 429 after post 4 says "not before the reset" (a few seconds ahead): no request reaches X
    before it, not even from a second `paperbot publish` process started in between; `paperbot history` shows
    the wait; after the reset post 5 replies to post 4 and the 11 posts are one chain."""
    cfg, store = week
    reset = int(time.time()) + 5
    x.fail_next(POST, after=4, status=429, body={"title": "Too Many Requests", "status": 429},
                headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
    (first,) = publish(cfg, store)
    assert not first.done and len(x.ours()) == 4, first
    limited = next(i for i, r in enumerate(x.requests) if r.status == 429)
    assert limited == len(x.requests) - 1

    second = run_publish(cfg)  # started by hand before the reset
    assert time.time() < reset, "the test machine is too slow for this test's few seconds"
    assert second.returncode == 1 and "waits until" in second.stdout, second.stdout + second.stderr
    assert len(x.requests) == limited + 1, "a request reached X before the reset"
    history = cli_run(cfg, "history", KEY).output
    assert "waits until" in history and "rate limit" in history, history

    wait_for(lambda: time.time() > reset + 0.2, timeout=10)
    (third,) = publish(cfg, Store.open(cfg.db_path))
    assert third.published, third
    assert all(r.at >= reset for r in x.requests[limited + 1:]), "nothing between the 429 and the reset"
    thread = assert_one_thread(x)
    assert thread[4].in_reply_to == thread[3].id
    assert len(posts_sent(x)) == 12  # 11 posts and the one refused with 429
    assert chain(Store.open(cfg.db_path)) == [("sent", p.id) for p in thread]


# -- 3. kills between posts --------------------------------------------------------------------------------------

def test_three_kills_between_posts_then_a_restart_complete_one_thread_without_a_duplicate(tmp_path, x):
    """issue #11: a real `paperbot publish` SIGKILLed three times between posts (after posts 3, 6 and 9, while
    it waits its `[x] delay`), then restarted: the thread completes as one chain and nothing is posted twice."""
    cfg = config(tmp_path, x, delay="1s")
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()
    for after in (3, 6, 9):
        proc = start_publish(cfg)
        # post `after` made (the server's own record), then recorded: the process waits its delay now
        wait_for(lambda a=after: len(x.ours()) >= a and row_state(cfg, a) == "sent", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(x.ours()) == after and row_state(cfg, after + 1) == "planned", "killed between two posts"
    done = run_publish(cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    thread = assert_one_thread(x)
    assert len(posts_sent(x)) == 11 and all(r.status == 201 for r in posts_sent(x)), "no post was sent twice"
    assert [r for r in x.requests if r.method == "GET"] == []  # every restart knew where it stood from the ledger
    assert chain(Store.open(cfg.db_path)) == [("sent", p.id) for p in thread]


# -- 4. uncertain posts: reconciled, or settled by the operator ----------------------------------------------------

def test_a_connection_dropped_after_post_6_was_made_is_reconciled_and_post_7_replies_to_it(x, week):
    """issue #11: X made post 6 and the connection dropped before its answer: paperbot reads the account's
    recent posts (GET /2/users/me, GET /2/users/:id/tweets), finds post 6, records its id, and post 7 replies to
    it; nothing is posted twice."""
    cfg, store = week
    x.fail_next(POST, "drop_after_create", after=5)
    (rep,) = publish(cfg, store)
    assert rep.published, rep
    thread = assert_one_thread(x)
    assert len(posts_sent(x)) == 11 and posts_sent(x)[5].status is None  # post 6's answer never came
    assert thread[6].in_reply_to == thread[5].id
    assert chain(store) == [("sent", p.id) for p in thread]
    reads = [r.path for r in x.requests if r.method == "GET"]
    assert reads == ["/2/users/me", f"/2/users/{x.user_id}/tweets"]


def test_an_uncertain_post_that_cannot_be_checked_waits_for_resolve_posted(x, week):
    """issue #11: post 6 was made, its answer lost, and the timeline read is refused (403): the row is
    `uncertain`, nothing more is posted, even by further runs, and `paperbot history` says how to settle it;
    `paperbot resolve WEEK --channel x --unit 6 --posted ID` records it, and post 7 then replies to ID."""
    cfg, store = week
    x.refuse(READS, 403)
    x.fail_next(POST, "drop_after_create", after=5)
    (rep,) = publish(cfg, store)
    assert not rep.done and rep.counts["uncertain"] == 1 and rep.counts["sent"] == 5
    assert chain(store)[5][0] == "uncertain" and len(x.ours()) == 6
    for _ in range(2):
        publish(cfg, Store.open(cfg.db_path))
    assert run_publish(cfg).returncode == 1
    assert len(posts_sent(x)) == 6 and len(x.ours()) == 6, "nothing more is posted while post 6 is uncertain"
    assert chain(store)[5][0] == "uncertain"
    history = cli_run(cfg, "history", KEY).output
    assert "uncertain" in history and f"paperbot resolve {SOURCE}:{KEY} --channel x --unit 6" in history, history

    made = x.ours()[5].id
    settled = cli_run(cfg, "resolve", KEY, "--channel", "x", "--unit", "6", "--posted", made)
    assert settled.exit_code == 0 and "recorded as posted" in settled.output, settled.output
    (rep,) = publish(cfg, store)
    assert rep.published
    thread = assert_one_thread(x)
    assert thread[5].id == made and thread[6].in_reply_to == made
    assert len(posts_sent(x)) == 11
    assert chain(store) == [("sent", p.id) for p in thread]


def test_an_uncertain_post_that_was_not_made_is_sent_once_after_resolve_retry(x, week):
    """issue #11: the connection dropped before X made post 6, and the timeline cannot be read: the row waits
    (`uncertain`, nothing posted by further runs) until `paperbot resolve ... --unit 6 --retry`; then post 6 is
    sent once, replying to post 5, and the thread completes."""
    cfg, store = week
    x.refuse(READS, 403)
    x.fail_next(POST, "drop", after=5)
    publish(cfg, store)
    publish(cfg, Store.open(cfg.db_path))
    assert chain(store)[5][0] == "uncertain" and len(x.ours()) == 5 and len(posts_sent(x)) == 6

    settled = cli_run(cfg, "resolve", KEY, "--channel", "x", "--unit", "6", "--retry")
    assert settled.exit_code == 0, settled.output
    (rep,) = publish(cfg, store)
    assert rep.published
    thread = assert_one_thread(x)
    assert thread[5].in_reply_to == thread[4].id
    assert len(posts_sent(x)) == 12  # the dropped one and the 11 posts: post 6 went out exactly once
    assert chain(store) == [("sent", p.id) for p in thread]


def test_a_503_to_a_post_x_did_not_make_is_checked_then_sent_once(x, week):
    """issue #11: a 503 to a create is uncertain (X may have made the post): paperbot reads the timeline first,
    does not find post 3, and only then sends it again, once."""
    cfg, store = week
    x.fail_next(POST, after=2, status=503)
    (rep,) = publish(cfg, store)
    assert rep.published, rep
    thread = assert_one_thread(x)
    assert [r.status for r in posts_sent(x)] == [201, 201, 503] + [201] * 9
    assert [r.path for r in x.requests[3:5]] == ["/2/users/me", f"/2/users/{x.user_id}/tweets"]  # checked first
    assert thread[2].in_reply_to == thread[1].id


def test_a_duplicate_refusal_that_reconciling_cannot_explain_waits_for_the_operator(x, week):
    """issue #11: X answers post 3 with 403 "duplicate content", yet the account's recent posts hold no such
    reply: only the operator can settle it. The row waits for `paperbot resolve` (`refused`: X refuses that text
    for good), and no later run sends it again on its own."""
    cfg, store = week
    x.fail_next(POST, after=2, status=403, body={
        "title": "Forbidden", "status": 403, "type": "about:blank",
        "detail": "You are not allowed to create a Tweet with duplicate content."})
    publish(cfg, store)
    assert chain(store)[2][0] == "refused" and len(posts_sent(x)) == 3
    seen = len(x.requests)
    publish(cfg, Store.open(cfg.db_path))
    assert len(x.requests) == seen and len(x.ours()) == 2, "a later run resent what X called a duplicate"
    history = cli_run(cfg, "history", KEY).output
    assert "duplicate" in history and "--unit 3" in history, history


def test_a_kill_while_post_3_is_sending_is_reconciled_on_restart_never_posted_twice(tmp_path, x):
    """issue #11: a real `paperbot publish` is SIGKILLed while post 3 is in flight (its row `sending`; X is slow
    to answer and makes the post after the kill). The restart finds the row `sending`, reads the timeline, finds
    post 3, and goes on from it: one thread, post 3 posted once."""
    cfg = config(tmp_path, x)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()
    x.fail_next(POST, "hang", after=2, seconds=1.5)
    proc = start_publish(cfg)
    wait_for(lambda: len(posts_sent(x)) == 3 and row_state(cfg, 3) == "sending", proc=proc)  # X has not answered
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert row_state(cfg, 3) == "sending"
    wait_for(lambda: len(x.ours()) == 3)  # X made it after all
    done = run_publish(cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    thread = assert_one_thread(x)
    assert len(posts_sent(x)) == 11 and thread[3].in_reply_to == thread[2].id
    assert chain(Store.open(cfg.db_path)) == [("sent", p.id) for p in thread]


# -- 5. the daily budget --------------------------------------------------------------------------------------------

def test_the_daily_budget_holds_across_restarts_and_a_thread_starts_only_when_it_fits(tmp_path, x):
    """issue #11: two 11-post weeks ready at once under `daily_budget = 17`: the first thread goes; the second
    does not start (11 do not fit in the 6 left), not in this run, not in a new process; it starts when the
    rolling 24 hours have room for all of it, and then completes."""
    cfg = config(tmp_path, x, "daily_budget = 17\n[publish]\nbackfill = 2\n")
    store = Store.open(cfg.db_path)
    ready(store, cfg, (KEY, EARLIER))
    reports = publish(cfg, store)
    assert [(r.key, r.published) for r in reports] == [(EARLIER, True), (KEY, False)]
    assert "daily budget" in (reports[1].note or "")
    assert len(x.ours()) == 11 and ledger.counts(store, SOURCE, KEY, "x")["planned"] == 11
    held = ledger.channel_until(store, "x")
    assert held is not None and "daily budget" in held[1]
    times = ledger.sent_times(store, "x", datetime.now(UTC) - timedelta(days=1))
    assert held[0] == times[4] + timedelta(hours=24)  # when 5 of the 11 sends have left the window
    store.close()

    assert run_publish(cfg).returncode == 1  # a new process, a new store: the budget is read from the ledger
    store = Store.open(cfg.db_path)
    publish(cfg, store)
    publish(cfg, store, held[0] - timedelta(seconds=1))  # still only 10 fit
    assert len(posts_sent(x)) == 11 and ledger.counts(store, SOURCE, KEY, "x")["sent"] == 0

    (rep,) = publish(cfg, store, held[0] + timedelta(seconds=1))
    assert rep.published and rep.key == KEY
    assert len(x.ours()) == 22
    heads = [p for p in x.ours() if p.in_reply_to is None]
    assert [len(x.thread(h.id)) for h in heads] == [11, 11]


def test_a_thread_longer_than_the_whole_budget_goes_on_across_days_with_a_warning(tmp_path, x, caplog):
    """issue #11: with `daily_budget = 5` an 11-post thread starts when the budget is full and goes on across
    days: 5, then 5 a day later, then 1; a warning says so in the log and `paperbot history`; still one chain."""
    caplog.set_level(logging.INFO)
    cfg = config(tmp_path, x, "daily_budget = 5\n")
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    now = datetime.now(UTC)
    publish(cfg, store, now)
    assert len(x.ours()) == 5
    assert any(r.levelname == "WARNING" and "more than the daily budget" in r.getMessage() for r in caplog.records)
    history = cli_run(cfg, "history", KEY).output
    assert "more than the daily budget of 5" in history, history
    publish(cfg, Store.open(cfg.db_path), now + timedelta(minutes=1))
    assert len(x.ours()) == 5 and len(posts_sent(x)) == 5

    publish(cfg, store, now + timedelta(hours=24, minutes=1))
    assert len(x.ours()) == 10
    (rep,) = publish(cfg, store, now + timedelta(hours=48, minutes=2))
    assert rep.published
    thread = assert_one_thread(x)
    assert chain(store) == [("sent", p.id) for p in thread]


def test_a_post_found_by_reconciling_counts_against_the_daily_budget(x, tmp_path):
    """issue #11: the daily budget caps what X receives. Post 3 was made but its answer lost; reconciling finds
    it, and it counts like any post sent: with `daily_budget = 5` X gets 5 posts that day, not 6."""
    cfg = config(tmp_path, x, "daily_budget = 5\n")
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    x.fail_next(POST, "drop_after_create", after=2)
    publish(cfg, store)
    assert len(x.ours()) == 5 and len(posts_sent(x)) == 5
    assert ledger.counts(store, SOURCE, KEY, "x")["sent"] == 5


# -- 6. a refused reply, and an account that cannot thread -----------------------------------------------------------

def test_a_refused_reply_stops_the_thread_for_the_operator_and_never_loops(x, week, caplog):
    """issue #11: X answers a reply with 403 (it no longer allows it): the chain stops, the row is `refused`,
    the log and `paperbot history` say so, and later runs post nothing and ask nothing of X for it."""
    cfg, store = week
    x.fail_next(POST, after=3, status=403, body={
        "title": "Forbidden", "status": 403, "type": "about:blank",
        "detail": "Reply to this conversation is not allowed because you have not been mentioned or otherwise "
                  "engaged by the author of the post you are replying to."})
    (rep,) = publish(cfg, store)
    assert not rep.done and len(x.ours()) == 3
    assert chain(store)[3][0] == "refused" and chain(store)[4:] == [("planned", None)] * 7
    assert any(r.levelname == "ERROR" and "refused" in r.getMessage() and "not allowed" in r.getMessage()
               for r in caplog.records)
    history = cli_run(cfg, "history", KEY).output
    assert "refused" in history and "not allowed" in history and "--unit 4" in history, history
    seen = len(x.requests)
    for _ in range(2):
        publish(cfg, Store.open(cfg.db_path))
    assert run_publish(cfg).returncode == 1
    assert len(x.requests) == seen, "a refused post is not tried again without the operator"


def test_history_shows_no_wait_once_the_reset_has_passed(x, week):
    """issue #11: `paperbot history` shows a channel's wait while it lasts. A 429 (reset a second ahead) after
    post 2; once the reset has passed, the thread goes on until X refuses post 5: history then shows the refusal
    and how to settle it, not a wait that is over."""
    cfg, store = week
    reset = int(time.time()) + 2
    x.fail_next(POST, after=2, status=429, headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
    publish(cfg, store)
    assert "waits until" in cli_run(cfg, "history", KEY).output
    wait_for(lambda: time.time() > reset + 0.1, timeout=5)
    x.fail_next(POST, after=2, status=403, body={"title": "Forbidden", "status": 403, "detail": "Forbidden."})
    publish(cfg, store)
    assert len(x.ours()) == 4 and chain(store)[4][0] == "refused"
    history = cli_run(cfg, "history", KEY).output
    assert "refused" in history and "--unit 5" in history, history
    assert "waits until" not in history, history


def test_without_replies_each_paper_is_its_own_post_linking_the_head(tmp_path, x):
    """issue #11: `[x] replies = false` (an account that cannot thread): the head, then each paper as a post of
    its own, none a reply, each linking the head post (https://x.com/i/status/<head id>), all within 280."""
    cfg = config(tmp_path, x, "replies = false\n")
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    (rep,) = publish(cfg, store)
    assert rep.published
    posts = x.ours()
    assert len(posts) == 11 and all(p.in_reply_to is None for p in posts)
    head = f"https://x.com/i/status/{posts[0].id}"
    for i, post in enumerate(posts[1:], start=1):
        assert post.urls == [f"https://arxiv.org/abs/2301.{i:05d}", head], post.text
        assert weight(post.text) <= 280 and post.mentions == []
    assert chain(store) == [("sent", p.id) for p in posts]


# -- 7. a trial without credentials ------------------------------------------------------------------------------------

def test_without_credentials_the_thread_is_a_trial_in_the_outbox_and_preview_shows_each_length(tmp_path, x,
                                                                                                 monkeypatch):
    """issue #11: with no PAPERBOT_X_* credentials the thread goes to state/outbox/x/<source>/<key>/: NN.json
    holds the exact body tweepy sends for each post (the same a live run sends, the reply ids aside) and
    thread.txt the readable thread; the ledger says `trial`; `paperbot preview WEEK --channel x` prints every
    post with its weighted length."""
    live_cfg = config(tmp_path / "live", x)
    live = Store.open(live_cfg.db_path)
    ready(live, live_cfg)
    publish(live_cfg, live)
    bodies = [r.body for r in posts_sent(x)]
    ids = [p.id for p in x.ours()]
    seen = len(x.requests)

    for name in CREDS:
        monkeypatch.delenv(name)
    cfg = config(tmp_path / "trial", None)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    (rep,) = publish(cfg, store)
    assert rep.trial and rep.done and not rep.published
    folder = cfg.state_dir / "outbox" / "x" / SOURCE / KEY
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.json" for i in range(11)] + ["thread.txt"]
    for i, body in enumerate(bodies):
        expected = json.loads(json.dumps(body).replace(ids[i - 1], f"outbox-{i - 1}")) if i else body
        assert json.loads((folder / f"{i:02d}.json").read_text(encoding="utf-8")) == expected
    readable = (folder / "thread.txt").read_text(encoding="utf-8")
    assert all(b["text"] in readable for b in bodies)
    assert ledger.counts(store, SOURCE, KEY, "x")["trial"] == 11
    assert ledger.publication(store, SOURCE, KEY, "x").state == "trial"
    assert store.week(SOURCE, KEY).state == "ready"

    shown = cli_run(cfg, "preview", KEY, "--channel", "x")
    assert shown.exit_code == 0, shown.output
    for i, body in enumerate(bodies):
        assert f"[{i}] {weight(body['text'])}/280" in shown.output
        assert all(line in shown.output for line in body["text"].split("\n"))
    assert len(x.requests) == seen  # the trial asked nothing of X

    for name, value in CREDS.items():  # the account's credentials arrive: the tried week goes out for real
        monkeypatch.setenv(name, value)
    cfg.path.write_text(cfg.path.read_text().replace("http://127.0.0.1:9", x.api_base), encoding="utf-8")
    cfg = load_config(cfg.path)
    x.posts.clear()  # another account, as far as the texts go (X refuses a duplicate of the account's own)
    (rep,) = publish(cfg, store)
    assert rep.published and not rep.trial, rep
    thread = assert_one_thread(x)
    assert [p.text for p in thread] == [b["text"] for b in bodies]
    assert chain(store) == [("sent", p.id) for p in thread]


# -- credentials -----------------------------------------------------------------------------------------------------

def test_the_credentials_are_in_no_log_line_and_no_file_even_at_debug_level(tmp_path, x):
    """issue #11 (secrets never in logs): a `paperbot -vv publish` posts the thread and logs every request at
    DEBUG, yet none of the four PAPERBOT_X_* values appears in its output or in any file under the state folder
    (oauthlib and requests-oauthlib log the Authorization header and the signature base string at DEBUG)."""
    cfg = config(tmp_path, x)
    store = Store.open(cfg.db_path)
    ready(store, cfg)
    store.close()
    proc = subprocess.run([sys.executable, "-m", "bot", "-vv", "--config", str(cfg.path), "publish", "--channel",
                           "x"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and len(x.ours()) == 11, proc.stderr[-2000:]
    assert "Making API request" in proc.stderr  # it did log at DEBUG
    leaked = [name for name, value in CREDS.items() if value in proc.stdout + proc.stderr]
    assert leaked == [], f"{leaked} in the log"
    for path in cfg.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(v.encode() in data for v in CREDS.values()), path

