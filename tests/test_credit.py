"""Issue #16: every edition credits the digest it republishes (bot/edition/credit.py) and links to the original,
the README section's anchor where there is one; the `credit` setting of a source overrides both."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.channels import load_config
from bot.config import ConfigError, SourceConfig
from bot.edition.credit import Credit, credit_for, github_anchor
from bot.track.late import LateGroup
from bot.track.model import Week

DATED = Week(key="2024-05-20..2024-05-26", title="AI Papers of the Week (May 20 - May 26) - 2024")
ISO = Week(key="2026-W47", title="Lab Notes & News, week 2026-W47")


def source(kind: str, location: str, **kw) -> SourceConfig:
    return SourceConfig(name="src", kind=kind, location=location, **kw)


@pytest.mark.parametrize("heading, anchor", [
    # ids as github.com gives them to these headings (github-slugger: no punctuation, each space a hyphen)
    ("AI Papers of the Week (May 20 - May 26) - 2024", "ai-papers-of-the-week-may-20---may-26---2024"),
    ("Top ML Papers of the Week (Feb 20-26)", "top-ml-papers-of-the-week-feb-20-26"),
    ("Top ML Papers of the Week (Dec 30, 2024 - Jan 5)", "top-ml-papers-of-the-week-dec-30-2024---jan-5"),
    ("Déjà vu — Papers (Jan 1-7) 🚀", "déjà-vu--papers-jan-1-7-"),
    ("snake_case & C++ week", "snake_case--c-week"),
])
def test_github_anchor_follows_githubs_heading_ids(heading, anchor):
    assert github_anchor(heading) == anchor


def test_a_github_readme_week_links_to_its_section_on_the_repository_page():
    assert credit_for(source("github", "dair-ai/ML-Papers-of-the-Week"), DATED) == Credit(
        "dair-ai/ML-Papers-of-the-Week",
        "https://github.com/dair-ai/ML-Papers-of-the-Week#ai-papers-of-the-week-may-20---may-26---2024")


def test_another_file_or_branch_links_to_the_file_and_several_files_to_the_repository():
    c = credit_for(source("github", "lab/digest", paths=("2024.md",), branch="dev"), DATED)
    assert c.url == "https://github.com/lab/digest/blob/dev/2024.md#ai-papers-of-the-week-may-20---may-26---2024"
    c = credit_for(source("github", "lab/digest", paths=("README.md", "2024.md")), DATED)
    assert c.url == "https://github.com/lab/digest"  # which file holds the week is not kept: no anchor


@pytest.mark.parametrize("location", ["https://github.com/lab/digest.git", "git@github.com:lab/digest.git",
                                      "https://github.com/lab/digest"])
def test_a_git_source_on_github_is_credited_like_a_github_one(location):
    assert credit_for(source("git", location), DATED) == Credit(
        "lab/digest", "https://github.com/lab/digest#ai-papers-of-the-week-may-20---may-26---2024")


def test_a_local_git_repository_is_named_by_its_folder_and_has_no_link():
    assert credit_for(source("git", "/srv/mirrors/weekly-papers.git"), DATED) == Credit("weekly-papers", None)


def test_a_raw_github_url_links_to_the_file_on_github():
    c = credit_for(source("url", "https://raw.githubusercontent.com/lab/digest/refs/heads/main/README.md"), DATED)
    assert c == Credit("lab/digest", "https://github.com/lab/digest#ai-papers-of-the-week-may-20---may-26---2024")


def test_source_urls_never_show_their_credentials_or_token():
    """Secrets never in messages: a source read with a user:token or ?token= is linked without them."""
    c = credit_for(source("url", "https://reader:s3cret@notes.example.org/ml/notes.html?token=s3cret"), ISO)
    assert c == Credit("Lab Notes & News", "https://notes.example.org/ml/notes.html")
    c = credit_for(source("feed", "https://bot:s3cret@lab.example.org/blog/feed.xml?token=s3cret"), ISO)
    assert c == Credit("Lab Notes & News", "https://lab.example.org/blog/")
    assert credit_for(source("git", "https://bot:s3cret@git.example.org/lab/digest.git"), DATED).url == \
        "https://git.example.org/lab/digest"


def test_a_feed_is_named_by_its_own_title_else_by_its_host():
    assert credit_for(source("feed", "https://www.lab.example.org/rss"), ISO).name == "Lab Notes & News"
    untitled = Week(key="2026-W47", title="Feed, week 2026-W47")  # the parser's stand-in for a missing title
    assert credit_for(source("feed", "https://www.lab.example.org/rss"), untitled) == Credit(
        "lab.example.org", "https://www.lab.example.org/")


def test_the_credit_setting_overrides_name_and_link():
    c = credit_for(source("github", "dair-ai/ML-Papers-of-the-Week", credit="DAIR.AI"), DATED)
    assert c.name == "DAIR.AI" and c.url and c.url.endswith("#ai-papers-of-the-week-may-20---may-26---2024")
    c = credit_for(source("github", "a/b", credit="Elvis", credit_url="https://elvis.example.org/"), DATED)
    assert c == Credit("Elvis", "https://elvis.example.org/")


def test_an_edition_of_late_papers_credits_the_week_they_came_from():
    group = LateGroup(DATED.key, DATED.title, None, None, ())
    assert credit_for(source("github", "dair-ai/ML-Papers-of-the-Week"), group).url.endswith(
        "#ai-papers-of-the-week-may-20---may-26---2024")
    late = Week(key=f"{DATED.key}+late1", title=f"Added to earlier weeks: {DATED.title}")
    assert credit_for(source("github", "dair-ai/ML-Papers-of-the-Week"), late).url == \
        "https://github.com/dair-ai/ML-Papers-of-the-Week"
    assert credit_for(None, DATED, "gone") == Credit("gone", None)  # a source no longer in the config


def _config(tmp_path: Path, credit: str):
    path = tmp_path / "paperbot.toml"
    path.write_text(f'[[sources]]\nname = "d"\ngithub = "a/b"\ncredit = {credit}\n', encoding="utf-8")
    return load_config(path)


def test_the_credit_setting_is_a_name_or_a_table_and_mistakes_name_the_key(tmp_path):
    assert _config(tmp_path, '"DAIR.AI"').sources[0].credit == "DAIR.AI"
    s = _config(tmp_path, '{ name = "DAIR.AI", url = "https://dair.ai/" }').sources[0]
    assert (s.credit, s.credit_url) == ("DAIR.AI", "https://dair.ai/")
    assert _config(tmp_path, '{ url = "https://dair.ai/" }').sources[0].credit is None
    for bad, says in [("3", "sources[0].credit: must be a name or a table"),
                      ('{ name = "x", link = "y" }', "sources[0].credit: unknown key 'link'"),
                      ('{ url = "javascript:alert(1)" }', "sources[0].credit.url: 'javascript:alert(1)' must be"),
                      ('""', "sources[0].credit.name: must be 1 to 120 characters")]:
        with pytest.raises(ConfigError) as e:
            _config(tmp_path, bad)
        assert says in str(e.value) and "paperbot.toml" in str(e.value)
