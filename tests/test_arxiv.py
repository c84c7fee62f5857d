"""#32: papers known by their arXiv record. A local arXiv API (tests/arxiv_server.py) in the documented Atom format;
the real SMTP server; the real store. The three-second spacing is checked at its real pace once; other tests run
the same gate on an injected clock."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from arxiv_server import ArxivServer
from arxiv_server import Paper as ArxivPaper
from conftest import shared_path
from publish_support import KEY, SECRET, add_subscribers, parse, ready_week, smtp_server, write_config

from bot.channels import load_config
from bot.edition.arxiv import author_line, title_and_summary
from bot.edition.edition import edition_from_store
from bot.publish.enrichment import enrich_round
from bot.publish.pipeline import publish_week
from bot.sources.arxiv_api import ArxivClient, ArxivError, parse_answer, user_agent
from bot.sources.enrich import enrich
from bot.sources.polite import PoliteHosts, SpacingGate
from bot.store import Store
from bot.track.arxiv_ids import arxiv_id
from bot.track.model import ArxivRecord, Link, Paper
from bot.track.parsing import parse_document
from bot.web import reader

PAPERS = [
    ArxivPaper("2302.00001", "Sparse Lanterns: Routing Tokens to a Handful of Experts",
               ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
               "We route each token to few experts. The zeppelinoid benchmark shows halved compute."),
    ArxivPaper("2302.00002", "Quiet Gradients and Flat Minima", ["Emmy Noether"],
               "Small learning rates find flat minima.", primary="cs.LG", categories=["cs.LG", "stat.ML"]),
    ArxivPaper("2302.00003", "Deja vu: Tables All the Way Down", ["Kurt Gödel", "<b>Mallory</b> @everyone"],
               "Tables from scanned papers."),
]


class FakeClock:
    """Virtual time for the gate: sleeping advances it, so the real three-second rule runs without the wait."""

    def __init__(self) -> None:
        self.t = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def _client(server: ArxivServer, clock: FakeClock, tmp: Path, **kw) -> ArxivClient:
    gate = SpacingGate(tmp / "arxiv.gate", clock=clock, sleep=clock.sleep)
    return ArxivClient(server.url, PoliteHosts(gate, ("127.0.0.1",)), "ops@weekly.test", backoff=0.01, **kw)


def _config(tmp: Path, port: int | None, api: str, enabled: bool = True):
    return write_config(tmp, port, arxiv=f'api_base = "{api}"\nenabled = {str(enabled).lower()}\n')


# -- ids -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,expected", [
    ("https://arxiv.org/abs/2303.08774", "2303.08774"),
    ("https://arxiv.org/abs/2303.08774v2", "2303.08774"),
    ("https://arxiv.org/pdf/2303.08774.pdf", "2303.08774"),
    ("https://arxiv.org/pdf/2303.08774v3", "2303.08774"),
    ("https://arxiv.org/html/2402.01234v1/", "2402.01234"),
    ("http://www.arxiv.org/abs//2306.13421", "2306.13421"),
    ("https://export.arxiv.org/abs/1501.00001", "1501.00001"),
    ("https://arxiv.org/abs/2404.07965#:~:text=Previous%20language", "2404.07965"),
    ("https://arxiv.org/abs/2303.08774?context=cs", "2303.08774"),
    ("https://arxiv.org/abs/0704.0001", "0704.0001"),
    ("https://arxiv.org/abs/cs/0112017", "cs/0112017"),
    ("https://arxiv.org/abs/cs/0112017v1", "cs/0112017"),
    ("https://arxiv.org/pdf/math/0406077", "math/0406077"),
    ("https://arxiv.org/abs/math.GT/0309136", "math.GT/0309136"),
    ("https://arxiv.org/abs/hep-th/9901001v3", "hep-th/9901001"),
    ("https://arxiv.org/list/cs.CL/recent", None),
    ("https://arxiv.org/", None),
    ("https://arxiv.org.evil.test/abs/2303.08774", None),
    ("https://github.com/example/2303.08774", None),
    ("javascript:alert(1)", None),
])
def test_every_arxiv_link_form_maps_to_its_id(url, expected):
    assert arxiv_id(url) == expected


_ANY_ARXIV = re.compile(r"https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/+[^\s)\]|\"'<>,]+")


def test_every_arxiv_link_in_the_seeds_and_corpus_maps_to_an_id_32():
    """Every arXiv paper link the real digests hold, in their text and in the papers paperbot parses from them."""
    corpus, seeds = shared_path("corpus"), shared_path("seeds")
    files = sorted(corpus.rglob("*.md")) + sorted(seeds.glob("*.txt"))
    checked = unmapped = parsed = 0
    bad = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        for url in _ANY_ARXIV.findall(text):
            checked += 1
            if arxiv_id(url.rstrip(".")) is None:
                unmapped += 1
                bad.append(url)
        if f.suffix == ".md":
            for week in parse_document(text.encode(), date(2025, 7, 20)).weeks:
                for p in week.papers:
                    for lk in p.links:
                        if re.match(r"https?://(www\.|export\.)?arxiv\.org/(abs|pdf|html)/", lk.url):
                            parsed += 1
                            assert arxiv_id(lk.url), lk.url
    print(f"\n#32: {checked} arXiv links in {len(files)} files of the seeds and corpus checked, "
          f"{parsed} links of parsed papers; {unmapped} did not map")
    assert checked > 10_000 and parsed > 10_000
    assert not bad, bad[:10]


# -- the client ------------------------------------------------------------------------------------------------

def test_an_answer_keeps_its_fields_whatever_prefix_arxiv_s_namespace_has(tmp_path):
    with ArxivServer(PAPERS, prefix="ax") as server:
        answer = _client(server, FakeClock(), tmp_path).fetch(["2302.00001", "2302.00002", "2302.09999"])
    first = answer.records[0]
    assert first.arxiv_id == "2302.00001"
    assert first.title == "Sparse Lanterns: Routing Tokens to a Handful of Experts"  # unwrapped, one line
    assert first.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper")
    assert first.primary_category == "cs.CL" and first.categories == ("cs.CL", "cs.LG")
    assert "zeppelinoid benchmark" in first.abstract and "\n" not in first.abstract
    assert answer.records[1].primary_category == "cs.LG"
    assert answer.missing == ("2302.09999",)
    assert server.seen[0].query["max_results"] == ["3"]  # the batch's size
    assert server.seen[0].query["id_list"] == ["2302.00001,2302.00002,2302.09999"]
    assert "paperbot/" in server.seen[0].user_agent and "mailto:ops@weekly.test" in server.seen[0].user_agent


def test_arxiv_s_error_feed_is_an_error_not_an_empty_answer(tmp_path):
    with ArxivServer(PAPERS) as server:
        with pytest.raises(ArxivError, match="incorrect id format for 12345"):
            _client(server, FakeClock(), tmp_path).fetch(["12345"])
    with pytest.raises(ArxivError, match="not an Atom feed"):
        parse_answer(b"<html><body>Service Unavailable", ("2302.00001",))


def test_429_and_503_are_retried_through_the_gate_then_answered(tmp_path):
    clock = FakeClock()
    with ArxivServer(PAPERS) as server:
        server.fail = [429, 503]
        answer = _client(server, clock, tmp_path).fetch(["2302.00001"])
    assert [r.arxiv_id for r in answer.records] == ["2302.00001"] and len(server.seen) == 3
    assert len(clock.slept) == 2 and all(abs(s - 3.0) < 0.05 for s in clock.slept)  # each retry waited its turn


def test_a_refusal_after_every_retry_is_recorded_and_asked_again_next_round(tmp_path):
    store = Store.open(tmp_path / "paperbot.db")
    store.replace_papers("dair", KEY, (Paper("Sparse Lanterns", links=(Link("Paper", "https://arxiv.org/abs/2302.00001"),)),))
    clock = FakeClock()
    with ArxivServer(PAPERS) as server:
        server.fail = [503] * 4
        client = _client(server, clock, tmp_path, retries=3)
        now = lambda: datetime(2024, 3, 1, tzinfo=UTC)  # noqa: E731
        first = enrich(store, client, now)
        assert first.error and "503" in first.error and first.left == 1
        assert store.arxiv_counts().last_error and store.arxiv_counts().enriched == 0
        second = enrich(store, client, now)
    assert second.found == 1 and store.arxiv_counts().enriched == 1


def test_requests_to_arxiv_are_three_seconds_apart_across_the_api_and_a_feed_source(tmp_path):
    """The real gate at its real default (3 s): enrichment batches and an arxiv-hosted feed share it, across two
    threads; the local servers see the arrivals at least three seconds apart."""
    from sources_support import DocServer

    from bot.sources.fetch_http import HttpOptions, conditional_get
    from bot.sources.polite import arxiv_gate

    store = Store.open(tmp_path / "paperbot.db")
    papers = tuple(Paper(f"P{i}", links=(Link("Paper", f"https://arxiv.org/abs/2302.{i:05d}"),)) for i in range(120))
    store.replace_papers("dair", KEY, papers)
    with ArxivServer(PAPERS) as api, DocServer() as feeds:
        feeds.put("/rss/cs.CL", b"<rss version='2.0'><channel><title>cs.CL</title></channel></rss>",
                  content_type="application/rss+xml")
        gate = arxiv_gate(tmp_path / "state", api.url)  # the gate every fetch of this state folder shares
        client = ArxivClient(api.url, gate)

        def poll_feed() -> None:
            for _ in range(2):
                conditional_get(feeds.url("/rss/cs.CL"), options=HttpOptions(gate=gate))

        t = threading.Thread(target=poll_feed)
        t.start()
        result = enrich(store, client, lambda: datetime.now(UTC))  # 120 ids: three batches of at most 50
        t.join()
        arrivals = sorted([s.at for s in api.seen] + [r.at for r in feeds.requests_to("/rss/cs.CL")])
    assert result.asked == 120 and [len(s.query["id_list"][0].split(",")) for s in api.seen] == [50, 50, 20]
    assert len(arrivals) == 5
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= 2.95, gaps


# -- what readers see -------------------------------------------------------------------------------------------

def test_a_week_gains_its_authors_and_categories_in_the_email_and_on_the_web(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    with smtp_server() as (rec, port), ArxivServer(PAPERS) as server:
        cfg = _config(tmp_path, port, server.url)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, ["reader@example.net"])
        clock = FakeClock()
        result = enrich_round(cfg, store, lambda: datetime(2023, 3, 9, tzinfo=UTC),
                              client=_client(server, clock, tmp_path))
        assert result.found == 3
        publish_week(cfg, store, week, now=datetime(2023, 3, 10, tzinfo=UTC))
        (raw,) = [m for _, m in rec.messages]
    msg = parse(raw)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Ada Lovelace, Alan Turing, Grace Hopper" in body
        assert "cs.LG · stat.ML" in body
        assert "Sparse Lanterns" in body and "routes tokens to a handful of experts" in body  # the curator's words
        assert "zeppelinoid" not in body  # the abstract is for search, never instead of the summary
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html and "<b>Mallory" not in html  # arXiv's text stays text
    page = (cfg.state_dir / "editions" / "dair" / f"{KEY}.html").read_text()
    assert "Ada Lovelace" in page and "cs.LG" in page


def test_enrichment_after_sending_changes_the_web_copy_only(tmp_path, monkeypatch):
    """An edition carries what the cache held when it was planned; what arXiv adds later shows on the web (its
    stored copy is rendered again, with the papers it went out with), and no email goes out again."""
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    with smtp_server() as (rec, port), ArxivServer(PAPERS) as server:
        cfg = _config(tmp_path, port, server.url)
        store = Store.open(cfg.db_path)
        week = ready_week(store, cfg)
        add_subscribers(store, tmp_path, ["reader@example.net"])
        publish_week(cfg, store, week, now=datetime(2023, 3, 10, tzinfo=UTC))
        result = enrich_round(cfg, store, lambda: datetime(2023, 3, 11, tzinfo=UTC),
                              client=_client(server, FakeClock(), tmp_path))
        publish_week(cfg, store, store.week("dair", KEY), now=datetime(2023, 3, 12, tzinfo=UTC))
        sent = edition_from_store(store, "dair", KEY, "email")
        web = edition_from_store(store, "dair", KEY)
    assert result.found == 3 and rec.count() == 1
    assert "Ada Lovelace" not in rec.messages[0][1].decode("utf-8", "replace")
    assert sent.arxiv == () and len(web.arxiv) == 3  # what the email was planned with; the web's everything
    page = (cfg.state_dir / "editions" / "dair" / f"{KEY}.html").read_text()
    assert "Ada Lovelace" in page


def test_the_week_goes_out_while_arxiv_hangs(tmp_path, monkeypatch):
    """The daemon publishes on its poll while its enrichment waits on a hung arXiv: nothing waits on arXiv."""
    from conftest import commit_file, make_repo
    from publish_support import DIGEST

    from bot.daemon import Daemon

    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", DIGEST, "2023-02-27T12:00:00+00:00")
    with smtp_server() as (rec, port), ArxivServer(PAPERS) as server:
        server.hang = threading.Event()
        write_config(tmp_path, port, arxiv=f'api_base = "{server.url}"\n')
        path = tmp_path / "paperbot.toml"
        path.write_text(path.read_text().replace("[email]", f'[[sources]]\nname = "dair"\ngit = "{repo}"\n'
                                                 'every = "1h"\n[publish]\nbackfill = 1\nsettle = "0s"\n[email]'))
        cfg = load_config(path)
        store = Store.open(cfg.db_path)
        add_subscribers(store, tmp_path, ["reader@example.net"])
        store.close()
        daemon = Daemon(cfg, clock=lambda: datetime(2023, 3, 10, tzinfo=UTC))
        runner = threading.Thread(target=daemon.run)
        runner.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (rec.count() and server.seen):
                time.sleep(0.1)
            assert rec.count() == 1, "the week did not go out"
            assert server.seen and not server.hang.is_set()  # arXiv was asked and has not answered
        finally:
            server.hang.set()
            daemon.stop.set()
            runner.join(30)
    store = Store.open(cfg.db_path)
    assert store.week("dair", KEY).state == "published"


# -- identity and search ---------------------------------------------------------------------------------------

def test_search_finds_a_word_only_the_abstract_holds_and_shows_one_paper_once_with_every_edition(tmp_path):
    cfg = _config(tmp_path, None, "http://127.0.0.1:9/api/query")
    store = Store.open(cfg.db_path)
    week = ready_week(store, cfg)
    store.db.execute("UPDATE weeks SET state = 'published' WHERE key = ?", [week.key])
    other = parse_document((b"# Another digest\n\n## Papers of the Week (Mar 6 - Mar 12)\n\n"
                            b"| Paper | Links |\n| --- | --- |\n"
                            b"| 1) **Lanterns that route** - same paper, other words. "
                            b"| [PDF](https://arxiv.org/pdf/2302.00001v2.pdf) |\n"), date(2023, 3, 13))
    from bot.track.tracker import observe, release
    observe(store, "other", other, datetime(2023, 3, 13, tzinfo=UTC), "o1", cfg.publish)
    release(store, datetime(2023, 3, 30, tzinfo=UTC), cfg.publish)
    store.db.execute("UPDATE weeks SET state = 'published' WHERE source = 'other'")
    with ArxivServer(PAPERS) as server:
        enrich(store, _client(server, FakeClock(), tmp_path), lambda: datetime(2023, 3, 30, tzinfo=UTC))
    total, hits = reader.search(store, cfg, "zeppelinoid")
    assert total == 1 and len(hits) == 1
    editions = {(e["source"], e["key"]) for e in hits[0]["editions"]}
    assert editions == {("dair", KEY), ("other", "2023-03-06..2023-03-12")}
    total, hits = reader.search(store, cfg, "lanterns")
    assert total == 1 and len(hits) == 1  # in two digests, one paper
    total, _ = reader.search(store, cfg, "Noether")  # arXiv's authors are searchable too
    assert total == 1


# -- the pure rules --------------------------------------------------------------------------------------------

REC = ArxivRecord("2302.00001", "Sparse Lanterns: Routing Tokens to a Handful of Experts",
                  tuple(f"Author {i}" for i in range(12)))


def test_arxiv_s_title_stands_in_only_where_the_row_has_none_or_an_unmarked_title_it_begins():
    row = Paper("Sparse Lanterns: Routing Tokens to a Handful of Experts shows halved compute", "More.",
                title_marked=False)
    assert title_and_summary(row, REC) == (REC.title, "shows halved compute More.")
    assert title_and_summary(replace(row, title_marked=True), REC) == (row.title, "More.")  # bold: as written
    assert title_and_summary(Paper("", "Just a summary."), REC) == (REC.title, "Just a summary.")
    assert title_and_summary(Paper("Lanterns", "x", title_marked=False), REC) == ("Lanterns", "x")
    assert title_and_summary(row, None) == (row.title, "More.")


def test_authors_are_the_row_s_else_arxiv_s_cut_after_eight():
    assert author_line(Paper("t", authors="The Curators"), REC) == "The Curators"
    assert author_line(Paper("t"), REC) == ", ".join(f"Author {i}" for i in range(8)) + " and 4 more"
    assert user_agent("") .startswith("paperbot/")


def test_on_x_arxiv_s_authors_go_in_only_when_the_post_fits_whole_with_them():
    """#32: "on X only if it fits": a short post gains a byline (its @ made inert, so no mention), a post the
    summary already fills keeps every word of the summary and has no byline."""
    from bot.channels.x.compose import compose_thread
    from bot.channels.x.text import fits
    from bot.edition.edition import Edition

    short = Paper("Sparse Lanterns", "Routes tokens.", (Link("Paper", "https://arxiv.org/abs/2302.00001"),))
    from bot.channels.x.compose import paper_post
    link = (Link("Paper", "https://arxiv.org/abs/2302.00002"),)
    # A summary that leaves the post a few characters short of X's 280: room for no byline.
    summary = next(s for n in range(100, 260) if 274 <= paper_post(
        Paper("Quiet Gradients", s := "Small steps, flat minima. " * (n // 26) + "x" * (n % 26), link), 2, 2).weight)
    long = Paper("Quiet Gradients", summary, link)
    records = (ArxivRecord("2302.00001", "Sparse Lanterns", ("Ada Lovelace", "@elonmusk Turing", "Grace Hopper",
                                                               "Emmy Noether")),
               ArxivRecord("2302.00002", "Quiet Gradients", ("Kurt Gödel",)))
    edition = Edition("dair", KEY, "Top ML Papers of the Week", None, None, (short, long), arxiv=records)
    head, first, second = compose_thread(edition, web_url="https://papers.weekly.test/e")
    assert "Ada Lovelace, " in first.text and "Grace Hopper and 1 more" in first.text
    assert "@elonmusk" not in first.text  # inert: never a mention
    assert "Kurt Gödel" not in second.text and summary in second.text
    assert all(fits(p.text) for p in (head, first, second))
