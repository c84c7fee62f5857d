"""A real HTTP server on 127.0.0.1 as a source: conditional requests, failures that change nothing."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sources_support import FAST, DocServer, TrickleServer, basic_auth, fixture, snapshot, write_config

from bot.sources.check_http import source_urls
from bot.sources.fetch_http import HttpOptions, conditional_get, redact
from bot.sources.poll import PollOptions, poll_source
from bot.store import Store

NOW = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
A, B, C = "2024-01-01..2024-01-07", "2024-01-08..2024-01-14", "2024-01-15..2024-01-21"


@pytest.fixture
def server():
    with DocServer() as s:
        yield s


def _url_source(tmp_path: Path, server: DocServer, **publish):
    publish = {"settle": "30d", "max_wait": "60d", **publish}
    cfg = write_config(tmp_path, [{"name": "notes", "url": server.url("/digest.md")}], **publish)
    return cfg, cfg.source("notes"), Store.open(cfg.db_path)


def test_an_unchanged_file_costs_one_conditional_request_and_no_parse(tmp_path: Path, server: DocServer) -> None:
    server.put("/digest.md", fixture("digest_v1.md"))
    cfg, src, store = _url_source(tmp_path, server)
    first = poll_source(store, cfg, src, NOW, options=FAST)
    assert (first.changed, first.parsed, first.requests, first.error) == (True, 1, 1, None)
    assert "if-none-match" not in server.log[0].headers

    idle = poll_source(store, cfg, src, NOW + timedelta(minutes=30), options=FAST)
    sent = server.log[-1]
    assert sent.headers["if-none-match"] == json.loads(store.source("notes")["validators"])["files"][
        server.url("/digest.md")]["etag"]
    assert sent.status == 304
    assert (idle.changed, idle.parsed, idle.requests, idle.bytes_read, idle.error) == (False, 0, 1, 0, None)
    assert len(store.versions("notes")) == 1
    assert store.source("notes")["last_polled"] == (NOW + timedelta(minutes=30)).isoformat()


def test_the_time_of_a_change_is_the_fetch_time(tmp_path: Path, server: DocServer) -> None:
    server.put("/digest.md", fixture("digest_v1.md"))
    cfg, src, store = _url_source(tmp_path, server)
    poll_source(store, cfg, src, NOW, options=FAST)
    server.put("/digest.md", fixture("digest_v2.md"))
    later = NOW + timedelta(hours=3)
    r = poll_source(store, cfg, src, later, options=FAST)
    assert r.new == (B,) and r.parsed == 1
    assert store.week("notes", B).first_seen == later
    assert server.log[-1].status == 200 and "if-none-match" in server.log[-1].headers


def test_last_modified_alone_is_enough_and_no_validators_means_a_hash_compare(tmp_path: Path,
                                                                              server: DocServer) -> None:
    server.put("/digest.md", fixture("digest_v1.md"), etag=False)
    cfg, src, store = _url_source(tmp_path, server)
    poll_source(store, cfg, src, NOW, options=FAST)
    idle = poll_source(store, cfg, src, NOW, options=FAST)
    assert server.log[-1].headers["if-modified-since"] == server.resources["/digest.md"].last_modified
    assert server.log[-1].status == 304 and idle.parsed == 0

    server.put("/digest.md", fixture("digest_v1.md"), etag=False, last_modified=None)  # a dumb server
    same = poll_source(store, cfg, src, NOW, options=FAST)
    assert server.log[-1].status == 200
    assert (same.changed, same.parsed, same.error) == (False, 0, None)  # same bytes: nothing to parse


def test_gzip_bodies_are_decoded(tmp_path: Path, server: DocServer) -> None:
    server.put("/digest.md", fixture("digest_v2.md"), gzip=True)
    cfg, src, store = _url_source(tmp_path, server)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.error is None and {w.key for w in store.weeks("notes")} == {A, B}
    assert r.bytes_read < len(fixture("digest_v2.md"))


@pytest.mark.parametrize("fault", ["500", "stall", "drop", "truncate", "garbage", "html"])
def test_a_failed_answer_is_an_error_that_changes_nothing_and_the_next_good_one_is_taken(
        tmp_path: Path, server: DocServer, fault: str) -> None:
    server.put("/digest.md", fixture("digest_v1.md"))
    cfg, src, store = _url_source(tmp_path, server)
    poll_source(store, cfg, src, NOW, options=FAST)
    before = snapshot(store, "notes")
    server.put("/digest.md", fixture("digest_v2.md"))
    if fault == "html":
        server.put("/digest.md", fixture("not_a_digest.html"), content_type="text/html")
    else:
        retried = fault in ("500", "stall", "drop", "truncate")
        server.fail("/digest.md", *[fault] * (FAST.http.retries + 1 if retried else 1))
    bad = poll_source(store, cfg, src, NOW + timedelta(hours=1), options=FAST)
    assert bad.error and not bad.changed and bad.new == ()
    assert snapshot(store, "notes") == before
    row = store.source("notes")
    assert row["error_count"] == 1 and row["last_error"] == bad.error
    if fault not in ("garbage", "html"):
        assert bad.requests == FAST.http.retries + 1  # retried, then given up
    expected = {"500": "HTTP 500", "stall": "timed out", "drop": "RemoteDisconnected", "truncate": "body",
                "garbage": "not UTF-8", "html": "no weeks"}[fault]
    assert expected in bad.error, bad.error

    server.put("/digest.md", fixture("digest_v2.md"))
    good = poll_source(store, cfg, src, NOW + timedelta(hours=2), options=FAST)
    assert good.error is None and good.new == (B,)
    assert store.week("notes", B).first_seen == NOW + timedelta(hours=2)
    assert store.source("notes")["error_count"] == 0 and store.source("notes")["last_error"] is None


def test_a_transient_failure_is_retried_within_the_poll(tmp_path: Path, server: DocServer) -> None:
    server.put("/digest.md", fixture("digest_v1.md"))
    server.fail("/digest.md", "500")
    cfg, src, store = _url_source(tmp_path, server)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.error is None and r.requests == 2 and store.week("notes", A) is not None


def test_not_found_is_not_retried(tmp_path: Path, server: DocServer) -> None:
    cfg, src, store = _url_source(tmp_path, server)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.requests == 1 and "HTTP 404" in r.error and server.url("/digest.md") in r.error


def test_consecutive_errors_are_counted_and_shown_by_weeks(tmp_path: Path, server: DocServer) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    server.put("/digest.md", fixture("digest_v1.md"))
    cfg, src, store = _url_source(tmp_path, server)
    poll_source(store, cfg, src, NOW, options=FAST)
    for _ in range(3):
        server.fail("/digest.md", "500", "500")
        poll_source(store, cfg, src, NOW, options=FAST)
    assert store.source("notes")["error_count"] == 3
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "weeks", "--json"])
    assert out.exit_code == 0
    assert [w["key"] for w in json.loads(out.stdout)] == [A]  # stdout keeps its documented shape
    assert "source notes: last poll failed" in out.stderr and "(3 in a row)" in out.stderr
    poll = CliRunner().invoke(cli, ["--config", str(cfg.path), "poll", "--json"])
    assert poll.exit_code == 0 and json.loads(poll.stdout)[0]["error"] is None
    assert "last poll failed" not in CliRunner().invoke(cli, ["--config", str(cfg.path), "weeks"]).stderr


def test_a_failing_poll_exits_non_zero_with_the_error_in_json(tmp_path: Path, server: DocServer) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    cfg, _src, _store = _url_source(tmp_path, server)
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "poll", "--json"])
    assert out.exit_code == 1
    assert json.loads(out.stdout)[0]["error"].startswith(f"GET {server.url('/digest.md')}: HTTP 404")


def test_github_files_are_read_raw_with_conditional_requests(tmp_path: Path, server: DocServer) -> None:
    server.put("/lab/digest/main/2024.md", fixture("digest_v1.md"))
    server.put("/lab/digest/main/archive/2023.md", fixture("year_2023.md"))
    cfg = write_config(tmp_path, [{"name": "gh", "github": "lab/digest", "path": ["2024.md", "archive/2023.md"]}],
                       github_base_url=server.base + "/", settle="30d", max_wait="60d")
    src = cfg.source("gh")
    assert source_urls(src, cfg.github_base_url) == (server.url("/lab/digest/main/2024.md"),
                                                     server.url("/lab/digest/main/archive/2023.md"))
    store = Store.open(cfg.db_path)
    first = poll_source(store, cfg, src, NOW, options=FAST)
    assert first.error is None and len(store.weeks("gh")) == 3
    idle = poll_source(store, cfg, src, NOW, options=FAST)
    assert (idle.requests, idle.parsed, idle.changed) == (2, 0, False)
    assert [r.status for r in server.log[-2:]] == [304, 304]

    server.put("/lab/digest/main/2024.md", fixture("digest_v2.md"))
    n = len(server.log)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.new == (B,) and r.requests == 2 and [q.status for q in server.log[n:]] == [200, 304]
    assert all(w.present for w in store.weeks("gh"))  # the unchanged file came from the cache, not "removed"

    for f in (cfg.state_dir / "http" / "gh").iterdir():  # a lost cache costs one more request, nothing else
        f.unlink()
    server.put("/lab/digest/main/2024.md", fixture("digest_v3.md"))
    n = len(server.log)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.new == (C,) and r.error is None and [q.status for q in server.log[n:]] == [200, 304, 200]
    assert "if-none-match" not in server.log[-1].headers and all(w.present for w in store.weeks("gh"))


def test_credentials_in_a_url_never_reach_the_log_or_the_store(tmp_path: Path, server: DocServer,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    secret = "hunter2token"
    url = server.url("/digest.md").replace("http://", f"http://reader:{secret}@") + f"?token={secret}"
    cfg = write_config(tmp_path, [{"name": "private", "url": url}])
    store = Store.open(cfg.db_path)
    with caplog.at_level(logging.DEBUG):
        r = poll_source(store, cfg, cfg.source("private"), NOW, options=FAST)
    assert r.error
    row = store.source("private")
    assert secret not in caplog.text and secret not in r.error
    assert secret not in json.dumps(row)


def test_a_stop_request_cuts_the_retry_wait_short() -> None:
    stop = threading.Event()
    stop.set()
    slow = HttpOptions(timeout=0.5, retries=5, backoff=60.0)
    with pytest.raises(Exception, match="stopped while waiting to retry") as info:
        conditional_get("http://127.0.0.1:9/", options=slow, stop=stop)  # port 9: nothing listens
    assert info.value.requests == 1


def test_an_oversized_body_is_refused(tmp_path: Path, server: DocServer) -> None:
    server.put("/digest.md", fixture("digest_v2.md"))
    cfg, src, store = _url_source(tmp_path, server)
    tiny = PollOptions(http=HttpOptions(timeout=2, retries=0, max_bytes=100))
    r = poll_source(store, cfg, src, NOW, options=tiny)
    assert r.error and "larger than 100 bytes" in r.error and store.weeks("notes") == []


def test_a_source_being_polled_by_another_process_is_skipped_not_failed(tmp_path: Path, server: DocServer) -> None:
    from bot import locks

    server.put("/digest.md", fixture("digest_v1.md"))
    cfg, src, store = _url_source(tmp_path, server)
    fd = locks.acquire(cfg.state_dir / "locks" / "notes.lock")  # as a daemon's poll in flight would
    try:
        r = poll_source(store, cfg, src, NOW, options=PollOptions(http=FAST.http, lock_wait=0.2))
    finally:
        locks.release(fd)
    assert r.error and r.error.startswith("busy:") and server.log == []
    assert (store.source("notes") or {}).get("error_count", 0) == 0  # not the source's fault
    assert poll_source(store, cfg, src, NOW, options=FAST).changed


def test_a_server_dripping_its_status_line_and_headers_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """issue #8 finding 1: the deadline was only checked while reading the body, so a server that drips its
    status line and headers (a byte every 50 ms: no single read ever times out) held one attempt for 90 s.
    With `[fetch] timeout = "1s"` the attempt, connect and headers included, is cut at 1 s."""
    with TrickleServer(interval=0.05, total=8.0) as slow:
        cfg = write_config(tmp_path, [{"name": "slow", "url": slow.url("/digest.md")}],
                           extra='\n[fetch]\ntimeout = "1s"\n')
        options = PollOptions.from_config(cfg)
        assert options.http.timeout == 1.0
        one_attempt = replace(options, http=replace(options.http, retries=0))
        store = Store.open(cfg.db_path)
        started = time.monotonic()
        r = poll_source(store, cfg, cfg.source("slow"), NOW, options=one_attempt)
        took = time.monotonic() - started
    assert r.error and "timed out: no complete answer within 1s" in r.error, r.error
    assert r.requests == 1 and slow.connections == 1
    assert took < 4.0, f"the attempt lasted {took:.2f}s"  # the server would have dripped for 8 s


def test_max_size_from_the_config_caps_an_http_body(tmp_path: Path, server: DocServer) -> None:
    """issue #8: `[fetch] max_size` is the one size cap, read from the config by every poll."""
    server.put("/digest.md", fixture("digest_v3.md"))  # 1304 bytes
    cfg = write_config(tmp_path, [{"name": "notes", "url": server.url("/digest.md")}],
                       extra='\n[fetch]\nmax_size = "1KiB"\n')
    r = poll_source(Store.open(cfg.db_path), cfg, cfg.source("notes"), NOW)
    assert r.error and "larger than 1024 bytes" in r.error, r.error


def test_user_and_token_in_a_url_are_sent_as_basic_auth_to_that_host_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """issue #8 finding 3: `https://user:token@host/…` never worked (urllib took `user:token@host` for the host
    name). The userinfo, percent-decoded, becomes HTTP Basic credentials; a redirect on the same host keeps
    them, a redirect to another host never gets them; and they are stored nowhere."""
    user, password = "reader", "p@ss:w0rd/é"
    expected = basic_auth(user, password)
    with DocServer(auth=(user, password)) as private, DocServer() as elsewhere:
        private.put("/digest.md", fixture("digest_v1.md"))
        private.redirects["/moved.md"] = "/digest.md"
        url = private.url("/moved.md").replace("http://", f"http://{user}:{quote(password, safe='')}@")
        cfg = write_config(tmp_path, [{"name": "private", "url": url}], settle="30d", max_wait="60d")
        store = Store.open(cfg.db_path)
        with caplog.at_level(logging.DEBUG):
            first = poll_source(store, cfg, cfg.source("private"), NOW, options=FAST)
            assert first.error is None and store.week("private", A) is not None
            assert [(q.path, q.status, q.headers.get("authorization")) for q in private.log] == [
                ("/moved.md", 301, expected), ("/digest.md", 200, expected)]

            private.redirects["/moved.md"] = elsewhere.url("/digest.md")  # now to another host (port)
            elsewhere.put("/digest.md", fixture("digest_v2.md"))
            second = poll_source(store, cfg, cfg.source("private"), NOW + timedelta(hours=1), options=FAST)
        assert second.error is None and second.new == (B,)
        assert private.log[-1].headers.get("authorization") == expected
        assert [q.headers.get("authorization") for q in elsewhere.log] == [None]
    raw = b"".join(p.read_bytes() for p in cfg.state_dir.glob("paperbot.db*"))
    for secret in (password, quote(password, safe=""), expected.split()[1]):
        assert secret.encode() not in raw and secret not in caplog.text
    assert store.source("private")["location"] == redact(url) == private.url("/moved.md").replace(
        "http://", "http://***@")


def test_credentials_in_the_github_base_url_are_sent_as_basic_auth(tmp_path: Path) -> None:
    """issue #8 finding 3, for `github` sources: their credentials live in `[github] base_url`."""
    with DocServer(auth=("bot", "ghp_SECRET123")) as private:
        private.put("/lab/digest/main/README.md", fixture("digest_v1.md"))
        base = private.base.replace("http://", "http://bot:ghp_SECRET123@")
        cfg = write_config(tmp_path, [{"name": "gh", "github": "lab/digest"}], github_base_url=base)
        store = Store.open(cfg.db_path)
        r = poll_source(store, cfg, cfg.source("gh"), NOW, options=FAST)
        assert r.error is None and private.log[0].headers["authorization"] == basic_auth("bot", "ghp_SECRET123")
    assert list(json.loads(store.source("gh")["validators"])["files"]) == [
        private.url("/lab/digest/main/README.md").replace("http://", "http://***@")]
    assert b"SECRET123" not in b"".join(p.read_bytes() for p in cfg.state_dir.glob("paperbot.db*"))


def test_a_redirect_to_a_non_http_scheme_fails_at_once(tmp_path: Path, server: DocServer) -> None:
    """issue #8 finding 7: a redirect to ftp:// was retried as if it were a transient failure."""
    server.redirects["/digest.md"] = "ftp://127.0.0.1/digest.md?token=SECRET123"
    cfg, src, store = _url_source(tmp_path, server)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.error and "only http and https redirects are followed" in r.error, r.error
    assert r.requests == 1 and len(server.log) == 1
    assert "SECRET123" not in r.error and "ftp://127.0.0.1/digest.md?…" in r.error


@pytest.mark.parametrize("url", ["HTTP://reader:SECRET123@example.org/feed?token=SECRET123",
                                 "Https://example.org/feed?key=SECRET123#top",
                                 "hTTps://reader:SECRET123@example.org/x.git"])
def test_redaction_ignores_the_case_of_the_scheme(url: str) -> None:
    """issue #8 finding 7: an upper-case `HTTP://` URL kept its query (a case-sensitive regex)."""
    shown = redact(f"GET {url} failed")
    assert "SECRET123" not in shown and "example.org" in shown and shown.endswith(" failed")
