"""Issue #12, wired: a ready week announced on Discord through the real pipeline (`publish_ready`, and real
`paperbot publish` processes where one is killed), by the real discord.py client with its API base pointed at
tests/discord_server.py on 127.0.0.1. The server checks Discord's limits itself (an over-limit message is a 400)
and records every request, so the assertions are on what Discord would have received and what a reader sees.

Weeks come from the tracker (`observe` and `release`, as tests/publish_support.py `ready_week` does); email is a
trial beside Discord (no smtp_url), X is off.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape as xml

import pytest
from click.testing import CliRunner
from discord_server import FORUM, DiscordServer, limit_errors, n, shown
from publish_support import SECRET, write_config

from bot.channels.discord.channel import DiscordChannel, outbox_dir
from bot.channels.discord.edit import recorded
from bot.cli import cli
from bot.cli.history import history_json
from bot.publish import ledger
from bot.publish.pipeline import publish_ready
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

WEEK, NEXT = "2023-02-20..2023-02-26", "2023-02-27..2023-03-05"
HEADINGS = {WEEK: "Top ML Papers of the Week (Feb 20-26)", NEXT: "Top ML Papers of the Week (Feb 27 - Mar 5)"}
HOSTILE = "@everyone <script>**bold**"
LOREM = "Sparse experts route each token to a few of many feed-forward blocks, halving compute at equal quality. "
LONG = (LOREM * 45)[:4000].rsplit(" ", 1)[0]  # a 4,000-character summary: one paper fills most of a message
WEBHOOK, TOKEN = "PAPERBOT_DISCORD_WEBHOOK_URL", "PAPERBOT_DISCORD_BOT_TOKEN"
ROLE = "123456789012345678"
CHECKED: list[int] = []  # messages whose limits a test checked (the report's count)


def papers(count: int, summary: str = "What it found, in one line.", start: int = 1) -> list[tuple[str, str]]:
    return [(f"Paper number {i}", summary) for i in range(start, start + count)]


def digest(weeks: dict[str, list[tuple[str, str]]]) -> bytes:
    """A digest README with these weeks (newest first), each paper a table row with two links."""
    lines = ["# Papers We Liked This Week", ""]
    for key in sorted(weeks, reverse=True):
        lines += [f"## {HEADINGS[key]}", "", "| **Paper**  | **Links** |", "| ------------- | ------------- |"]
        base = 0 if key == WEEK else 100
        lines += [f"| {i}) **{title}** - {summary} | [Paper](https://arxiv.org/abs/2302.{base + i:05d}), "
                  f"[Code](https://github.com/lab/r{base + i}) |" for i, (title, summary) in enumerate(weeks[key], 1)]
        lines.append("")
    return "\n".join(lines).encode()


def poll(store: Store, cfg, weeks: dict[str, list[tuple[str, str]]], version: str, at: datetime) -> None:
    """One poll of the digest as the tracker records it, then the gate (long after the weeks ended)."""
    observe(store, "dair", parse_document(digest(weeks), at.date(), "digest"), at, version, cfg.publish)
    release(store, at + timedelta(days=14), cfg.publish)


@pytest.fixture
def d():
    """Discord allows 5 requests per 2 s per webhook; the tests not about that get more, so nobody waits."""
    with DiscordServer(rate=50) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def count_checked():
    """How many messages these tests checked against Discord's limits (printed with `pytest -s`)."""
    yield
    print(f"\ndiscord publish tests: {sum(CHECKED)} messages checked against Discord's limits")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    for name in (WEBHOOK, TOKEN, "PAPERBOT_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def setup(tmp_path: Path, d: DiscordServer, monkeypatch, week: list[tuple[str, str]] | None, *, extra: str = "",
          webhook: bool = True, bot: bool = False):
    lines = f'api_base = "{d.api_base}"\ntimeout = "2s"\nmax_wait = "5s"\n' + extra
    if bot:
        lines += f'channel_id = "{d.webhook_channel}"\n'
    cfg = write_config(tmp_path, None, discord=lines)
    if webhook:
        monkeypatch.setenv(WEBHOOK, d.webhook_url())
    if bot:
        monkeypatch.setenv(TOKEN, d.bot_token)
    store = Store.open(cfg.db_path)
    if week is not None:
        poll(store, cfg, {WEEK: week}, "v1", datetime(2023, 2, 27, 12, tzinfo=UTC))
        assert store.week("dair", WEEK).state == "ready"
    return cfg, store


def publish(cfg, store, now: datetime | None = None):
    reports = publish_ready(cfg, store, now or datetime.now(UTC))
    return {(r.channel, r.key): r for r in reports}


def ledger_ids(store: Store, key: str = WEEK) -> list[str]:
    return [r["remote_id"] for r in ledger.rows_in(store, "dair", key, "discord", ledger.STATES)]


def created(d: DiscordServer) -> list:
    """The create requests Discord accepted, in order; each checked against every limit and for
    `allowed_mentions` on the wire."""
    ok = [s for s in d.posts() if s.status == 200]
    for s in ok:
        assert limit_errors(s.body) == {} and len(s.body["embeds"]) <= 10
        assert sum(n(e.get("title")) + n(e.get("description")) + n((e.get("footer") or {}).get("text"))
                   + n((e.get("author") or {}).get("name")) for e in s.body["embeds"]) <= 6000
        assert "allowed_mentions" in s.body and s.body["allowed_mentions"]["parse"] == []
    CHECKED.append(len(ok))
    return ok


def titles(d: DiscordServer, ids: list[str]) -> list[str]:
    return [shown(e["title"]) for mid in ids for e in d.messages[mid].embeds]


def test_a_ten_paper_week_is_one_announcement_within_every_limit_and_its_intro_pings_nobody(
        tmp_path, d, monkeypatch):
    """issue #12: a 10-paper week: one message (an intro line, 10 embeds), accepted by the server's limit
    checks, `allowed_mentions` on the wire, the ledger holding its id; the week is published."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(10))
    reps = publish(cfg, store)
    assert reps[("discord", WEEK)].published and store.week("dair", WEEK).state == "published"
    [post] = created(d)
    ids = ledger_ids(store)
    assert ids == list(d.messages) and len(ids) == 1
    assert post.body["allowed_mentions"] == {"parse": []} and post.query["wait"] == ["1"]
    assert titles(d, ids) == [f"Paper number {i}" for i in range(1, 11)]
    intro = d.messages[ids[0]]
    # issue #16: the title once without its dates, then the dates once
    assert shown(intro.content).startswith("**Top ML Papers of the Week** · 20–26 February 2023: 10 papers")
    assert intro.pings == [] and not re.search(r"(?<!\\)(@everyone|@here|<@)", intro.content)


def test_a_hostile_title_shows_as_typed_and_pings_nobody(tmp_path, d, monkeypatch):
    """issue #12: a feed whose title and a paper's title and summary hold `@everyone`, `<script>`, markdown and
    mention forms: the recorded request shows each as typed (once Discord's escapes are read) and pings nobody,
    by `allowed_mentions` and by the text itself."""
    cfg, store = setup(tmp_path, d, monkeypatch, None)
    summary = "Says @here and <@123456789012345678> and __underlined__ and [a link](https://evil.example)."
    items = [(HOSTILE, summary), ("A plain paper", "Nothing odd.")]
    body = "".join(f"<item><title>{xml(xml(t))}</title><link>https://arxiv.org/abs/2401.{i:05d}</link>"
                   f"<guid>https://arxiv.org/abs/2401.{i:05d}</guid><description>{xml(xml(s))}</description>"
                   "<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate></item>" for i, (t, s) in enumerate(items))
    raw = (f"<?xml version='1.0'?><rss version='2.0'><channel><title>{xml('@everyone Weekly <@&' + ROLE + '>')}"
           f"</title>{body}</channel></rss>").encode()
    observe(store, "dair", parse_document(raw, date(2024, 1, 9), "feed"), datetime(2024, 1, 9, tzinfo=UTC), "v1",
            cfg.publish)
    release(store, datetime(2024, 1, 30, tzinfo=UTC), cfg.publish)
    publish(cfg, store)
    [post] = created(d)
    [mid] = ledger_ids(store, "2024-W01")
    embed = post.body["embeds"][0]
    assert shown(embed["title"]) == HOSTILE and embed["title"] != HOSTILE
    assert shown(embed["description"]).startswith(summary)
    assert post.body["allowed_mentions"] == {"parse": []}
    assert d.messages[mid].pings == []
    assert "@everyone Weekly" in shown(post.body["content"])  # the intro names the feed, and pings nobody
    assert not re.search(r"(?<!\\)(@everyone|@here|<@)", post.body["content"] + embed["title"] + embed["description"])


def test_a_role_ping_is_the_only_mention_and_only_in_the_intro(tmp_path, d, monkeypatch):
    """issue #12: with `role_id`, the intro starts with that role's ping, `allowed_mentions` allows exactly it,
    and no other message may ping anyone."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(3, LONG), extra=f'role_id = "{ROLE}"\n')
    publish(cfg, store)
    posts = created(d)
    ids = ledger_ids(store)
    assert len(posts) == len(ids) == 3
    assert posts[0].body["content"].startswith(f"<@&{ROLE}> ")
    assert d.messages[ids[0]].pings == [f"<@&{ROLE}>"]
    assert [str(r) for r in posts[0].body["allowed_mentions"].get("roles", [])] == [ROLE]
    assert all(p.body["allowed_mentions"] == {"parse": []} and d.messages[m].pings == []
               for p, m in zip(posts[1:], ids[1:], strict=True))


def test_thirty_papers_with_long_summaries_are_several_valid_messages_in_order(tmp_path, d, monkeypatch):
    """issue #12: 30 papers with 4,000-character summaries: several messages, each accepted by the server's limit
    checks, their papers in the digest's order, the ledger's ids in the order Discord made them."""
    d.rate = 100
    week = papers(30, LONG)
    cfg, store = setup(tmp_path, d, monkeypatch, week)
    assert len(store.papers("dair", WEEK)[0][1].summary) > 3900
    assert publish(cfg, store)[("discord", WEEK)].published
    posts = created(d)
    ids = ledger_ids(store)
    assert 1 < len(posts) == len(ids) == len(d.messages)
    assert titles(d, ids) == [t for t, _ in week]
    assert ids == sorted(ids, key=int)


def test_a_429_then_success_is_one_announcement_without_a_duplicate(tmp_path, d, monkeypatch):
    """issue #12: a short 429 (with `retry_after` and `Via`) is waited out inside discord.py, and the message is
    made once."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(3, LONG))
    d.fail_next("POST /webhooks/", status=429, body={"message": "You are being rate limited.", "retry_after": 0.2,
                                                     "global": False}, headers={"X-RateLimit-Scope": "user"})
    assert publish(cfg, store)[("discord", WEEK)].published
    assert [s.status for s in d.posts()] == [429, 200, 200, 200]
    ids = ledger_ids(store)
    assert len(created(d)) == len(d.messages) == len(ids) == 3 and titles(d, ids) == [f"Paper number {i}"
                                                                                    for i in (1, 2, 3)]


def test_a_long_429_holds_the_channel_in_the_database_until_then_and_the_week_completes_after(
        tmp_path, d, monkeypatch):
    """issue #12: a 429 asking for 60 s (over `max_wait`) is not slept through: the channel's rate-limited-until
    is in the database, a run before it sends nothing, and a run after it completes the week, once."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(3, LONG))
    d.fail_next("POST /webhooks/", status=429, body={"message": "You are being rate limited.", "retry_after": 60.0,
                                                     "global": False})
    t0 = datetime.now(UTC)
    started = time.monotonic()
    rep = publish(cfg, store, t0)[("discord", WEEK)]
    assert time.monotonic() - started < 30 and not rep.published
    until, why = ledger.channel_until(store, "discord")
    assert t0 + timedelta(seconds=50) < until < t0 + timedelta(seconds=75) and "429" in why
    assert d.messages == {} and len(d.requests) == 1
    [entry] = history_json(store, store.week("dair", WEEK))
    assert entry["channels"]["discord"]["waits_until"] == until.isoformat()

    rep = publish(cfg, store, t0 + timedelta(seconds=30))[("discord", WEEK)]
    assert len(d.requests) == 1 and not rep.published and "waits until" in rep.note

    assert publish(cfg, store, until + timedelta(seconds=1))[("discord", WEEK)].published
    ids = ledger_ids(store)
    assert len(created(d)) == len(ids) == len(d.messages) == 3 and titles(d, ids) == [f"Paper number {i}"
                                                                                    for i in (1, 2, 3)]
    assert store.week("dair", WEEK).state == "published"


def test_a_5xx_on_a_create_is_retried_with_backoff_and_makes_one_message(tmp_path, d, monkeypatch):
    """issue #12: a 503 to a create is not slept through by discord.py: the pipeline retries it after its
    backoff, and the message is made once. Issue #21: a webhook alone cannot know Discord did not store it, so
    the resend is recorded as a possible duplicate (here it was not one: the 503 came before the message)."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(2))
    d.fail_next("POST /webhooks/", status=503)
    assert publish(cfg, store)[("discord", WEEK)].published
    assert [s.status for s in d.posts()] == [503, 200]
    [row] = ledger.rows_in(store, "dair", WEEK, "discord", ledger.STATES)
    assert row["state"] == "sent" and row["attempts"] == 2 and len(created(d)) == len(d.messages) == 1
    assert [p["unit"] for p in ledger.possible_duplicates(store, "dair", WEEK, "discord")] == ["message-1"]


def test_a_failed_channel_lookup_after_a_post_never_sends_that_message_again(tmp_path, d, monkeypatch):
    """issue #15 (found by the chaos test, tests/test_e2e.py): with a webhook and a bot, the bot looked the
    channel's type up (to crosspost in an announcement channel) after the webhook had posted the message; a
    5xx, timeout or 429 on that lookup failed the unit, and the next try posted the message a second time. The
    lookup now comes before the post: a failed lookup posts nothing, and the message is made once."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(2), bot=True)
    d.fail_next("GET /channels/", status=503)
    assert publish(cfg, store)[("discord", WEEK)].published
    assert len(created(d)) == len(d.messages) == 1, [titles(d, [m]) for m in d.messages]
    assert ledger_ids(store) == list(d.messages)


@pytest.mark.parametrize("bot", [False, True], ids=["webhook-alone", "with-a-bot"])
def test_a_lost_answer_is_looked_for_with_a_bot_and_else_sent_again_as_a_possible_duplicate(
        tmp_path, d, monkeypatch, caplog, bot):
    """issue #12 (README "Discord announcements"): the message was made and its answer lost. With a bot, paperbot
    reads the channel back, finds it, and sends nothing twice. A webhook cannot read back: as email does with a
    row found `sending`, it is sent again and the log says it may show twice, instead of the week waiting for
    `paperbot resolve` forever."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(2, LONG), bot=bot)
    d.fail_next("POST /webhooks/", kind="drop_after_create")
    with caplog.at_level(logging.WARNING):
        assert publish(cfg, store)[("discord", WEEK)].published
    ids = ledger_ids(store)
    made = [titles(d, [m]) for m in d.messages]
    if bot:
        assert made == [["Paper number 1"], ["Paper number 2"]] and ids == list(d.messages)
        assert "twice" not in caplog.text
    else:
        assert made == [["Paper number 1"], ["Paper number 1"], ["Paper number 2"]]
        assert ids == list(d.messages)[1:]
        assert "may have been posted already" in caplog.text and "shows it twice" in caplog.text
    dups = [(h["unit"], h["state"]) for h in history_json(store, None)[0]["channels"]["discord"]["possible_duplicates"]]
    assert dups == ([] if bot else [("message-1", "sent")])  # issue #21: said in `paperbot history`
    assert d.webhook_token not in caplog.text


# -- a real `paperbot publish` killed mid-announcement ------------------------------------------------------------
def start(cfg_path: Path, d: DiscordServer, bot: bool) -> subprocess.Popen:
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET, WEBHOOK: d.webhook_url()}
    for name in (TOKEN, "PAPERBOT_SMTP_PASSWORD"):
        env.pop(name, None)
    if bot:
        env[TOKEN] = d.bot_token
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "publish"], cwd=cfg_path.parent,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("bot", [False, True], ids=["webhook-alone", "with-a-bot"])
def test_a_killed_publish_restarted_completes_the_announcement_in_order_without_a_duplicate(
        tmp_path, d, monkeypatch, bot):
    """issue #12: a real `paperbot publish` SIGKILLed mid-announcement, several times, and restarted: the week
    is complete, in order, each message once. Webhook alone: each kill lands while a create is held by the
    server, before the message is made (the row is `sending`; the restart sends it again, as it must). With a
    bot: each kill lands after the message was made and before its answer came back; the restart reads the
    channel back and finds it, so nothing is sent twice although paperbot never learned the id."""
    week = papers(7, LONG)
    cfg, store = setup(tmp_path, d, monkeypatch, week, bot=bot)
    store.close()
    if bot:
        d.answer_delay = 0.3
    else:
        d.create_delay = 0.3
    kills = (2, 5)
    flights = []
    for made in kills:  # kill once `made` messages exist and the next one is in flight
        proc = start(cfg.path, d, bot)
        deadline = time.monotonic() + 60
        while not (len(d.messages) >= made and (d.answering if bot else d.holding)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the announcement made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        d.idle()
        con = Store.open(cfg.db_path)
        flights.append([r["unit"] for r in ledger.rows_in(con, "dair", WEEK, "discord", ("sending",))])
        con.close()
    assert all(len(f) == 1 for f in flights), flights  # each kill left the message in flight `sending`
    d.create_delay = d.answer_delay = 0.0
    proc = start(cfg.path, d, bot)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    store = Store.open(cfg.db_path)
    ids = ledger_ids(store)
    assert ids == list(d.messages) and titles(d, ids) == [t for t, _ in week]  # complete, in order, once
    assert len(created(d)) == len(ids) - (len(kills) if bot else 0)  # with a bot, the killed runs' answers were lost
    assert ledger.counts(store, "dair", WEEK, "discord")["sent"] == len(ids)
    assert store.week("dair", WEEK).state == "published"
    assert d.webhook_token not in err.decode()


def test_a_deleted_webhook_stops_the_channel_with_a_clear_error_in_history_and_the_log_never_a_loop(
        tmp_path, d, monkeypatch, caplog):
    """issue #12: a 404 (Unknown Webhook, 10015) is a refusal: the message is `refused` with an error saying what
    to fix, shown by `paperbot history` and logged; later runs send nothing until the operator settles it."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(3, LONG))
    d.webhook_id = "1200000000000000099"  # the webhook the URL names no longer exists
    with caplog.at_level(logging.INFO):
        rep = publish(cfg, store)[("discord", WEEK)]
    assert not rep.published and d.messages == {} and len(d.requests) == 1
    assert "Unknown Webhook" in caplog.text and "make a new one and set PAPERBOT_DISCORD_WEBHOOK_URL" in caplog.text
    rows = ledger.rows_in(store, "dair", WEEK, "discord", ledger.STATES)
    assert [r["state"] for r in rows] == ["refused", "planned", "planned"]
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "history", WEEK], obj={})
    assert out.exit_code == 0, out.output
    assert "refused" in out.output and "10015" in out.output and "make a new one" in out.output
    for _ in range(3):
        publish(cfg, store)
    assert len(d.requests) == 1 and store.week("dair", WEEK).state == "ready"  # never a loop
    assert d.webhook_token not in caplog.text + out.output


@pytest.mark.parametrize("enabled", [True, False], ids=["edit_on_correction", "off"])
def test_a_correction_in_the_source_edits_the_posted_message_once_when_enabled_and_only_then(
        tmp_path, d, monkeypatch, caplog, enabled):
    """issue #12: a week that went out is corrected in the source (a title fixed, seen by a later poll of the
    tracker; its version's time is before the announcement, as a git commit's date can be). With
    `edit_on_correction`, the next round edits the one message that shows it, and records the edit in
    `discord_edits`; a poll that changes nothing then costs no request at all. Off: nothing is read or edited."""
    week = papers(3, LONG)
    cfg, store = setup(tmp_path, d, monkeypatch, week, extra=f"edit_on_correction = {str(enabled).lower()}\n")
    assert publish(cfg, store)[("discord", WEEK)].published
    ids, before = ledger_ids(store), len(d.requests)
    poll(store, cfg, {WEEK: week}, "v1-again", datetime(2023, 2, 28, tzinfo=UTC))  # the same text: no change
    publish(cfg, store)
    assert len(d.requests) == before

    fixed = [week[0], ("Paper number 2, corrected", week[1][1]), week[2]]
    poll(store, cfg, {WEEK: fixed}, "v2", datetime(2023, 3, 1, tzinfo=UTC))
    with caplog.at_level(logging.INFO):
        publish(cfg, store)
    patches = [s for s in d.requests if s.method == "PATCH"]
    if not enabled:
        assert len(d.requests) == before and patches == [] and recorded(store, "dair", WEEK) == []
        assert titles(d, ids) == [t for t, _ in week] and "left as they are" in caplog.text
        return
    assert len(patches) == 1 and patches[0].path.endswith(f"/messages/{ids[1]}") and patches[0].status == 200
    assert patches[0].body["allowed_mentions"] == {"parse": []} and limit_errors(patches[0].body) == {}
    assert titles(d, ids) == ["Paper number 1", "Paper number 2, corrected", "Paper number 3"]
    assert [(e["position"], e["message_id"], e["changed"]) for e in recorded(store, "dair", WEEK)] == [
        (1, ids[1], ["embed 1 title"])]
    CHECKED.append(1)
    after = len(d.requests)
    publish(cfg, store)  # the correction is handled: nothing more
    poll(store, cfg, {WEEK: fixed}, "v2-again", datetime(2023, 3, 2, tzinfo=UTC))
    publish(cfg, store)
    assert len(d.requests) == after and len(recorded(store, "dair", WEEK)) == 1
    assert len(d.messages) == 3  # edited, never posted again


def test_a_forum_webhook_makes_one_post_per_week_with_the_rest_inside(tmp_path, d, monkeypatch):
    """issue #12: `forum = true`: each week's first message opens a post named for the week (`thread_name`), and
    the week's other messages go into that post; the next week is a post of its own."""
    d.make_forum()
    first, second = papers(3, LONG), papers(2, LONG, start=11)
    cfg, store = setup(tmp_path, d, monkeypatch, first, extra="forum = true\n")
    assert publish(cfg, store)[("discord", WEEK)].published
    poll(store, cfg, {WEEK: first, NEXT: second}, "v2", datetime(2023, 3, 6, 12, tzinfo=UTC))
    assert store.week("dair", NEXT).state == "ready"
    assert publish(cfg, store)[("discord", NEXT)].published
    posts = created(d)
    a, b = ledger_ids(store, WEEK), ledger_ids(store, NEXT)
    assert len(posts) == 5
    assert [c for c, v in d.channels.items() if v.get("parent") == d.webhook_channel] == [a[0], b[0]]
    assert d.channels[d.webhook_channel]["type"] == FORUM
    assert posts[0].body["thread_name"].startswith("Top ML Papers of the Week (Feb 20-26)")
    assert posts[3].body["thread_name"].startswith("Top ML Papers of the Week (Feb 27 - Mar 5)")
    assert [p.query.get("thread_id") for p in posts] == [None, [a[0]], [a[0]], None, [b[0]]]
    assert all("thread_name" not in p.body for p in (posts[1], posts[2], posts[4]))
    assert [m.id for m in d.in_channel(a[0])] == a and [m.id for m in d.in_channel(b[0])] == b
    assert titles(d, a) == [t for t, _ in first] and titles(d, b) == [t for t, _ in second]


def test_without_credentials_it_is_a_trial_to_the_outbox_and_preview_shows_the_same(tmp_path, d, monkeypatch):
    """issue #12: nothing configured: each message's exact body goes to state/outbox/discord/<source>/<key>/ as
    JSON (nothing is requested), the ledger records `trial`, the week stays ready, and `paperbot preview WEEK
    --channel discord` shows the same messages (its `--out` files are the same bytes)."""
    week = papers(12, LONG)
    cfg, store = setup(tmp_path, d, monkeypatch, week, webhook=False)
    rep = publish(cfg, store)[("discord", WEEK)]
    assert rep.trial and rep.done and not rep.published and d.requests == []
    folder = outbox_dir(cfg, "dair", WEEK)
    files = sorted(folder.glob("*.json"))
    payloads = DiscordChannel(cfg, environ={}).render(store, store.week("dair", WEEK)).payloads
    assert [f.name for f in files] == [f"{i:03d}.json" for i in range(1, len(payloads) + 1)]
    bodies = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    assert bodies == list(payloads) and all(limit_errors(b) == {} for b in bodies)
    CHECKED.append(len(bodies))
    assert [shown(e["title"]) for b in bodies for e in b["embeds"]] == [t for t, _ in week]
    assert set(ledger.counts(store, "dair", WEEK, "discord").items()) >= {("trial", len(files))}
    assert store.week("dair", WEEK).state == "ready"

    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "preview", WEEK, "--channel", "discord", "--out",
                                   str(tmp_path / "preview")], obj={})
    assert out.exit_code == 0, out.output
    assert f"{len(files)} message(s); sending: outbox" in out.output
    assert all(f"- Paper number {i}" in out.output for i in range(1, 13))
    shown_files = sorted((tmp_path / "preview" / "discord" / "dair" / WEEK).glob("*.json"))
    assert [f.read_bytes() for f in shown_files] == [f.read_bytes() for f in files]



def test_an_unusable_discord_variable_stops_discord_in_one_line_and_email_goes_on(tmp_path, d, monkeypatch, caplog):
    """issue #12 wiring: Discord is on by default, so a Discord variable that cannot be used (not a webhook URL)
    must not stop email: Discord stops with one line naming the variable (never its value), each round, and
    nothing is sent or marked; the other channels publish."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(2), webhook=False)
    monkeypatch.setenv(WEBHOOK, "https://example.org/hooks/secret-value")
    with caplog.at_level(logging.INFO):
        reps = publish(cfg, store)
    assert reps[("email", WEEK)].done and reps[("email", WEEK)].trial
    rep = reps[("discord", WEEK)]
    assert not rep.done and not rep.trial and "PAPERBOT_DISCORD_WEBHOOK_URL is not a Discord webhook URL" in (
        rep.stats.stopped)
    assert d.requests == [] and ledger.counts(store, "dair", WEEK, "discord")["planned"] == 1
    assert "is not a Discord webhook URL" in caplog.text and "secret-value" not in caplog.text
    assert store.week("dair", WEEK).state == "ready"  # it waits for Discord, which is meant to be live
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "preview", WEEK, "--channel", "discord"], obj={})
    assert out.exit_code == 0 and "sending: nothing: discord: PAPERBOT_DISCORD_WEBHOOK_URL is not" in out.output


def test_a_broken_intro_template_is_one_line_from_paperbot_publish_and_plans_nothing(tmp_path, d, monkeypatch):
    """issue #12 wiring: `[discord] intro` naming an unknown field fails when the week is rendered: `paperbot
    publish` says so in one line naming the key (as for a broken email template), and Discord plans nothing."""
    cfg, store = setup(tmp_path, d, monkeypatch, papers(2), extra='intro = "{{ titel }}"\n')
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "publish", "--channel", "discord"], obj={})
    assert out.exit_code == 1 and "discord.intro" in out.output and "titel" in out.output, out.output
    assert isinstance(out.exception, SystemExit)  # a ClickException: one line, no traceback
    assert ledger.publication(store, "dair", WEEK, "discord") is None and d.requests == []
