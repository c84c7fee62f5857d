"""issues #24 and #29: the reader's web under load: a bounded feed and caches that follow the archive whichever
process changes it, search pages, highlights no data can forge, and pages that answer while searches and feeds
fill their own threads.

Real parts: `paperbot serve` in its own process (or the app on a thread, where the test must hold the costly
threads busy), its SQLite file written by the test's process the way the daemon writes it (the tracker, the
pipeline over a real aiosmtpd server, approval), answers read over HTTP. Nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime

import feedparser
import pytest
from conftest import FIXTURES
from newsletter_fixtures import sample_edition, store_edition
from publish_support import smtp_server
from test_web import KEY, _free_port, _request, stop_serve

from bot.channels import load_config
from bot.channels.email import subscribers as subs
from bot.channels.email.tokens import unsubscribe_token
from bot.edition.edition import Edition
from bot.publish import approval
from bot.publish.pipeline import publish_week
from bot.store import Store
from bot.track.model import Link, Paper
from bot.web.server import start_web

NOW = datetime(2024, 3, 11, tzinfo=UTC)


def week_key(i: int) -> str:
    d = date.fromordinal(date(2024, 1, 1).toordinal() + 7 * i)
    return f"{d.isoformat()}..{date.fromordinal(d.toordinal() + 6).isoformat()}"


def edition(i: int, papers: tuple[Paper, ...] | None = None) -> Edition:
    d = date.fromordinal(date(2024, 1, 1).toordinal() + 7 * i)
    papers = papers or (Paper(title=f"Lantern study {i}", summary=f"Week {i} looks at lanterns.", number=1,
                              links=(Link("Paper", f"https://example.org/{i}"),)),)
    return Edition(source="digest", key=week_key(i), title=f"Week {i}", first_day=d,
                   last_day=date.fromordinal(d.toordinal() + 6), papers=papers)


def serve(tmp, web: str, smtp_port: int | None = None):
    """`paperbot serve` in its own process with these [web] lines (and live email when `smtp_port`);
    returns (process, base URL, config)."""
    port = _free_port()
    smtp = f'smtp_url = "smtp://127.0.0.1:{smtp_port}"\nstarttls = false\n' if smtp_port else ""
    (tmp / "paperbot.toml").write_text(f"""state_dir = "state"
[email]
{smtp}from = "Papers Weekly <papers@weekly.test>"
contact = "help@weekly.test"
list_id = "papers.weekly.test"
[web]
base_url = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
{web}
[x]
enabled = false
[discord]
enabled = false
[bluesky]
enabled = false
[mastodon]
enabled = false
""", encoding="utf-8")
    cfg = load_config(tmp / "paperbot.toml")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "serve"], cwd=tmp,
                            env={**os.environ, "PAPERBOT_SECRET_KEY": KEY}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(cfg.web.base_url + "/static/site.css", timeout=1)
            return proc, cfg.web.base_url, cfg
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("paperbot serve did not start:\n" + proc.stdout.read().decode(errors="replace"))
            time.sleep(0.1)


def feed_ids(base: str) -> list[str]:
    status, xml, _ = _request(base + "/feed.xml")
    assert status == 200
    parsed = feedparser.parse(xml)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return [e.id.rsplit("/", 1)[1] for e in parsed.entries]


def found(base: str, q: str, page: int = 1) -> tuple[int, str]:
    status, body, _ = _request(f"{base}/search?" + urllib.parse.urlencode({"q": q, "page": page}))
    return status, body


def test_24_feed_holds_feed_entries_and_follows_a_publish_by_another_process(tmp_path):
    """#24: /feed.xml holds the newest `[web] feed_entries` editions, not every one; #24/#29: the feed, the
    archive, an edition's neighbours and search are cached, and a week published by another process (the
    pipeline, over a real SMTP server) shows in each at once."""
    with smtp_server() as (rec, smtp_port):
        proc, base, cfg = serve(tmp_path, "feed_entries = 3", smtp_port)
        try:
            store = Store.open(cfg.db_path)
            for i in range(6):
                store_edition(store, edition(i), state="published")
            store_edition(store, edition(9, (Paper(title="Quokka routing", summary="Brand new.", number=1,
                                                   links=(Link("Paper", "https://example.org/q"),)),)))
            subs.add(store, "reader@example.org", origin="test", now=NOW)
            store.close()
            assert feed_ids(base) == [week_key(5), week_key(4), week_key(3)]
            assert feed_ids(base) == [week_key(5), week_key(4), week_key(3)]  # the cached copy
            assert "0 papers found" in found(base, "quokka")[1]
            old_page = _request(f"{base}/editions/digest/{week_key(5)}")[1]
            assert week_key(9) not in old_page and week_key(9) not in _request(base + "/editions/")[1]

            store = Store.open(cfg.db_path)
            try:
                (report,) = publish_week(cfg, store, store.week("digest", week_key(9)), now=NOW)
                assert store.week("digest", week_key(9)).state == "published", report
            finally:
                store.close()
            assert rec.count() == 1
            assert feed_ids(base) == [week_key(9), week_key(5), week_key(4)]
            status, body = found(base, "quokka")
            assert status == 200 and "1 paper found" in body and "<mark>Quokka</mark>" in body
            assert week_key(9) in _request(base + "/editions/")[1]
            assert f"/editions/digest/{week_key(9)}" in _request(f"{base}/editions/digest/{week_key(5)}")[1]
        finally:
            stop_serve(proc)


def test_24_29_a_correction_an_approval_and_a_note_reach_the_cached_pages(tmp_path):
    """#24/#29: the archive's version changes on a correction (the week's papers edited), an approval (a held
    week released) and an editor's note, so the pages cached before show the change."""
    proc, base, cfg = serve(tmp_path, "")
    try:
        store = Store.open(cfg.db_path)
        store_edition(store, edition(1), state="published")
        store_edition(store, edition(2), state="held")
        store.close()
        page = _request(f"{base}/editions/digest/{week_key(1)}")[1]
        assert "Lantern study 1" in page and "Corrected title" not in page
        assert "held: not sent" in _request(base + "/editions/")[1]
        store = Store.open(cfg.db_path)
        try:
            with store.atomic():
                store.replace_papers("digest", week_key(1), (replace(edition(1).papers[0], title="Corrected title"),))
            store.set_note("digest", week_key(1), "A word from the editor.", NOW)
            approval.approve(store, store.week("digest", week_key(2)), NOW)
        finally:
            store.close()
        page = _request(f"{base}/editions/digest/{week_key(1)}")[1]
        assert "Corrected title" in page
        assert "held: not sent" not in _request(base + "/editions/")[1]
        assert "Corrected" in found(base, "corrected")[1]
    finally:
        stop_serve(proc)


def test_24_a_marker_character_in_a_title_cannot_open_or_close_mark(tmp_path):
    """#24: the characters FTS5 highlight() markers used (U+27EA, U+27EB) in a paper's text stay text: the
    only <mark> elements are around the words that matched."""
    proc, base, cfg = serve(tmp_path, "")
    try:
        store = Store.open(cfg.db_path)
        store_edition(store, edition(1, (Paper(
            title="\u27eb</p><p>Forged \u27eaLanterns\u27eb glow \u27ea", summary="A \u27eaquiet\u27eb lantern.",
            number=1, authors="\u27ea Ann \u27eb", links=(Link("Paper", "https://example.org/x"),)),)),
                      state="published")
        store.close()
        status, body = found(base, "lanterns")
        assert status == 200
        hits = body.split('<ol class="hits"', 1)[1].split("</ol>", 1)[0]
        assert re.findall(r"</?mark>", hits) == ["<mark>", "</mark>"]
        assert "<mark>Lanterns</mark>" in hits
        assert "\u27eb&lt;/p&gt;&lt;p&gt;Forged \u27ea<mark>Lanterns</mark>\u27eb glow \u27ea" in hits
        assert "A \u27eaquiet\u27eb lantern." in hits and "\u27ea Ann \u27eb" in hits
    finally:
        stop_serve(proc)


def test_29_search_results_come_a_page_at_a_time(tmp_path):
    """#29: 45 matching papers come 20 a page, best first, each once; the pages link to each other; a page past
    the last is a 404."""
    proc, base, cfg = serve(tmp_path, "")
    try:
        store = Store.open(cfg.db_path)
        for i in range(9):
            store_edition(store, edition(i, tuple(Paper(title=f"Lantern {i}-{j}", summary="Plain words.",
                                                        number=j + 1) for j in range(5))), state="published")
        store.close()
        seen = []
        for page, count in ((1, 20), (2, 20), (3, 5)):
            status, body = found(base, "lantern", page)
            assert status == 200 and "45 papers found" in body
            titles = re.findall(r"<mark>Lantern</mark> (\d+-\d+)", body)
            assert len(titles) == count
            seen += titles
            first = (page - 1) * 20 + 1
            assert f"{first} to {first + count - 1} shown" in body
            assert ("page=" + str(page + 1) in body) == (page < 3)
            assert ("page=" + str(page - 1) in body) == (page > 1)
        assert sorted(seen) == sorted(f"{i}-{j}" for i in range(9) for j in range(5))
        assert found(base, "lantern", 4)[0] == 404
        assert found(base, "lantern", 51)[0] == 404  # past the pages a reader may ask for
    finally:
        stop_serve(proc)


class AppThread:
    """The web app on a thread of the test's process, so the test can hold its costly threads busy."""

    def __init__(self, cfg):
        self.cfg, self.loop = cfg, asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(start_web(self.cfg), self.loop).result(20)
        self.app = self.runner.app
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_24_pages_and_unsubscribes_answer_while_searches_and_feeds_fill_their_threads(tmp_path, monkeypatch):
    """#24: with every costly thread busy, edition pages, the archive, the home page, a cached search and an
    unsubscribe answer; a client's searches and feeds beyond `[web] costly_per_client` get 429 at once (not a
    place in the queue); the queued ones answer 200 once the threads are free."""
    from bot.web.pages import COSTLY  # the app's key for its costly threads

    monkeypatch.setenv("PAPERBOT_SECRET_KEY", KEY)
    proc, base, cfg = serve(tmp_path, "costly_threads = 1\ncostly_per_client = 2")
    stop_serve(proc)  # the same config, served on a thread of this process instead
    store = Store.open(cfg.db_path)
    for i in range(3):
        store_edition(store, edition(i), state="published")
    subs.add(store, "leaving@example.org", origin="test", now=NOW)
    store.close()
    release = threading.Event()
    with AppThread(cfg) as served, ThreadPoolExecutor(4) as clients:
        try:
            assert found(base, "lantern")[0] == 200  # cached from now on
            served.app[COSTLY].pool.submit(release.wait)  # the one costly thread is busy
            queued = [clients.submit(found, base, q) for q in ("study", "looks")]
            deadline = time.monotonic() + 20
            while served.app[COSTLY].clients.get("127.0.0.1", 0) < 2:  # both admitted and waiting
                assert time.monotonic() < deadline, served.app[COSTLY].clients
                time.sleep(0.01)
            status, body, headers = _request(f"{base}/search?q=week")
            assert status == 429 and int(headers["Retry-After"]) >= 1
            assert _request(base + "/feed.xml")[0] == 429
            assert found(base, "lantern")[0] == 200
            for path in ("/", "/editions/", f"/editions/digest/{week_key(1)}", "/static/site.css"):
                assert _request(base + path)[0] == 200, path
            link = f"{base}/unsubscribe/{unsubscribe_token(KEY.encode(), 'leaving@example.org')}"
            assert _request(link, b"List-Unsubscribe=One-Click")[0] == 200
            con = sqlite3.connect(cfg.db_path)
            assert con.execute("SELECT state FROM subscribers WHERE address = 'leaving@example.org'").fetchone() \
                == ("unsubscribed",)
            con.close()
            assert not any(f.done() for f in queued)  # still waiting for the busy thread
        finally:
            release.set()
        assert [f.result(20)[0] for f in queued] == [200, 200]
        assert _request(base + "/feed.xml")[0] == 200


def test_24_29_m023_upgrades_the_previous_mains_database_and_counts_changes(tmp_path):
    """#24/#29: m023_web_cache on the previous main's database: the version row and its triggers; the version
    moves on a change a reader can see and stays on one they cannot (a subscriber, a delivery)."""
    db = tmp_path / "paperbot.db"
    shutil.copy(FIXTURES / "db" / "main-070f0af.db", db)
    store = Store.open(db)
    try:
        version = lambda: store.db.execute("SELECT version FROM archive_version").fetchone()[0]  # noqa: E731
        v0 = version()
        subs.add(store, "someone@example.org", origin="test", now=NOW)
        assert version() == v0
        store_edition(store, sample_edition(key="2025-01-06..2025-01-12"), state="ready")
        v1 = version()
        assert v1 > v0
        store.upsert_week("digest", "2025-01-06..2025-01-12", state="ready")  # no change
        assert version() == v1
        store.upsert_week("digest", "2025-01-06..2025-01-12", state="published")
        assert version() > v1
    finally:
        store.close()


@pytest.mark.parametrize("line", ["feed_entries = 0", "costly_threads = 100", 'costly_per_client = "4"'])
def test_24_the_cost_limits_are_checked_and_named(tmp_path, line):
    """#24: `[web] feed_entries`, `costly_threads` and `costly_per_client` are whole numbers in range; an error
    names the file and the key."""
    from bot.config import ConfigError

    (tmp_path / "paperbot.toml").write_text(f'state_dir = "state"\n[web]\n{line}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"paperbot.toml: web\.{line.split()[0]}: "):
        load_config(tmp_path / "paperbot.toml")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness per thread is Linux's")
def test_costly_threads_defer_to_the_pages_for_the_cpu_and_nothing_else_changes_24():
    """#24: searches and the feed run at nice 10 (on 2 cores their threads took the CPU from unsubscribes under
    a burst of searches); the process's other threads keep their priority."""
    from bot.web.cache import COSTLY_NICE, Costly

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = Costly(1, 1)
    try:
        nice = pool.pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    finally:
        pool.close()
    assert nice == max(COSTLY_NICE, before)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
