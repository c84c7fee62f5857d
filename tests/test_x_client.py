"""Issue #11: the X client (bot/channels/x/client.py) driven for real: tweepy's own Client, redirected through
its public session to tests/x_server.py on 127.0.0.1, which checks the OAuth 1.0a signature against the URL
tweepy signed (https://api.twitter.com/...). tweepy is never patched."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from x_server import XServer

from bot.channels.email.render import Edition
from bot.channels.x.client import (
    DEFAULT_API_BASE,
    ENV_VARS,
    NOT_SENT,
    RATE_LIMITED,
    REFUSED,
    UNCERTAIN,
    CredentialsError,
    XCredentials,
    XError,
    check_api_base,
    client_from_env,
    create_post,
    credentials_from_env,
    make_client,
    me,
    rate_limited_until,
    recent_posts,
    redirect,
    same_post,
)
from bot.channels.x.compose import compose_thread
from bot.track.model import Link, Paper

CREDS = XCredentials("consumer-key-1", "consumer-secret-2", "access-token-3", "access-token-secret-4")


@pytest.fixture
def x():
    with XServer(CREDS.consumer_key, CREDS.consumer_secret, CREDS.access_token, CREDS.access_token_secret) as server:
        yield server


def client_for(server: XServer, timeout: float = 5.0, creds: XCredentials = CREDS):
    return make_client(creds, api_base=server.api_base, timeout=timeout)


def fails(call, *args, **kw) -> XError:
    with pytest.raises(XError) as info:
        call(*args, **kw)
    return info.value


def test_a_post_and_a_reply_chain_arrive_signed_for_the_x_api_url(x):
    """issue #11: tweepy signs https://api.twitter.com/2/tweets; the session sends it to api_base after signing,
    so the local server verifies the signature for X's URL; each reply names the post before it."""
    client = client_for(x)
    ids = [create_post(client, "Top ML Papers of the Week 🧵")]
    for i in range(1, 4):
        ids.append(create_post(client, f"{i}/3 paper {i}", reply_to=ids[-1]))
    assert [p.id for p in x.thread(ids[0])] == ids
    assert [r.body for r in x.requests] == [{"text": "Top ML Papers of the Week 🧵"}] + [
        {"text": f"{i}/3 paper {i}", "reply": {"in_reply_to_tweet_id": ids[i - 1]}} for i in range(1, 4)]
    assert all(r.signature_ok and r.signed_for == "https://api.twitter.com" for r in x.requests)
    assert all(r.headers["Host"].startswith("127.0.0.1:") for r in x.requests)  # it really went to api_base
    assert all(r.headers["Authorization"].startswith("OAuth ") for r in x.requests)


def test_the_signature_check_refuses_a_wrong_secret(x):
    """The server's check is real: a client signing with another consumer secret is refused (401)."""
    err = fails(create_post, client_for(x, creds=XCredentials(CREDS.consumer_key, "wrong", CREDS.access_token,
                                                              CREDS.access_token_secret)), "hello")
    assert (err.kind, err.status) == (REFUSED, 401)
    assert x.requests[0].signature_ok is False and x.ours() == []


def test_a_composed_ten_paper_week_arrives_as_one_chain_without_mentions(x):
    """issue #11: the 11 posts of a 10-paper week reach the server as one chain, each within X's 280 weighted
    characters (the server checks with twitter-text), linking only the chosen pages and mentioning nobody."""
    papers = tuple(Paper(title=f"Paper {i} by @author{i} (see github.com/lab/p{i})", summary="Results. " * 40,
                         links=(Link("Paper", f"https://arxiv.org/pdf/2402.{i:05d}"),), number=i) for i in range(1, 11))
    edition = Edition("dair", "2024-02-05..2024-02-11", "Top ML Papers of @dair_ai", None, None, papers)
    web = "https://papers.example.org/editions/dair/2024-02-05..2024-02-11"
    posts = compose_thread(edition, web_url=web, hashtags=["ML"])
    client = client_for(x)
    ids: list[str] = []
    for post in posts:
        ids.append(create_post(client, post.text, reply_to=ids[-1] if ids else None))
    thread = x.thread(ids[0])
    assert len(thread) == 11 and [p.text for p in thread] == [p.text for p in posts]
    assert all(p.mentions == [] for p in thread)
    assert thread[0].urls == [web]
    assert [p.urls for p in thread[1:]] == [[f"https://arxiv.org/abs/2402.{i:05d}"] for i in range(1, 11)]


def test_a_429_is_rate_limited_until_its_reset(x):
    """issue #11: a 429's x-rate-limit-reset becomes the time before which nothing is sent."""
    reset = int(time.time()) + 600
    x.fail_next("POST /2/tweets", status=429, headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                                                       "x-rate-limit-reset": str(reset)})
    err = fails(create_post, client_for(x), "hello")
    assert (err.kind, err.status) == (RATE_LIMITED, 429)
    assert err.until == datetime.fromtimestamp(reset, UTC)
    assert x.ours() == []


def test_a_spent_daily_limit_waits_for_the_24_hour_reset():
    """issue #11: when the 24-hour user limit is what is spent (the free tier's 17 posts), the wait is until
    its reset, not the 15-minute window's."""
    with XServer(*vars(CREDS).values(), daily_limit=2) as x:
        client = client_for(x)
        create_post(client, "one")
        create_post(client, "two")
        err = fails(create_post, client, "three")
        assert err.kind == RATE_LIMITED
        assert err.until > datetime.now(UTC) + timedelta(hours=23)
        assert [p.text for p in x.ours()] == ["one", "two"]


@pytest.mark.parametrize("fault,created", [({"kind": "status", "status": 503}, False),
                                           ({"kind": "drop"}, False),
                                           ({"kind": "drop_after_create"}, True)])
def test_a_5xx_or_a_dropped_connection_after_sending_is_uncertain(x, fault, created):
    """issue #11: the request went out and no answer came back: X may have made the post (here it did when
    `created`), so the outcome is uncertain, never "retry"."""
    x.fail_next("POST /2/tweets", **fault)
    err = fails(create_post, client_for(x), "maybe posted")
    assert err.kind == UNCERTAIN
    assert [p.text for p in x.ours()] == (["maybe posted"] if created else [])
    assert len(x.requests) == 1  # nothing resent it behind our back


def test_the_timeout_holds_against_a_server_that_never_answers(x):
    """issue #11: tweepy sets no timeout; the session's adapter does. The server holds its answer (a 201, the
    post made) for 10 s; with a 0.3 s timeout the client gives up first and calls the outcome uncertain."""
    x.fail_next("POST /2/tweets", "hang", seconds=10)
    err = fails(create_post, client_for(x, timeout=0.3), "slow")
    assert err.kind == UNCERTAIN and "Timeout" in str(err)
    assert x.requests[0].status is None  # the server had not answered when the client gave up


def test_a_connection_refused_is_not_sent_and_safe_to_retry():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(CREDS, api_base=f"http://127.0.0.1:{port}", timeout=2)
    assert fails(create_post, client, "hello").kind == NOT_SENT
    assert fails(me, client).kind == NOT_SENT


def test_duplicate_content_is_uncertain(x):
    """issue #11: X refuses a text it already has (403 "duplicate content"): maybe our own lost post."""
    client = client_for(x)
    create_post(client, "same text")
    err = fails(create_post, client, "same text")
    assert (err.kind, err.status) == (UNCERTAIN, 403) and "duplicate" in str(err)


def test_a_reply_x_does_not_allow_is_refused(x):
    """issue #11: X refuses programmatic replies to other accounts' posts (February 2026): refused, no retry."""
    foreign = x.add_foreign_post("someone else's post")
    err = fails(create_post, client_for(x), "a reply", reply_to=foreign)
    assert (err.kind, err.status) == (REFUSED, 403) and "not allowed" in str(err)


def test_a_text_over_280_weighted_characters_is_refused(x):
    err = fails(create_post, client_for(x), "日本" * 71)  # 142 characters, 284 weighted
    assert (err.kind, err.status) == (REFUSED, 400)


def test_me_and_recent_posts_read_back_what_was_sent(x):
    """issue #11 (reconciling): the account's id, then its recent posts newest first, each with the post it
    replies to and its text as sent (X returns links as t.co and escapes &, <, >), over several pages."""
    x.page_size = 5
    client = client_for(x)
    head_text = "Papers & <notes> of the week 🧵\nhttps://papers.example.org/editions/dair/2024-W05"
    ids = [create_post(client, head_text)]
    for i in range(1, 8):
        ids.append(create_post(client, f"{i}/7 A & B\n\nhttps://arxiv.org/abs/2401.0000{i}", reply_to=ids[-1]))
    assert me(client) == x.user_id
    seen = recent_posts(client, x.user_id, 8)
    assert [s.id for s in seen] == ids[::-1]
    assert [s.in_reply_to for s in seen] == ids[-2::-1] + [None]
    assert seen[-1].text == head_text and seen[0].text == "7/7 A & B\n\nhttps://arxiv.org/abs/2401.00007"
    raw = x._timeline_item(x.posts[ids[0]], {"entities"})["text"]
    assert "t.co/" in raw and "&amp;" in raw  # what X sends back is not what was posted...
    assert same_post(head_text, raw) and not same_post(head_text, raw.replace("week", "month"))  # ...yet matches
    timeline_reads = [r for r in x.requests if r.path.endswith("/tweets") and r.method == "GET"]
    assert len(timeline_reads) == 2 and "referenced_tweets" in timeline_reads[0].query["tweet.fields"][0]


def test_a_refused_timeline_read_is_refused(x):
    """issue #11: when reading the timeline is refused (permission), reconciling cannot decide: `refused`."""
    x.fail_next("GET /2/users/", status=403)
    assert fails(recent_posts, client_for(x), x.user_id, 10).kind == REFUSED


def test_missing_credentials_are_named_and_their_values_never_shown():
    """issue #11: one missing variable is named; none set means no X account (a trial); values never appear."""
    env = {name: f"secret-value-{i}" for i, name in enumerate(ENV_VARS)}
    assert credentials_from_env(env) == XCredentials(*env.values())
    partial = {k: v for k, v in env.items() if k != "PAPERBOT_X_ACCESS_TOKEN_SECRET"}
    with pytest.raises(CredentialsError) as info:
        credentials_from_env(partial)
    message = str(info.value)
    assert "PAPERBOT_X_ACCESS_TOKEN_SECRET is not set" in message
    assert not any(v in message for v in env.values())
    assert credentials_from_env({}) is None
    with pytest.raises(CredentialsError, match="PAPERBOT_X_CONSUMER_KEY, PAPERBOT_X_CONSUMER_SECRET"):
        client_from_env(environ={})
    assert not any(v in repr(credentials_from_env(env)) for v in env.values())


def test_api_base_and_timeout_are_checked():
    assert check_api_base("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    for bad in ("ftp://x.org", "api.twitter.com", "https://", "https://x.org/?a=1"):
        with pytest.raises(ValueError, match="x.api_base"):
            check_api_base(bad)
    with pytest.raises(ValueError, match="x.timeout"):
        make_client(CREDS, timeout=0)
    url = "https://api.twitter.com/2/users/1/tweets?max_results=5"
    assert redirect(url, DEFAULT_API_BASE) == url
    assert redirect(url, "http://127.0.0.1:9") == "http://127.0.0.1:9/2/users/1/tweets?max_results=5"
    assert redirect("https://api.x.com/2/tweets", "http://h:1/x") == "http://h:1/x/2/tweets"
    assert redirect("https://example.org/2/tweets", "http://h:1") == "https://example.org/2/tweets"


def test_rate_limited_until_takes_the_latest_spent_reset_and_distrusts_nonsense():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    at = int(now.timestamp())
    window = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(at + 300)}
    assert rate_limited_until(window, now) == now + timedelta(seconds=300)
    daily = {"x-rate-limit-remaining": "40", "x-rate-limit-reset": str(at + 300),
             "x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(at + 20000)}
    assert rate_limited_until(daily, now) == now + timedelta(seconds=20000)
    assert rate_limited_until({}, now) == now + timedelta(minutes=15)
    assert rate_limited_until({"x-rate-limit-reset": "soon"}, now) == now + timedelta(minutes=15)
    assert rate_limited_until({"x-rate-limit-reset": str(at + 10**8)}, now) == now + timedelta(hours=24, minutes=15)
