"""RSS/Atom feeds served over real HTTP: papers in ISO-week editions, each new entry new exactly once."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import read_tsv, shared_path
from sources_support import FAST, DocServer, fixture, snapshot, write_config

from bot.sources.poll import poll_source
from bot.store import Store
from bot.track.tracker import same_entry

NOW = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
ISO_WEEK = re.compile(r"^\d{4}-W\d{2}$")
RSS = "application/rss+xml"


@pytest.fixture
def server():
    with DocServer() as s:
        yield s


def _feed(tmp_path: Path, server: DocServer, path: str = "/feed.xml", **publish):
    cfg = write_config(tmp_path, [{"name": "news", "feed": server.url(path)}], **publish)
    return cfg, cfg.source("news"), Store.open(cfg.db_path)


def _papers(store: Store, source: str = "news") -> list[tuple[str, object]]:
    return store.papers(source)


@pytest.mark.parametrize("name, content_type, entries, sample", [
    ("node-feedparser__rss2sample.xml", RSS, 4, "Star City"),
    ("node-feedparser__intertwingly.atom", "application/atom+xml", 20, "Inhibiting Suspend"),
    ("rss-parser__rss-1.rss", "application/rdf+xml", 69, "Food for fungi"),
    ("rss-parser__encoding.rss", RSS, 40, "Mãe de utente é a nova presidente da Raríssimas"),
])
def test_real_feeds_become_papers_in_iso_week_editions(tmp_path: Path, server: DocServer, name: str,
                                                       content_type: str, entries: int, sample: str) -> None:
    server.put("/feed.xml", shared_path("corpus", "feeds", name).read_bytes(), content_type=content_type)
    cfg, src, store = _feed(tmp_path, server, backfill=1)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.error is None and r.changed
    weeks = store.weeks("news")
    assert weeks and all(ISO_WEEK.match(w.key) for w in weeks)
    papers = _papers(store)
    assert len(papers) == entries
    assert sample in {p.title for _, p in papers}
    assert all(lk.url.startswith("http") for _, p in papers for lk in p.links)
    newest = max(w.key for w in weeks)
    assert r.new == (newest,) and {w.state for w in weeks if w.key != newest} <= {"baseline"}
    idle = poll_source(store, cfg, src, NOW + timedelta(minutes=30), options=FAST)
    assert (idle.changed, idle.parsed, server.log[-1].status) == (False, 0, 304)
    assert "application/rss+xml" in server.log[-1].headers["accept"]


@pytest.mark.parametrize("name, content_type, titles", [
    ("feed_latin1.rss", "text/xml; charset=ISO-8859-1",
     {"Redes neurais no café da manhã", "Atenção à atenção: é só memória?"}),
    ("feed_latin1.rss", RSS, {"Redes neurais no café da manhã", "Atenção à atenção: é só memória?"}),
    ("feed_rdf.rdf", "application/rdf+xml", {"Attention spans of attention heads", "Curriculum by coin flip"}),
    ("feed_news.atom", "application/atom+xml", {
        "Three small models beat one large one", "Benchmarks that age well",
        "Reading the loss curve like a tide table"}),
])
def test_own_feeds_in_each_dialect_and_encoding(tmp_path: Path, server: DocServer, name: str, content_type: str,
                                                 titles: set[str]) -> None:
    server.put("/feed.xml", fixture(name), content_type=content_type)
    cfg, src, store = _feed(tmp_path, server, backfill=1)
    r = poll_source(store, cfg, src, NOW, options=FAST)
    assert r.error is None
    assert {p.title for _, p in _papers(store)} == titles
    keys = sorted(w.key for w in store.weeks("news"))
    assert all(ISO_WEEK.match(k) for k in keys) and r.new == (keys[-1],)


def test_relative_links_resolve_against_the_final_url(tmp_path: Path, server: DocServer) -> None:
    server.put("/feeds/lab.xml", fixture("feed_relative.rss"), content_type=RSS)
    server.redirects["/lab"] = "/feeds/lab.xml"
    cfg, src, store = _feed(tmp_path, server, path="/lab", backfill=5)
    assert poll_source(store, cfg, src, NOW, options=FAST).error is None
    links = {p.title: p.links[0].url for _, p in _papers(store)}
    assert links == {"Counting tokens twice": server.url("/notes/counting-tokens-twice"),
                     "A smaller warm-up": server.url("/feeds/notes/smaller-warm-up")}


@pytest.mark.parametrize("body, content_type", [
    (fixture("not_a_digest.html"), "text/html"),
    (bytes(range(256)) * 4, "application/octet-stream"),
    (b"", RSS),
])
def test_something_that_is_not_a_feed_is_an_error(tmp_path: Path, server: DocServer, body: bytes,
                                                  content_type: str) -> None:
    server.put("/feed.xml", fixture("history_v1.xml"), content_type=RSS)
    cfg, src, store = _feed(tmp_path, server)
    poll_source(store, cfg, src, NOW, options=FAST)
    before = snapshot(store, "news")
    server.put("/feed.xml", body, content_type=content_type)
    r = poll_source(store, cfg, src, NOW + timedelta(hours=1), options=FAST)
    assert r.error and "not an RSS/Atom feed" in r.error, r.error
    assert snapshot(store, "news") == before


def _serve_history(tmp_path: Path, server: DocServer, versions: list[tuple[bytes, datetime]]):
    """Poll once per version, the clock at each version's time; returns the results and the store."""
    cfg, src, store = _feed(tmp_path, server, settle="1h")
    results = []
    for body, at in versions:
        server.put("/feed.xml", body, content_type=RSS)
        results.append(poll_source(store, cfg, src, at, options=FAST))
        assert results[-1].error is None, results[-1].error
    return results, store


def _assert_each_entry_once(results, store: Store, all_ids: set[str], first_ids: set[str]) -> None:
    news = [k for r in results for k in r.new]
    assert len(news) == len(set(news)), f"an edition was new twice: {news}"
    stored = Counter(same_entry(p.uid) for _, p in store.papers("news"))
    assert set(stored) == all_ids and max(stored.values()) == 1  # every entry filed exactly once
    states = {w.key: w.state for w in store.weeks("news")}
    for key, p in store.papers("news"):
        if same_entry(p.uid) not in first_ids:  # arrived after the baseline: it must go out, once
            assert states[key] != "baseline" and key in news, (p.title, key, states[key])


def test_own_feed_history_yields_each_new_entry_once(tmp_path: Path, server: DocServer) -> None:
    versions = [(fixture(f"history_v{i}.xml"), datetime(2024, 1, 1 + 7 * (i - 1), 9, tzinfo=UTC) + timedelta(days=14))
                for i in (1, 2, 3)]
    results, store = _serve_history(tmp_path, server, versions)
    assert [r.new for r in results] == [(), ("2024-W03",), ("2024-W04",)]
    assert results[1].parsed == 1 and "2024-W01" not in results[1].new  # ids rewritten: not new again
    assert results[2].edited == ("2024-W02",)  # a corrected title is an edit
    ids = {f"letter.example.org/issue-{n}" for n in (1, 2, 3, 4)}
    _assert_each_entry_once(results, store, ids, {"letter.example.org/issue-1", "letter.example.org/issue-2"})


def test_the_ml_news_feed_history_yields_each_new_entry_once(tmp_path: Path, server: DocServer) -> None:
    folder = shared_path("corpus", "feeds", "the-batch-history")
    rows = [r for r in read_tsv(folder / "index.tsv") if r["on_first_parent"] == "True"]
    versions = [((folder / r["file"]).read_bytes(), datetime.fromisoformat(r["commit_date"])) for r in rows]
    results, store = _serve_history(tmp_path, server, versions)
    from bot.track.parsing import parse_document

    def ids(body: bytes) -> set[str]:
        doc = parse_document(body, NOW.date(), "feed")
        return {same_entry(p.uid) for w in doc.weeks for p in w.papers}

    all_ids = set().union(*(ids(b) for b, _ in versions))
    assert len(all_ids) == 16 + 13  # the first window, then one new issue per week from April to July
    _assert_each_entry_once(results, store, all_ids, ids(versions[0][0]))
    assert sum(len(r.new) for r in results) == 13
    rewrite = rows.index(next(r for r in rows if r["order"] == "9"))  # the version that dropped every "/"
    assert results[rewrite].changed and results[rewrite].new == ()
