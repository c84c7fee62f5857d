"""Issue #12: the Discord channel sending a week through the real discord.py client, its API base pointed at
tests/discord_server.py on 127.0.0.1 (`[discord] api_base`, i.e. `discord.http.Route.BASE`). The server checks
Discord's limits itself and records every request, so the assertions are on what Discord would have received.

The units are sent the way the pipeline's ordered chains send them (chains.md): one at a time in plan order,
each given the ids of the messages before it (`Unit.prior`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from discord_server import NEWS, DiscordServer, shown

from bot.channels import load_config
from bot.channels.base import PermanentError, RateLimited, TransientError, Uncertain, Unit
from bot.channels.discord.channel import DiscordChannel, outbox_dir
from bot.channels.discord.edit import recorded
from bot.store import Store
from bot.track.model import Link, Paper

NOW = datetime(2024, 1, 8, 12, tzinfo=UTC)
KEY = "2024-01-01..2024-01-07"
HOSTILE = "@everyone <script>**bold**"
LOREM = "Sparse experts route each token to a few of many feed-forward blocks, halving compute at equal quality. "


def paper(i: int, title: str | None = None, summary: str = "A short summary.") -> Paper:
    return Paper(title or f"Paper number {i}", summary, (Link("Paper", f"https://arxiv.org/abs/2401.{i:05d}"),
                                                         Link("Code", f"https://github.com/lab/r{i}")), number=i)


@pytest.fixture
def discord_server():
    """Discord's limit is 5 requests per 2 s per webhook; tests not about it get more, so nobody waits."""
    with DiscordServer(rate=50) as d:
        yield d


def setup(tmp_path, d: DiscordServer, papers, *, webhook=True, bot=False, extra="", timeout="2s"):
    (tmp_path / "paperbot.toml").write_text(
        f'state_dir = "state"\n[web]\nbase_url = "https://papers.example.org"\n[discord]\nenabled = true\n'
        f'api_base = "{d.api_base}"\ntimeout = "{timeout}"\nmax_wait = "10s"\n'
        + (f'channel_id = "{d.webhook_channel}"\n' if bot else "") + extra, encoding="utf-8")
    cfg = load_config(tmp_path / "paperbot.toml")
    store = Store.open(cfg.db_path)
    store.ensure_source("dair")
    store.upsert_week("dair", KEY, title="Top ML Papers of the Week", state="ready", first_seen=NOW, last_changed=NOW,
                      ready_at=NOW, fingerprint="", text_hash="", titles=[], present=True, flagged=False,
                      backfill=False, placeholders=False, n_papers=len(papers), first_day=date(2024, 1, 1),
                      last_day=date(2024, 1, 7))
    store.replace_papers("dair", KEY, papers)
    env = {**({"PAPERBOT_DISCORD_WEBHOOK_URL": d.webhook_url()} if webhook else {}),
           **({"PAPERBOT_DISCORD_BOT_TOKEN": d.bot_token} if bot else {})}
    return cfg, store, DiscordChannel(cfg, environ=env)


def send_chain(channel, store, *, first: int = 0, prior: tuple[str, ...] = ()) -> list[str]:
    """What the pipeline does for an ordered channel: plan, then send unit by unit with the ids so far."""
    week = store.week("dair", KEY)
    units, rendition = channel.plan(store, week), channel.render(store, week)
    sender, ids = channel.open_sender(rendition), list(prior)
    try:
        for u in units[first:]:
            ids.append(sender.send(replace(u, prior=tuple(ids))))
    finally:
        sender.close()
    return ids


def test_a_ten_paper_week_reaches_discord_within_every_limit_with_allowed_mentions(tmp_path, discord_server):
    """issue #12: one announcement, accepted by the server's limit checks, the body on the wire exactly the
    composed payload, `allowed_mentions` in it."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(i) for i in range(1, 11)])
    assert channel.live and channel.ordered
    ids = send_chain(channel, store)
    posts = d.posts()
    assert len(ids) == len(posts) == 1 and [s.status for s in posts] == [200]
    rendition = channel.render(store, store.week("dair", KEY))
    assert posts[0].body == rendition.payloads[0]
    assert posts[0].body["allowed_mentions"] == {"parse": []}
    assert posts[0].query["wait"] == ["1"]
    msg = d.messages[ids[0]]
    assert [shown(e["title"]) for e in msg.embeds] == [f"Paper number {i}" for i in range(1, 11)]


def test_a_title_of_everyone_and_markup_pings_nobody_and_shows_as_typed(tmp_path, discord_server):
    """issue #12: the recorded request proves it: no mention allowed, the title shown as typed, and nothing
    the server would ping even by the text alone."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1, HOSTILE, summary=HOSTILE)])
    [mid] = send_chain(channel, store)
    body = d.posts()[0].body
    assert body["allowed_mentions"] == {"parse": []}
    assert shown(body["embeds"][0]["title"]) == HOSTILE
    assert d.messages[mid].pings == []
    assert "@everyone" not in body["content"]


def test_thirty_long_papers_go_out_as_several_valid_messages_in_order(tmp_path, discord_server):
    """issue #12: 30 papers with 4,000-character summaries: several messages, each accepted by the server's
    limit checks (an over-limit message would be a 400 and fail here), in paper order."""
    d = discord_server
    d.rate = 100
    papers = [paper(i, summary=(LOREM * 40)[:4000].rsplit(" ", 1)[0]) for i in range(1, 31)]
    _, store, channel = setup(tmp_path, d, papers)
    ids = send_chain(channel, store)
    assert 1 < len(ids) == len(d.posts()) and all(s.status == 200 for s in d.posts())
    titles = [shown(e["title"]) for mid in ids for e in d.messages[mid].embeds]
    assert titles == [p.title for p in papers]
    assert ids == sorted(ids, key=int)


def test_a_short_429_is_waited_out_by_discord_py_and_makes_one_message(tmp_path, discord_server):
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)])
    d.fail_next("POST /webhooks/", status=429, body={"message": "You are being rate limited.", "retry_after": 0.2,
                                                     "global": False}, headers={"X-RateLimit-Scope": "user"})
    ids = send_chain(channel, store)
    assert [s.status for s in d.posts()] == [429, 200]
    assert len(d.messages) == 1 and list(d.messages) == ids


def test_a_long_429_is_rate_limited_until_at_once_not_slept_through(tmp_path, discord_server):
    """issue #12: a 429 asking for 60 s (over `max_wait`) comes out as RateLimited with `until`, and the
    call returns long before those 60 s; nothing is posted."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)])
    d.fail_next("POST /webhooks/", status=429, body={"message": "You are being rate limited.", "retry_after": 60.0,
                                                     "global": False})
    started = time.monotonic()
    with pytest.raises(RateLimited) as e:
        send_chain(channel, store)
    assert time.monotonic() - started < 30
    until = e.value.until - datetime.now(UTC)
    assert timedelta(seconds=50) < until <= timedelta(seconds=61)
    assert d.messages == {} and len(d.posts()) == 1
    assert d.webhook_token not in str(e.value)


def test_a_429_without_discords_via_header_is_rate_limited_too(tmp_path, discord_server):
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)])
    d.fail_next("POST /webhooks/", status=429, body={"message": "banned", "retry_after": 2}, headers={"Via": None})
    with pytest.raises(RateLimited):
        send_chain(channel, store)


def test_a_spent_bucket_with_a_far_reset_refuses_the_next_message_instead_of_sleeping(tmp_path):
    """issue #12: discord.py would sleep until a spent bucket resets (here 30 s) after the first message; the
    second one comes out as RateLimited, without a request."""
    with DiscordServer(rate=1, per=30.0) as d:
        _, store, channel = setup(tmp_path, d, [paper(i, summary=LOREM * 38) for i in range(1, 3)])
        started = time.monotonic()
        with pytest.raises(RateLimited) as e:
            send_chain(channel, store)
        assert time.monotonic() - started < 20
        assert len(d.posts()) == 1 and len(d.messages) == 1
        assert e.value.until > datetime.now(UTC) + timedelta(seconds=20)


def test_discords_own_webhook_rate_is_kept_without_a_single_429(tmp_path):
    """issue #12: at Discord's 5 requests per 2 s, a 7-message week waits out the spent bucket (a short reset,
    within `max_wait`) inside discord.py and goes out whole, in order, never refused."""
    with DiscordServer() as d:
        _, store, channel = setup(tmp_path, d, [paper(i, summary=LOREM * 38) for i in range(1, 8)])
        ids = send_chain(channel, store)
        assert len(ids) == 7 and [s.status for s in d.posts()] == [200] * 7
        assert [shown(d.messages[m].embeds[0]["title"]) for m in ids] == [f"Paper number {i}" for i in range(1, 8)]


def test_a_5xx_comes_back_at_once_uncertain_for_a_create_transient_for_a_read(tmp_path, discord_server):
    """issue #12: discord.py would sleep 1+3+5+7+9 s through 5xx answers; the pipeline decides instead. Issue
    #21: Discord may store a message and still answer 500, so a 5xx to a create is Uncertain (read back before
    any resend); to a read it is only transient."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)], bot=True)
    d.fail_next("POST /webhooks/", status=502)
    with pytest.raises(Uncertain) as e:
        send_chain(channel, store)
    assert "502" in str(e.value) and d.webhook_token not in str(e.value)
    assert len(d.posts()) == 1 and d.messages == {}
    d.fail_next("GET /channels/", status=503)
    with pytest.raises(TransientError) as t:
        channel.client().history(d.webhook_channel)
    assert not isinstance(t.value, RateLimited) and "503" in str(t.value)


def test_a_deleted_webhook_is_a_permanent_error_saying_what_to_do(tmp_path, discord_server, caplog):
    """issue #12: a 404 for the webhook (code 10015) stops the channel with a clear message, no token in it."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)])
    d.webhook_id = "1200000000000000099"  # the webhook was deleted
    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentError) as e:
        send_chain(channel, store)
    assert "10015" in str(e.value) and "Unknown Webhook" in str(e.value)
    assert "PAPERBOT_DISCORD_WEBHOOK_URL" in str(e.value)
    assert d.webhook_token not in str(e.value) and d.webhook_token not in caplog.text
    assert "/webhooks/1200000000000000001/***" in caplog.text  # urllib3's debug line, redacted


def test_a_message_over_a_limit_is_refused_by_discord_with_50035_and_is_permanent(tmp_path, discord_server):
    """The server refuses what Discord refuses (so the tests above prove the limits), and the client reports it
    as a permanent error naming the code: resending the same body would only be refused again."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)])
    client = channel.client()
    try:
        with pytest.raises(PermanentError, match="50035") as e:
            client.execute({"content": "x" * 2001, "embeds": [], "allowed_mentions": {"parse": []}})
        assert "content" in str(e.value)
    finally:
        client.close()
    assert d.posts()[0].status == 400 and d.messages == {}


def test_a_connection_refused_is_transient_never_uncertain_and_names_no_token(tmp_path):
    """Nothing reached Discord: plainly retried later. The error (requests names the URL) is redacted."""
    with DiscordServer() as d:
        _, store, channel = setup(tmp_path, d, [paper(1)])
    with pytest.raises(TransientError) as e:  # the server is gone: its port refuses
        send_chain(channel, store)
    assert not isinstance(e.value, RateLimited) and "ConnectionError" in str(e.value)
    assert d.webhook_token not in str(e.value) and "/webhooks/1200000000000000001/***" in str(e.value)


def test_every_request_has_the_timeout(tmp_path, discord_server):
    """issue #12: a server that does not answer: the create comes back Uncertain after `timeout` (1 s)."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)], timeout="1s")
    d.fail_next("POST /webhooks/", kind="hang", seconds=10)
    started = time.monotonic()
    with pytest.raises(Uncertain):
        send_chain(channel, store)
    assert time.monotonic() - started < 8


def test_a_forum_webhook_makes_one_post_named_for_the_week_and_the_rest_goes_into_it(tmp_path, discord_server):
    d = discord_server
    d.make_forum()
    papers = [paper(i, summary=LOREM * 38) for i in range(1, 4)]
    cfg, store, channel = setup(tmp_path, d, papers, extra="forum = true\nedit_on_correction = true\n")
    ids = send_chain(channel, store)
    posts = d.posts()
    assert len(ids) == 3 and [p.status for p in posts] == [200, 200, 200]
    assert posts[0].body["thread_name"] == "Top ML Papers of the Week (1–7 January 2024)"
    assert all("thread_name" not in p.body for p in posts[1:])
    assert [p.query.get("thread_id") for p in posts] == [None, [ids[0]], [ids[0]]]
    threads = [c for c, v in d.channels.items() if v.get("parent") == d.webhook_channel]
    assert threads == [ids[0]] and [m.id for m in d.in_channel(ids[0])] == ids
    store.replace_papers("dair", KEY, [papers[0], papers[1], replace(papers[2], title="Paper number 3, fixed")])
    edits = channel.edit(store, store.week("dair", KEY), ids, NOW)
    assert [(e.position, e.changed) for e in edits] == [(2, ("embed 1 title",))]
    assert shown(d.messages[ids[2]].embeds[0]["title"]) == "Paper number 3, fixed"


def test_a_correction_edits_only_the_changed_message_and_records_it_when_enabled(tmp_path, discord_server):
    d = discord_server
    papers = [paper(i, summary=LOREM * 38) for i in range(1, 4)]
    cfg, store, channel = setup(tmp_path, d, papers, extra="edit_on_correction = true\n")
    ids = send_chain(channel, store)
    week = store.week("dair", KEY)
    assert channel.edit(store, week, ids, NOW) == [] and recorded(store, "dair", KEY) == []  # nothing changed
    store.replace_papers("dair", KEY, [papers[0], replace(papers[1], title="Paper number 2 (v2)",
                                                          summary="Corrected."), papers[2]])
    edits = channel.edit(store, week, ids, NOW)
    assert [(e.position, e.message_id, e.changed) for e in edits] == [
        (1, ids[1], ("embed 1 title", "embed 1 description"))]
    patches = [s for s in d.requests if s.method == "PATCH"]
    assert len(patches) == 1 and patches[0].path.endswith(f"/messages/{ids[1]}") and patches[0].status == 200
    assert patches[0].body["allowed_mentions"] == {"parse": []}
    assert recorded(store, "dair", KEY) == [{"position": 1, "message_id": ids[1], "edited_at": NOW.isoformat(),
                                             "changed": ["embed 1 title", "embed 1 description"]}]
    assert channel.edit(store, week, ids, NOW) == []  # done already: nothing more
    off = DiscordChannel(replace(cfg, discord=replace(cfg.discord, edit_on_correction=False)),
                         environ={"PAPERBOT_DISCORD_WEBHOOK_URL": d.webhook_url()})
    store.replace_papers("dair", KEY, [replace(papers[0], title="Changed again"), *papers[1:]])
    assert off.edit(store, week, ids, NOW) == [] and len([s for s in d.requests if s.method == "PATCH"]) == 1


def test_a_bot_posts_in_an_announcement_channel_and_crossposts_each_message(tmp_path, discord_server):
    d = discord_server
    d.channels[d.webhook_channel]["type"] = NEWS
    _, store, channel = setup(tmp_path, d, [paper(i, summary=LOREM * 38) for i in range(1, 3)], webhook=False,
                              bot=True)
    ids = send_chain(channel, store)
    assert len(ids) == 2 and all(d.messages[i].crossposted for i in ids)
    sent = [s for s in d.requests if s.method == "POST" and s.path.endswith("/messages")]
    assert [s.headers["Authorization"] for s in sent] == [f"Bot {d.bot_token}"] * 2
    assert all(s.body["nonce"] and s.body["enforce_nonce"] is True for s in sent)


def test_a_bot_reads_back_a_message_whose_answer_was_lost_and_sends_no_duplicate(tmp_path, discord_server):
    """issue #12: the create went out and the answer was lost: Uncertain; reconciling finds the message (so the
    pipeline records it instead of posting it again), and finds nothing for a message never sent."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(i, summary=LOREM * 38) for i in range(1, 4)], bot=True)
    week = store.week("dair", KEY)
    units, sender = channel.plan(store, week), channel.open_sender(channel.render(store, week))
    first = sender.send(units[0])
    d.fail_next("POST /webhooks/", kind="drop_after_create")
    with pytest.raises(Uncertain):
        sender.send(replace(units[1], prior=(first,)))
    second = list(d.messages)[-1]
    assert sender.reconcile(replace(units[1], prior=(first,))) == second
    assert sender.reconcile(replace(units[2], prior=(first, second))) is None
    sender.close()


def test_a_webhook_alone_cannot_read_back_so_the_message_is_sent_again_as_a_possible_duplicate(
        tmp_path, discord_server, caplog):
    """issue #12: a webhook cannot list messages; like email's row found `sending`, the message is sent again
    (None: not found) and the log says it may show twice, rather than the week waiting forever."""
    d = discord_server
    _, store, channel = setup(tmp_path, d, [paper(1)])
    week = store.week("dair", KEY)
    sender = channel.open_sender(channel.render(store, week))
    with caplog.at_level(logging.WARNING):
        assert sender.reconcile(channel.plan(store, week)[0]) is None
    assert "sent again" in caplog.text and "twice" in caplog.text and d.requests == []
    sender.close()


def test_without_credentials_the_payloads_go_to_the_outbox_as_json(tmp_path, discord_server):
    """issue #12: nothing configured is a trial: each message's body, exactly, in state/outbox/discord/."""
    d = discord_server
    cfg, store, channel = setup(tmp_path, d, [paper(1, HOSTILE)], webhook=False)
    assert not channel.live
    ids = send_chain(channel, store)
    folder = outbox_dir(cfg, "dair", KEY)
    assert ids == ["outbox:001.json"] and d.requests == []
    body = json.loads((folder / "001.json").read_text(encoding="utf-8"))
    assert body == channel.render(store, store.week("dair", KEY)).payloads[0]
    lines = channel.preview(store, store.week("dair", KEY), tmp_path / "preview")
    assert lines[0] == f"discord: dair:{KEY}" and "outbox" in lines[1]
    assert (tmp_path / "preview" / "discord" / "dair" / KEY / "001.json").exists()
    sender = channel.open_sender(channel.render(store, store.week("dair", KEY)))
    assert sender.reconcile(Unit("message-1", "0")) == "outbox:001.json"
    assert sender.reconcile(Unit("message-2", "1")) is None
