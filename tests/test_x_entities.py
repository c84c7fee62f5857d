"""Issue #21, "Only configured entities": the only hashtags in paperbot's posts on X are `[x] hashtags`, and the
only links paperbot's own; no hashtag, cashtag, mention or URL comes from a digest, a feed or a week's title.

Every check runs twitter-text's own entity extractor (npm `twitter-text`, tests/x_entities_support.py) over the
texts: those the local X server received from the real pipeline, those composed from hostile fixtures, and every
post composed from the real seeds and corpus (../shared/, skipped when absent).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from conftest import shared_path
from test_x_compose import CHUNKS, LATE, WEB, _earlier_2023_papers, _editions
from test_x_thread import publish, x  # noqa: F401  (x: the local X server fixture)
from x_entities_support import entities, hashtags, require_twitter_text, stray

from bot.channels import load_config
from bot.channels.email.render import Edition
from bot.channels.x.compose import compose_thread
from bot.channels.x.text import fits, inert
from bot.store import Store
from bot.track.late import LateGroup
from bot.track.model import Link, Paper
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

TAGS = ["ML", "AI"]
CONFIGURED = ["#ML", "#AI"]

# What a hostile upstream writes: hashtags (ASCII, fullwidth `＃`, CJK, with a joiner character, the configured
# ones too), cashtags (with a suffix), mentions and bare domains, in every field a post shows.
HOSTILE_TITLES = (
    "#LLM #RAG ＃Agents beat $AAPL and $TSLA",
    "$BTC.X to the moon #crypto #ML #AI",
    "＃ｆｕｌｌｗｉｄｔｈ #日本語 #·a #a1 x#y",
    "Follow @spam_account and $GME #FollowFriday",
)
HOSTILE_SUMMARY = ("Retweet #giveaway ＃free $AMC $NVDA now, see evil.example.com and @user, #ai_safety #ML. "
                   "Still readable: C# code, #1 paper, $5 prize, keycap #️⃣.")


def assert_only_configured(texts: list[str], links: list[set[str]], expected_tags: list[list[str]]) -> None:
    """twitter-text finds, in each text, exactly `expected_tags` as hashtags and no entity but `links`."""
    found = entities(texts)
    for text, mine, tags, ents in zip(texts, links, expected_tags, found, strict=True):
        assert hashtags(ents) == tags, (ents, text)
        assert stray(ents, mine) == [], text


def hostile_edition() -> Edition:
    papers = tuple(Paper(title=t, summary=HOSTILE_SUMMARY, number=i,
                         links=(Link("Paper", f"https://arxiv.org/abs/2401.{i:05d}"),))
                   for i, t in enumerate(HOSTILE_TITLES, start=1))
    late = (LateGroup("2023-12-25..2023-12-31", "Week #late $LATE", None, None, papers[:2]),)
    return Edition("src", "2024-01-01..2024-01-07", "Top #ML ＃Papers $NVDA of the Week (Jan 1 - Jan 7)",
                   date(2024, 1, 1), date(2024, 1, 7), papers, late)


def test_hostile_digest_text_makes_no_hashtag_cashtag_or_mention_on_x_issue_21():
    """#21: `#tag`, `＃tag`, `$TICKER` in titles, summaries, the week title, a late week's title and the credit
    (a feed's title) are no entities in any post; the head post carries exactly the configured hashtags."""
    require_twitter_text()
    ed = hostile_edition()
    posts = compose_thread(ed, web_url=WEB, hashtags=TAGS, extra_link=True, credit="#FeedSpam $FEED Weekly")
    assert len(posts) == 1 + 4 + 2
    assert "Curated by # FeedSpam $ FEED Weekly" in posts[0].text  # shown as typed, one space more
    for post in posts:
        assert post.weight <= 280 and fits(post.text), post.text
    assert_only_configured([p.text for p in posts], [{WEB, *p.links} for p in posts],
                           [CONFIGURED] + [[]] * (len(posts) - 1))
    # what stays readable is left as it is: no entity there for X to find
    assert "C# code, #1 paper, $5 prize, keycap #️⃣" in posts[1].text


def test_inert_spaces_only_what_x_would_link_issue_21():
    """#21: `#`, `＃` and `$` followed by a tag character get a space, as `@` does; the rest stays as typed."""
    assert inert("#LLM ＃Agents $AAPL @bob") == "# LLM ＃ Agents $ AAPL @ bob"
    assert inert("#日本語 #a1 x#y $BTC.X") == "# 日本語 # a1 x# y $ BTC.X"
    assert inert("C# and F#, #1, $5, #️⃣, 100$") == "C# and F#, #1, $5, #️⃣, 100$"


def _feed(title: str) -> bytes:
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>
<link>https://blog.test/</link>
<item><title>#LLM beats $AAPL ＃Agents</title><link>https://arxiv.org/abs/2401.00001</link>
<description>Follow #ai $TSLA @bob and evil.example.com</description>
<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate></item>
<item><title>Plain paper</title><link>https://arxiv.org/abs/2401.00002</link>
<description>Nothing to see #here</description><pubDate>Wed, 03 Jan 2024 10:00:00 GMT</pubDate></item>
</channel></rss>""".encode()


def test_a_hostile_feed_reaches_x_with_only_the_configured_hashtags_issue_21(tmp_path, x):  # noqa: F811
    """#21 end to end: a feed whose title, items and summaries hold hashtags and cashtags, published by the real
    pipeline to the local X server: twitter-text finds in what X received only the configured hashtags in the
    head post and paperbot's own links."""
    require_twitter_text()
    from publish_support import write_config

    cfg = write_config(tmp_path, None, x=f'api_base = "{x.api_base}"\ndelay = "0s"\ntimeout = "5s"\n'
                                         'hashtags = ["ML", "AI"]\n')
    with cfg.path.open("a", encoding="utf-8") as f:
        f.write('\n[[sources]]\nname = "blog"\nfeed = "https://blog.test/feed.xml"\n')
    cfg = load_config(cfg.path)
    store = Store.open(cfg.db_path)
    try:
        doc = parse_document(_feed("#FeedSpam $FEED Weekly"), date(2024, 1, 10), "feed")
        observe(store, "blog", doc, datetime(2024, 1, 10, 12, tzinfo=UTC), "v1", cfg.publish)
        release(store, datetime(2024, 2, 10, tzinfo=UTC), cfg.publish)
        (rep,) = publish(cfg, store, datetime(2024, 2, 10, tzinfo=UTC))
        assert rep.published and rep.stats.sent == 3
    finally:
        store.close()
    posts = x.ours()
    assert len(posts) == 3 and "# FeedSpam $ FEED Weekly" in posts[0].text
    head_link = f"https://papers.weekly.test/editions/blog/{doc.weeks[0].key}"
    links = [{head_link}, {"https://arxiv.org/abs/2401.00001"}, {"https://arxiv.org/abs/2401.00002"}]
    assert_only_configured([p.text for p in posts], links, [CONFIGURED, [], []])


def test_the_title_of_a_feed_is_made_inert_in_the_week_title_and_the_credit_issue_21():
    """#21: the feed's title reaches the head post twice (the week title and the credit): inert both times."""
    require_twitter_text()
    doc = parse_document(_feed("＃Spam $SPAM Weekly"), date(2024, 1, 10), "feed")
    w = doc.weeks[0]
    ed = Edition("blog", w.key, w.title, w.first_day, w.last_day, w.papers)
    (post, *_) = compose_thread(ed, web_url=WEB, hashtags=TAGS, credit="＃Spam $SPAM Weekly")
    assert "＃ Spam $ SPAM Weekly" in post.text
    assert_only_configured([post.text], [{WEB}], [CONFIGURED])


# -- every post composed from the real seeds and corpus ------------------------------------------------------

def _check(eds: list[Edition]) -> int:
    texts, links = [], []
    for ed in eds:
        posts = compose_thread(ed, web_url=WEB, hashtags=TAGS, extra_link=True)
        assert all(p.weight <= 280 and fits(p.text) for p in posts)
        texts += [p.text for p in posts]
        links += [{WEB, *p.links} for p in posts]
    heads = {i for i, t in enumerate(texts) if t.endswith("#ML #AI")}
    assert_only_configured(texts, links, [CONFIGURED if i in heads else [] for i in range(len(texts))])
    assert len(heads) == len(eds)
    return len(texts)


SMALL_SOURCES = [("seeds", "00*"), ("corpus/feeds", "*.*")]


@pytest.mark.parametrize("folder,pattern", SMALL_SOURCES)
def test_no_entity_but_the_configured_ones_in_posts_from_the_seeds_and_feeds_issue_21(folder, pattern):
    """#21: every post composed from the seeds and the corpus's feeds (late additions included)."""
    require_twitter_text()
    paths = [p for p in sorted(shared_path(*folder.split("/")).glob(pattern)) if p.is_file()]
    eds = [ed for p in paths for ed in _editions(p, date(2025, 1, 1))]
    assert eds and _check(eds) > len(eds)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_no_entity_but_the_configured_ones_in_posts_from_the_dair_ai_corpus_issue_21(chunk):
    """#21: every post composed from the 2023 digest's last version, its earlier forms of papers, and the
    latest README."""
    require_twitter_text()
    last = sorted(shared_path("corpus", "dair-ai-2023").glob("0*.md"))[-1]
    eds = _editions(last, date(2024, 1, 1))[chunk::CHUNKS]
    eds += _editions(shared_path("corpus", "dair-ai-latest") / "README.md", date(2025, 7, 20))[chunk::CHUNKS]
    earlier = _earlier_2023_papers(shared_path("corpus", "dair-ai-2023"))[chunk::CHUNKS]
    eds += [Edition("src", f"earlier-{i}", "Earlier versions", None, None, earlier[i:i + 7],
                    (LateGroup("before", "Before", None, None, earlier[i + 7:i + 7 + LATE]),)
                    if earlier[i + 7:i + 7 + LATE] else ())
            for i in range(0, len(earlier), 10)]
    assert _check(eds) > 100


def test_the_extractor_finds_what_main_let_through_issue_21():
    """#21: the extractor itself sees hashtags, cashtags and mentions (so the checks above can fail)."""
    (found,) = entities(["#LLM ＃Agents $AAPL @bob arxiv.org"])
    assert hashtags(found) == ["#LLM", "#Agents"]
    assert [e.get("cashtag") or e.get("screenName") or e.get("url") for e in stray(found, set())] == [
        "AAPL", "bob", "arxiv.org"]
