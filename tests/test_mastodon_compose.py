"""Issue #31: the texts of a week's thread on Mastodon (bot/channels/mastodon/compose.py, text.py) and its settings.

Lengths, mentions, hashtags and links are judged by Mastodon's own rules as tests/mastodon_server.py writes them
out (MENTION_RE, HASHTAG_RE, URLs with a scheme, grapheme clusters), never with the code under test.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mastodon_server import find_links, find_mentions, find_tags, mastodon_length

from bot.channels.email.render import Edition
from bot.channels.mastodon.compose import ComposeError, Limits, compose_thread, paper_status
from bot.channels.mastodon.settings import normalize_hashtags, parse
from bot.channels.mastodon.text import inert
from bot.config.values import ConfigError
from bot.track.late import LateGroup
from bot.track.model import Link, Paper
from bot.track.parsing import parse_document

WEB = "https://papers.weekly.test/editions/dair/2024-01-01..2024-01-07"
LOREM = ("We introduce a simple method that scales language models to long contexts by compressing the cache; "
         "experiments on twelve benchmarks show consistent gains over strong baselines, with less memory. ")
# What a hostile or careless digest may hold: every form of mention, hashtag and link Mastodon would make.
HOSTILE = ("Ask @alice@mastodon.social and @bob, see #LLM #機械学習 ＃RAG #1 and https://evil.example/x?y=1 or "
           "http://a.b.co, gemini://capsule.example/p, ipfs://bafy/abc, xmpp:room@conf.example, "
           "magnet:?xt=urn:btih:abc, evil.example/path and mail me at carol@example.org")


def paper(i: int, title: str | None = None, summary: str = LOREM * 2) -> Paper:
    links = (Link("Paper", f"https://arxiv.org/pdf/2401.{i:05d}v2.pdf"), Link("Code", f"https://github.com/l/r{i}"))
    return Paper(title=title or f"Paper number {i}: a study of things", summary=summary, links=links, number=i)


def edition(papers, title: str = "Top ML Papers of the Week", late=()) -> Edition:
    return Edition("dair", "2024-01-01..2024-01-07", title, date(2024, 1, 1), date(2024, 1, 7), tuple(papers),
                   tuple(late))


def assert_clean(text: str, limits: Limits, allowed: set[str], tags: set[str] = frozenset()) -> None:
    """Within the instance's limit by Mastodon's count; no mention; no hashtag but `tags`; no link but `allowed`."""
    assert mastodon_length(text, limits.reserved_per_url) <= limits.max_characters, text
    assert find_mentions(text) == [], (find_mentions(text), text)
    assert {t.lower() for t in find_tags(text)} <= {t.lower() for t in tags}, (find_tags(text), text)
    assert {u for _, _, u in find_links(text)} <= allowed, (find_links(text), text)


def test_digest_text_is_defanged_so_mastodon_makes_no_mention_tag_or_link():
    """issue #31: @user@host, @user, #tag, ＃tag and URLs of every scheme Mastodon links come out inert, and
    still readable."""
    assert find_mentions(HOSTILE) and find_tags(HOSTILE) and find_links(HOSTILE)  # the rules do find them
    safe = inert(HOSTILE)
    assert find_mentions(safe) == [] and find_tags(safe) == [] and find_links(safe) == [], safe
    assert "@ alice@" in safe and "# LLM" in safe and "#1" in safe and "https[:]//evil" in safe
    assert "gemini[:]//capsule" in safe and "xmpp[:]room" in safe and "magnet[:]?xt" in safe
    assert "evil.example/path" in safe  # no scheme: Mastodon links nothing there, so it stays as typed


def test_a_ten_paper_week_gives_eleven_statuses_within_the_limit_with_only_paperbots_links_and_tags():
    limits = Limits(500, 23)
    papers = [paper(i, f"{HOSTILE[:60]} {i}", HOSTILE + " " + LOREM) for i in range(1, 11)]
    statuses = compose_thread(edition(papers, title=f"Week of #hype by @someone {HOSTILE[:40]}"), limits,
                              web_url=WEB, hashtags=["MachineLearning"], credit="@curator #tag")
    assert len(statuses) == 11 and [s.index for s in statuses] == list(range(11))
    assert_clean(statuses[0].text, limits, {WEB}, {"MachineLearning"})
    assert "#MachineLearning" in statuses[0].text and WEB in statuses[0].text
    for i, s in enumerate(statuses[1:], start=1):
        assert_clean(s.text, limits, {f"https://arxiv.org/abs/2401.{i:05d}"})
        assert s.text.startswith(f"{i}/10 ") and s.links == (f"https://arxiv.org/abs/2401.{i:05d}",)
        assert s.length >= mastodon_length(s.text, 23)  # paperbot's count is never below Mastodon's


def test_the_limit_is_the_instances_a_small_one_cuts_summaries_then_titles():
    """issue #31: the limits come from the instance: 500 keeps a whole summary; 200 cuts it with "…"; 60 leaves
    only a shortened title; 10 cannot hold a status at all (a clear error)."""
    p = paper(1, "A Title " * 6, LOREM)
    whole = paper_status(p, 1, 1, Limits(500, 23))
    assert LOREM.strip() in whole.text
    cut = paper_status(p, 1, 1, Limits(200, 23))
    assert "…" in cut.text and mastodon_length(cut.text, 23) <= 200
    tiny = paper_status(p, 1, 1, Limits(60, 23))
    assert LOREM[:20] not in tiny.text and "…" in tiny.text and mastodon_length(tiny.text, 23) <= 60
    with pytest.raises(ComposeError, match="10 characters"):
        paper_status(p, 1, 1, Limits(10, 23))


def test_a_link_counts_as_the_instances_reserved_length():
    """issue #31: the arXiv link (32 characters) counts `characters_reserved_per_url`: with 23 a status holds
    more summary than with 60."""
    p = paper(1, "T", LOREM * 3)
    assert len(paper_status(p, 1, 1, Limits(300, 23)).text) > len(paper_status(p, 1, 1, Limits(300, 60)).text)


def test_hashtags_and_settings_are_checked():
    assert normalize_hashtags(["ML", "#AI", "機械学習"]) == ("#ML", "#AI", "#機械学習")
    for bad in (["two words"], ["123"], "ML"):
        with pytest.raises(ValueError):
            normalize_hashtags(bad)
    s = parse({"instance": "https://mastodon.example/", "visibility": "Public", "language": "de"}, "f.toml")
    assert (s.instance, s.visibility, s.language) == ("https://mastodon.example", "public", "de")
    assert parse({}, "f.toml").visibility == "unlisted"
    for table, key in (({"visibility": "direct"}, "mastodon.visibility"), ({"language": "english"}, "language"),
                       ({"instance": "mastodon.social"}, "mastodon.instance"), ({"nope": 1}, "nope"),
                       ({"hashtags": ["a b"]}, "mastodon.hashtags")):
        with pytest.raises(ConfigError, match=key):
            parse(table, "f.toml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(min_size=0, max_size=400), summary=st.text(min_size=0, max_size=900))
def test_any_title_and_summary_fit_and_never_mention_tag_or_link(title, summary):
    for limits in (Limits(500, 23), Limits(180, 23)):
        s = paper_status(Paper(title=title, summary=summary, links=(Link("P", "https://arxiv.org/abs/2401.00001"),)),
                         1, 1, limits)
        assert_clean(s.text, limits, {"https://arxiv.org/abs/2401.00001"})


# -- the real seeds and corpus (../shared/) ------------------------------------------------------------------
LATE = 3


def _editions(path: Path, as_of: date) -> list[Edition]:
    """The document's weeks as editions, each carrying papers of the week before it as late additions."""
    doc = parse_document(path.read_bytes(), as_of)
    if not doc.weeks:
        return [Edition("src", "all", path.name, None, None, doc.papers)] if doc.papers else []
    weeks = sorted((w for w in doc.weeks if w.papers), key=lambda w: w.key)
    out = []
    for before, w in zip([None, *weeks[:-1]], weeks, strict=True):
        late = () if before is None else (LateGroup(before.key, before.title, before.first_day, before.last_day,
                                                    before.papers[:LATE]),)
        out.append(Edition("src", w.key, w.title, w.first_day, w.last_day, w.papers, late))
    return out


def test_every_week_of_the_seeds_and_corpus_gives_statuses_within_the_limit_with_no_mention_tag_or_foreign_link():
    """issue #31: every week of the seeds, the feeds, the 2023 digest and the latest README, each carrying three
    papers of the week before as late additions, composed within Mastodon's default limits (500, 23) and a
    smaller instance's (300, 23): no mention, no hashtag but the configured one, no link but paperbot's."""
    sources = [p for pat in ("001_*", "002_*", "003_*", "004_*") for p in sorted(shared_path("seeds").glob(pat))]
    sources += [p for p in sorted(shared_path("corpus", "feeds").glob("*.*")) if p.is_file()]
    sources += [sorted(shared_path("corpus", "dair-ai-2023").glob("0*.md"))[-1],
                shared_path("corpus", "dair-ai-latest") / "README.md"]
    eds = [ed for p in sources for ed in _editions(p, date(2025, 7, 20))]
    assert len(eds) > 150
    n = 0
    for limits in (Limits(500, 23), Limits(300, 23)):
        for ed in eds:
            statuses = compose_thread(ed, limits, web_url=WEB, hashtags=["MachineLearning"], credit=ed.source)
            assert len(statuses) == 1 + len(ed.papers) + ed.late_papers
            assert_clean(statuses[0].text, limits, {WEB}, {"MachineLearning"})
            for s in statuses[1:]:
                assert_clean(s.text, limits, set(s.links))
            n += len(statuses)
    print(f"\nissue #31: {n} Mastodon statuses from the seeds and corpus checked ({len(eds)} threads, at 500 and "
          "at 300 characters): all within the limit, no mention, no hashtag but the configured one, no link but "
          "paperbot's")
