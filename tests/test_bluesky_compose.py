"""Issue #30: a week's thread on Bluesky as text and facets (bot/channels/bluesky/compose.py, text.py), pure.

Every post is checked here as Bluesky's server checks it, with another library than paperbot's: graphemes with
`grapheme`, bytes with UTF-8, each facet a byte range decoded back to the anchor text it covers. The real seeds
and corpus (../shared/) are composed week by week; the module prints how many posts it checked.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

import grapheme
import pytest
from conftest import shared_path
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.bluesky.compose import compose_thread, head_post, paper_link, paper_post
from bot.channels.bluesky.settings import normalize_tags
from bot.channels.bluesky.text import (
    Span,
    anchor,
    facet_text,
    grapheme_count,
    rich,
    shorten,
    tid,
    tid_micros,
)
from bot.edition.edition import Edition, LateGroup
from bot.track.model import Link, Paper
from bot.track.parsing import parse_document

WEB = "https://papers.weekly.test/editions/dair/2023-02-20..2023-02-26"
LONG = "and the results improve on every benchmark we could find. " * 12


def paper(i: int, title: str = "", summary: str = LONG, links: tuple[Link, ...] | None = None) -> Paper:
    return Paper(title or f"Paper {i}", summary, links if links is not None else (
        Link("Paper", f"https://arxiv.org/pdf/2302.{i:05d}v2.pdf"), Link("Code", f"https://github.com/lab/p{i}")),
        number=i)


def edition(papers: tuple[Paper, ...], late: tuple[LateGroup, ...] = ()) -> Edition:
    return Edition("dair", "2023-02-20..2023-02-26", "Top ML Papers of the Week (Feb 20-26)", date(2023, 2, 20),
                   date(2023, 2, 26), papers, late)


def check_post(post, allowed_links: set[str], tags: tuple[str, ...] = ()) -> None:
    """As the server would: 300 graphemes, 3000 bytes, facets on character boundaries over their anchors; and
    no facet but paperbot's: its links (each over the link's short anchor text) and the configured tags."""
    assert grapheme.length(post.text) <= 300 and len(post.text.encode("utf-8")) <= 3000, post.text
    assert post.graphemes == grapheme.length(post.text) or not post.text.isascii()
    r = rich([Span(post.text)])
    for f in post.facets:
        (feature,) = f["features"]
        shown = facet_text(type(r)(post.text, ()), f)
        if feature["$type"] == "app.bsky.richtext.facet#link":
            assert feature["uri"] in allowed_links and shown == anchor(feature["uri"]), (feature, shown)
        else:
            assert feature["$type"] == "app.bsky.richtext.facet#tag" and feature["tag"] in tags
            assert shown == "#" + feature["tag"]


def test_a_ten_paper_week_is_eleven_posts_each_within_300_graphemes_with_link_facets():
    """issue #30: the head, then one post per paper in order; each paper's link a facet over its anchor."""
    papers = tuple(paper(i) for i in range(1, 11))
    posts = compose_thread(edition(papers), web_url=WEB, credit="DAIR.AI")
    assert len(posts) == 11 and [p.index for p in posts] == list(range(11))
    assert posts[0].text.startswith("Top ML Papers of the Week\n20–26 February 2023\n\n10 papers this week")
    assert "Curated by DAIR.AI" in posts[0].text and posts[0].links == (WEB,)
    for i, post in enumerate(posts[1:], start=1):
        assert post.text.startswith(f"{i}/10 Paper {i}\n\n")
        assert post.links == (f"https://arxiv.org/abs/2302.{i:05d}",)
        assert post.text.endswith(f"arxiv.org/abs/2302.{i:05d}") and "…" in post.text
        check_post(post, {post.links[0]})
    check_post(posts[0], {WEB})


def test_facets_are_byte_ranges_over_utf8_after_emoji_and_cjk():
    """A facet after multi-byte text starts at its byte offset, not its character offset."""
    p = paper(1, title="稀疏灯笼 👩‍👩‍👧‍👦 Déjà vu 🇯🇵", summary="短い要約 with émoji 🚀 and more words here to read")
    post = paper_post(p, 1, 1)
    (f,) = post.facets
    start = post.text.encode("utf-8").index(b"arxiv.org/abs/2302.00001")
    assert f["index"] == {"byteStart": start, "byteEnd": start + len("arxiv.org/abs/2302.00001")}
    assert start > post.text.index("arxiv.org")  # bytes, not characters
    check_post(post, {"https://arxiv.org/abs/2302.00001"})


def test_graphemes_count_clusters_and_cuts_never_split_one():
    family = "👩‍👩‍👧‍👦"
    assert grapheme_count(family * 3) == 3 == grapheme.length(family * 3)
    assert grapheme_count("🇯🇵🇰🇷e\u0301") == 3
    cut = shorten(family * 400, 300)
    assert grapheme_count(cut) == 300 and cut.endswith("…") and cut[:-1] == family * 299
    assert shorten("a quiet sentence with words", 12) == "a quiet…"


def test_a_long_title_is_shortened_never_split_and_the_summary_goes_first():
    p = paper(1, title="Scaling " + "remarkably deep and wide models " * 15)
    post = paper_post(p, 1, 10)
    assert post.graphemes <= 300 and "\n\n" in post.text and "…" in post.text.split("\n")[0]
    assert LONG[:20] not in post.text  # the summary went first
    check_post(post, {"https://arxiv.org/abs/2302.00001"})


def test_digest_text_stays_as_written_urls_mentions_and_tags_get_no_facet():
    """issue #30: only facets make anything live on Bluesky; text from the digest gets none."""
    p = paper(1, title="Talking to @openai.com about #LLM at https://example.org/x", summary="see @dair-ai.bsky.social")
    post = paper_post(p, 1, 1)
    assert "@openai.com about #LLM at https://example.org/x" in post.text and "@dair-ai.bsky.social" in post.text
    assert [f["features"][0]["uri"] for f in post.facets] == ["https://arxiv.org/abs/2302.00001"]


def test_configured_tags_are_tag_facets_on_the_head_post():
    posts = compose_thread(edition((paper(1),)), web_url=WEB, tags=normalize_tags(["ML", "#AI"]))
    head = posts[0]
    assert head.text.endswith("#ML #AI")
    assert [f["features"][0] for f in head.facets][1:] == [
        {"$type": "app.bsky.richtext.facet#tag", "tag": "ML"}, {"$type": "app.bsky.richtext.facet#tag", "tag": "AI"}]
    check_post(head, {WEB}, ("ML", "AI"))
    with pytest.raises(ValueError, match="not a tag"):
        normalize_tags(["two words"])


def test_late_papers_are_carried_at_the_end_as_on_x():
    late = (LateGroup("2023-02-13..2023-02-19", "Feb 13-19", date(2023, 2, 13), date(2023, 2, 19),
                      (paper(11), paper(12))),)
    posts = compose_thread(edition(tuple(paper(i) for i in range(1, 4)), late), web_url=WEB)
    assert len(posts) == 6 and "2 papers added to earlier weeks" in posts[0].text
    assert posts[4].text.startswith("Added to 13–19 February 2023 (1/2): Paper 11")
    assert posts[5].index == 5


def test_the_paper_link_prefers_the_arxiv_abstract_page():
    assert paper_link(paper(3)) == "https://arxiv.org/abs/2302.00003"
    assert paper_link(paper(3, links=(Link("Code", "javascript:alert(1)"), Link("Blog", "https://b.test/p")))) \
        == "https://b.test/p"
    assert paper_link(paper(3, links=())) is None


def test_a_head_title_too_long_is_shortened_and_the_credit_goes_first():
    ed = Edition("s", "k", "A " + "very " * 120 + "long title", None, None, (paper(1),))
    head = head_post(ed, web_url=WEB, credit="Someone")
    assert head.graphemes <= 300 and "Curated by" not in head.text and "…" in head.text


def test_record_keys_are_valid_tids_in_order():
    """issue #30: a TID is 13 base32-sortable characters: 53 bits of microseconds, 10 of clock id."""
    keys = [tid(1_700_000_000_000_000 + i, 17) for i in range(3)]
    assert all(len(k) == 13 and k[0] in "234567abcdefghij" for k in keys) and keys == sorted(keys)
    assert tid_micros(keys[2]) == 1_700_000_000_000_002
    with pytest.raises(ValueError):
        tid_micros("not-a-tid")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=600), st.text(max_size=3000), st.text(max_size=200))
def test_any_title_and_summary_fit(title, summary, week_title):
    ed = Edition("s", "k", week_title, None, None, (Paper(title, summary, (Link("P", "https://arxiv.org/abs/1.2"),)),))
    for post in compose_thread(ed, web_url=WEB, credit=title[:80]):
        assert grapheme_count(post.text) <= 300 and len(post.text.encode("utf-8")) <= 3000
        for f in post.facets:
            assert facet_text(rich([Span(post.text)]), f) == anchor(f["features"][0]["uri"])


# -- the real seeds and corpus (../shared/) -----------------------------------------------------------------

LATE = 3


@pytest.fixture(scope="module")
def checked(request):
    counts = {"posts": 0, "late": 0, "editions": 0}
    yield counts
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None and counts["posts"]:
        with capture.global_and_fixture_disabled():
            print(f"\nissue #30: {counts['posts']} Bluesky posts from the seeds and corpus checked "
                  f"({counts['editions']} threads; {counts['late']} of the posts late additions): all within 300 "
                  "graphemes and 3000 bytes, no facet but paperbot's links")


def _check(ed: Edition, checked: dict[str, int]) -> int:
    posts = compose_thread(ed, web_url=WEB, credit="DAIR.AI", tags=("ML",))
    assert len(posts) == 1 + len(ed.papers) + ed.late_papers
    papers = [*ed.papers, *(p for g in ed.late for p in g.papers)]
    check_post(posts[0], {WEB}, ("ML",))
    for post, p in zip(posts[1:], papers, strict=True):
        link = paper_link(p)
        check_post(post, {link} if link else set())
        assert post.links == ((link,) if link else ())
    checked["posts"] += len(posts)
    checked["late"] += ed.late_papers
    checked["editions"] += 1
    return len(posts)


def _editions(path: Path, as_of: date) -> list[Edition]:
    doc = parse_document(path.read_bytes(), as_of)
    if not doc.weeks:
        return [Edition("src", "all", path.name, None, None, doc.papers)] if doc.papers else []
    weeks = sorted((w for w in doc.weeks if w.papers), key=lambda w: w.key)
    return [Edition("src", w.key, w.title, w.first_day, w.last_day, w.papers,
                    () if b is None else (LateGroup(b.key, b.title, b.first_day, b.last_day, b.papers[:LATE]),))
            for b, w in zip([None, *weeks[:-1]], weeks, strict=True)]


@pytest.mark.parametrize("pattern", ["001_*", "002_*", "003_*", "004_*"])
def test_every_week_of_the_seeds_composes_within_the_limits(pattern, checked):
    """issue #30: every week of each seed, late additions included."""
    paths = [p for p in sorted(shared_path("seeds").glob(pattern)) if p.is_file()]
    eds = [ed for p in paths for ed in _editions(p, date(2025, 1, 1))]
    n = sum(_check(ed, checked) for ed in eds)
    assert paths and n >= len(paths) * 2
    print(f"issue #30: seeds/{pattern}: {n} posts checked")


def test_every_week_of_the_2023_corpus_composes_within_the_limits(checked):
    last = sorted(shared_path("corpus", "dair-ai-2023").glob("0*.md"))[-1]
    eds = _editions(last, date(2024, 1, 1))
    assert len(eds) > 40
    n = sum(_check(ed, checked) for ed in eds)
    print(f"issue #30: the 2023 corpus: {n} posts checked")


def test_every_week_of_the_latest_readme_composes_within_the_limits(checked):
    eds = _editions(shared_path("corpus", "dair-ai-latest") / "README.md", date(2025, 7, 20))
    assert len(eds) == 130
    n = sum(_check(ed, checked) for ed in eds)
    print(f"issue #30: the latest README: {n} posts checked")


@functools.cache
def _earlier(folder: Path) -> tuple[Paper, ...]:
    seen: dict[tuple, Paper] = {}
    for v in sorted(folder.glob("0*.md")):
        for w in parse_document(v.read_bytes(), date(2024, 1, 1)).weeks:
            for p in w.papers:
                seen.setdefault((p.title, p.summary, tuple((lk.label, lk.url) for lk in p.links)), p)
    return tuple(seen.values())


def test_every_paper_in_every_version_of_the_2023_corpus_composes_within_the_limits(checked):
    """Every distinct form of a paper across the 2023 digest's versions (typos since fixed, reworded summaries)."""
    papers = _earlier(shared_path("corpus", "dair-ai-2023"))
    eds = [Edition("src", f"v-{i}", "Versions", None, None, papers[i:i + 10]) for i in range(0, len(papers), 10)]
    n = sum(_check(ed, checked) for ed in eds)
    assert n == len(eds) + len(papers)
    print(f"issue #30: every version of the 2023 corpus: {n} posts checked")
