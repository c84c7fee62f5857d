"""Secrets in source URLs (issue #7 finding 2): sent to the server that needs them, kept nowhere else.

A feed whose URL carries `?token=…` is polled over a real HTTP server (through a redirect that carries the
token too), its week published to the outbox and rendered as the web edition; then the raw bytes of every
file paperbot wrote (the SQLite database with its WAL, the outbox, the stored edition) and the rendered page
are searched for the token.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from publish_support import SECRET
from sources_support import DocServer, write_config

from bot.channels.email.render import edition_from_store, render_web_edition
from bot.cli import cli
from bot.sources.poll import poll_source
from bot.store import Store

TOKEN = "SECRET123"
NOW = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
WEEK = "2024-W02"
FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Private lab notes</title>
    <link>/</link>
    <description>A feed only readers with a token may fetch.</description>
    <item>
      <title>Counting tokens twice</title>
      <link>#entry-1</link>
      <guid isPermaLink="false">#entry-1</guid>
      <pubDate>Tue, 09 Jan 2024 09:00:00 +0000</pubDate>
      <description>&lt;p&gt;Why we count &lt;a href="#merges"&gt;merges&lt;/a&gt; twice.&lt;/p&gt;</description>
    </item>
    <item>
      <title>A smaller warm-up</title>
      <link>/post/2</link>
      <pubDate>Wed, 10 Jan 2024 09:00:00 +0000</pubDate>
      <description>Warm-up schedules for models that fit on a laptop.</description>
    </item>
  </channel>
</rss>
"""


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def _run(cfg, *args: str) -> str:
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), *args], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    return out.output


def test_a_query_token_reaches_the_server_and_no_database_outbox_or_web_edition(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """issue #7 finding 2: `sources.validators` kept `?token=` (the configured URL as a key, the redirect's
    final URL as a value), and a relative link `#entry-1` resolved against `…?token=SECRET#entry-1`, which
    went into the .eml, the outbox HTML and the public web edition."""
    with DocServer() as server:
        server.redirects[f"/feed?token={TOKEN}"] = f"/feed.xml?token={TOKEN}"
        server.put(f"/feed.xml?token={TOKEN}", FEED, content_type="application/rss+xml")
        cfg = write_config(tmp_path, [{"name": "lab", "feed": server.url(f"/feed?token={TOKEN}")}],
                           settle="1h", backfill=5)
        with caplog.at_level(logging.DEBUG):
            assert f"ready: {WEEK}" in _run(cfg, "poll", "--now", NOW.isoformat())
            assert "unchanged" in _run(cfg, "poll", "--now", (NOW + timedelta(hours=1)).isoformat())  # a 304
            assert "1 written to the outbox" in _run(cfg, "publish")  # a trial (#10)
        assert [(r.path, r.status) for r in server.log] == [
            (f"/feed?token={TOKEN}", 301), (f"/feed.xml?token={TOKEN}", 200),  # the server got its token
            (f"/feed?token={TOKEN}", 301), (f"/feed.xml?token={TOKEN}", 304)]

    store = Store.open(cfg.db_path)  # open: its WAL, if any, is searched as it is
    try:
        links = {p.title: [lk.url for lk in p.links] for _, p in store.papers("lab")}
        assert links == {"Counting tokens twice": [server.url("/feed.xml#entry-1")],
                         "A smaller warm-up": [server.url("/post/2")]}  # resolved without the query
        assert store.week("lab", WEEK).state == "ready"  # the outbox is a trial (#10)
        web_edition = render_web_edition(edition_from_store(store, "lab", WEEK), cfg)
        assert server.url("/feed.xml#entry-1") in web_edition
        written = sorted(p for p in cfg.state_dir.rglob("*") if p.is_file())
        names = {p.relative_to(cfg.state_dir).as_posix() for p in written}
        assert "paperbot.db" in names and any(n.endswith(".eml") for n in names)
        assert any(n.startswith("editions/lab/") for n in names)
        leaks = [p.relative_to(cfg.state_dir).as_posix() for p in written if TOKEN.encode() in p.read_bytes()]
    finally:
        store.close()
    assert leaks == [], f"the token was written to {leaks}"
    assert TOKEN not in web_edition and TOKEN not in caplog.text


def test_validators_stored_with_a_token_by_an_earlier_version_are_scrubbed_at_the_next_poll(tmp_path: Path) -> None:
    """issue #7 finding 2: a database written before the fix keeps the token in `sources.validators` (the URL
    as the key, the final URL as a value). The next poll, a 304 that parses nothing, finds the entry and
    stores it again without the token."""
    with DocServer() as server:
        server.put(f"/feed.xml?token={TOKEN}", FEED, content_type="application/rss+xml")
        url = server.url(f"/feed.xml?token={TOKEN}")
        cfg = write_config(tmp_path, [{"name": "lab", "feed": url}], backfill=5)
        store = Store.open(cfg.db_path)
        assert poll_source(store, cfg, cfg.source("lab"), NOW).error is None
        (entry,) = json.loads(store.source("lab")["validators"])["files"].values()
        store.update_source("lab", validators=json.dumps({"files": {url: {**entry, "url": url}}}))  # as before

        r = poll_source(store, cfg, cfg.source("lab"), NOW + timedelta(hours=1))
        assert (r.error, r.parsed, server.log[-1].status) == (None, 0, 304)
        stored = store.source("lab")["validators"]
        assert TOKEN not in stored and json.loads(stored)["files"] == {
            server.url("/feed.xml?…"): {**entry, "url": server.url("/feed.xml"), "weeks": 1}}
