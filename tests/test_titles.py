"""Issue #20: titles as the curator wrote them. Every numbering form of the real digests is the paper's number,
never part of its title; a title is the paper's name, never the start of its summary; a row without a name is a
defect with its line. The rows below are made up, in the forms the real digests show.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from newsletter_fixtures import write_config

from bot.channels.discord.compose import compose as discord_compose
from bot.channels.discord.settings import DiscordSettings
from bot.channels.email.render import render_newsletter
from bot.channels.x.compose import compose_thread
from bot.edition.edition import Edition
from bot.track.parse_digest import parse_digest
from bot.track.titles import read_cell, split_number

CELLS = [
    # numbering outside the bold, every style
    ("1) **Quiet Gradients** - a study of small learning rates.", 1, "N)", "Quiet Gradients", "a study of"),
    ("2). **Sparse Lanterns** - routes tokens to few experts.", 2, "N).", "Sparse Lanterns", "routes tokens"),
    ("3.) **Tables All the Way Down** - parses scanned tables.", 3, "N.)", "Tables All the Way Down", "parses"),
    ("(4) **Many-Shot Sketching** - The paper explores long prompts.", 4, "(N)", "Many-Shot Sketching", "The paper"),
    ("5. **Counting Sheep with Diffusion** Counts objects in crowds.", 5, "N.", "Counting Sheep with Diffusion",
     "Counts objects"),
    ("10)  **Long Context, Short Memory** - retrieval beats longer windows.", 10, "N)", "Long Context, Short Memory",
     "retrieval"),
    # the bold around the number and the title, or around the number alone
    ("**1). Graph Weavers** - a survey of graph transformers.", 1, "N).", "Graph Weavers", "a survey"),
    ("**2) Cheap Landmarks** - keeps one token per block.", 2, "N)", "Cheap Landmarks", "keeps one"),
    ("**10).**  **Honest Agents -** measures how often agents admit doubt.", 10, "N).", "Honest Agents",
     "measures how"),
    ("**3).**  **Pruning for Tiny Models - a** short survey of pruning methods.", 3, "N).",
     "Pruning for Tiny Models", "a short survey"),
    # odd bold: a space inside it, a single opening star, no space before the separator
    ("7) ** Grounded Planning with Small Models** - plans in words first.", 7, "N)",
     "Grounded Planning with Small Models", "plans in"),
    ("2) *Transformer Catalog** - a catalog of transformer models.", 2, "N)", "Transformer Catalog", "a catalog"),
    ("8) **Byte Models (BM)**- reads bytes, not tokens.", 8, "N)", "Byte Models (BM)", "reads bytes"),
    ("9) **Fold Three** -releases a structure model.", 9, "N)", "Fold Three", "releases a"),
    ("6) **Molecule Chat**  - a chat model for chemists.", 6, "N)", "Molecule Chat", "a chat model"),
    ("4) **Replication Diary - Part 2** - the second report of a replication.", 4, "N)",
     "Replication Diary - Part 2", "the second"),
    # the 2024-25 rows without bold: two spaces, a dash, or only the summary's opening words
    ("1) Tiny Planners  Introduces a planner that runs offline.", 1, "N)", "Tiny Planners", "Introduces a planner"),
    ("2) Slow Readers  - a reading benchmark for agents.", 2, "N)", "Slow Readers", "a reading benchmark"),
    ("3) Memo-7b - presents a model that remembers; it beats the  baseline.", 3, "N)", "Memo-7b", "presents a"),
    ("4) A Kernel for Agent Memory in LLMs Introduces a shared memory layer for agents, fixing a gap in  today's "
     "designs.", 4, "N)", "A Kernel for Agent Memory in LLMs", "Introduces a shared"),
    ("5) Shipping Chat Agents with Flow Charts This paper presents a way to build agents from flow charts.", 5, "N)",
     "Shipping Chat Agents with Flow Charts", "This paper presents"),
]


@pytest.mark.parametrize(("cell", "number", "marker", "title", "summary"), CELLS, ids=[c[3] for c in CELLS])
def test_each_form_gives_number_title_and_summary(cell, number, marker, title, summary):
    """#20: every numbering form is the paper's number; the title stops where the summary starts."""
    head = read_cell(cell, 1)
    assert (head.number, head.marker, head.title) == (number, marker, title)
    assert head.summary.startswith(summary), head.summary
    assert not [d for d in head.defects if d.kind == "untitled"]


@pytest.mark.parametrize(("cell", "number", "title"), [
    ("1.58-bit Pictures - presents a ternary image model.", None, "1.58-bit Pictures"),
    ("7) 1.58-bit Pictures - presents a ternary image model.", 7, "1.58-bit Pictures"),
    ("3D Gaussian Crowds - renders crowds with splats.", None, "3D Gaussian Crowds"),
    ("2) 3D Gaussian Crowds - renders crowds with splats.", 2, "3D Gaussian Crowds"),
    ("**1) 2-Step Distillation** - distils in two steps.", 1, "2-Step Distillation"),
    ("2024 in Review - a look back at the year.", None, "2024 in Review"),
])
def test_a_number_that_is_part_of_the_title_stays(cell, number, title):
    """#20: `1.58-bit …`, `3D …`: a title may start with a number; only list numbering is taken off."""
    head = read_cell(cell, 1)
    assert (head.number, head.title) == (number, title)


PIECES = ["1)", "1).", "1.)", "(1)", "1.", "10)", "**", "*", " ", "  ", " - ", "-", "–", "Title", "summary",
          " Introduces a", " This paper presents", "1.58-bit", "3D", "<br>●", ". ", ":", "\\|", "__"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=30).map("".join))
def test_any_cell_gives_a_title_without_bold_or_a_leading_list_number(cell):
    """#20: whatever the cell, no crash, no `**` in the title, never a title that is only a list number."""
    head = read_cell(cell, 1)
    assert "**" not in head.title and head.title == head.title.strip()
    assert head.number is None or 0 <= head.number <= 999
    assert not re.fullmatch(r"\(?\d{1,3}\s?[.)]{1,2}", head.title), head.title


def test_split_number_leaves_an_unnumbered_cell_as_it_is():
    assert split_number("**Plain Title** - summary") == (None, "", "**Plain Title** - summary")
    assert split_number("(a) **Lettered**") == (None, "", "(a) **Lettered**")


def test_a_number_written_twice_is_reported_and_a_bare_number_is_no_title():
    head = read_cell("3) 3) **Twice Told** - a story told twice.", 5)
    assert (head.number, head.title) == (3, "Twice Told")
    assert [(d.kind, d.line) for d in head.defects] == [("number-style", 5)]
    assert read_cell("**4).**", 6).title == ""  # parse_digest reports it as a placeholder, not a paper


AUGUST = """\
## Top ML Papers of the Week (Aug 7 - Aug 13)
| **Paper**  | **Links** |
| ------------- | ------------- |
|**1). Graph Weavers** - a survey of graph transformers. | [Paper](https://arxiv.org/abs/2308.00001) |
|**2) Cheap Landmarks** - keeps one token per block. | [Paper](https://arxiv.org/abs/2308.00002) |
|**3).**  **Honest Agents -** measures how often agents admit doubt. | [Paper](https://arxiv.org/abs/2308.00003) |
| 4). **Quiet Gradients** - a study of small learning rates. | [Paper](https://arxiv.org/abs/2308.00004) |
| 5) | [Paper](https://arxiv.org/abs/2308.00005) |
"""


def test_a_numbered_week_keeps_numbers_apart_and_reports_odd_ones():
    """#20: the August 2023 forms: numbers stripped and kept, a different style reported, an empty row is a
    placeholder with its line, never a paper with an empty or number-only title."""
    (week,) = parse_digest(AUGUST, date(2023, 8, 20)).weeks
    assert [(p.number, p.title) for p in week.papers] == [
        (1, "Graph Weavers"), (2, "Cheap Landmarks"), (3, "Honest Agents"), (4, "Quiet Gradients")]
    assert week.papers[2].summary.startswith("measures how often")
    kinds = {(d.kind, d.line) for d in week.defects}
    assert ("number-style", 5) in kinds  # "2)" among "N)."
    assert ("placeholder", 8) in kinds and week.has_placeholders


UNTITLED = """\
**Top ML Papers of the Week (Jan 1-8):**
1. A model that writes unit tests for itself and keeps only the ones that fail first on old code.
  - Paper: https://arxiv.org/abs/2301.00021
2. Tiny Voices. A speech model that clones a voice from three seconds of audio.
  - https://example.org/voice-demo
"""


def test_a_row_without_a_name_is_an_untitled_defect_with_its_line():
    """#20: a list item that is only a description: its first sentence stands in for a title (never empty), and
    the row is reported; an item whose first sentence is a name has that name as its title."""
    (week,) = parse_digest(UNTITLED, date(2023, 1, 9)).weeks
    first, second = week.papers
    assert first.title.startswith("A model that writes unit tests") and first.number == 1
    assert [(d.kind, d.line) for d in week.defects if d.kind == "untitled"] == [("untitled", 2)]
    assert (second.title, second.summary) == ("Tiny Voices", "A speech model that clones a voice from three "
                                                             "seconds of audio.")


def _edition(text: str, as_of: date) -> Edition:
    (week,) = parse_digest(text, as_of).weeks
    return Edition("digest", week.key, week.title, week.first_day, week.last_day, week.papers)


def test_readers_see_each_number_once_and_each_title_whole(tmp_path):
    """#20: the email's contents number the papers once (`1. Graph Weavers`, not `1. 1). Graph Weavers`), the X
    replies and the Discord embeds show the titles as written."""
    edition = _edition(AUGUST, date(2023, 8, 20))
    email = render_newsletter(edition, write_config(tmp_path))
    contents = email.text.split("In this issue", 1)[1]
    for n, title in [(1, "Graph Weavers"), (2, "Cheap Landmarks"), (3, "Honest Agents"), (4, "Quiet Gradients")]:
        assert f"{n}. {title}\n" in contents
    assert ")." not in contents.split("\n\n\n", 1)[0]
    assert "1. 1)" not in email.html and "1). Graph" not in email.html and "Graph Weavers</a>" in email.html
    posts = compose_thread(edition, web_url=None)
    assert [p.text.split("\n", 1)[0] for p in posts[1:]] == [
        "1/4 Graph Weavers", "2/4 Cheap Landmarks", "3/4 Honest Agents", "4/4 Quiet Gradients"]
    embeds = [e for m in discord_compose(edition, DiscordSettings()) for e in m["embeds"]]
    assert [e["title"] for e in embeds] == ["Graph Weavers", "Cheap Landmarks", "Honest Agents", "Quiet Gradients"]


def test_a_list_item_without_a_title_is_a_placeholder_and_its_links_stay_with_it():
    """#20: `2. **` is no paper; the link bullet under it does not slide onto the paper above."""
    text = ("**Top ML Papers of the Week (Jan 1-8):**\n1. Tiny Voices. Clones a voice.\n"
            "  - https://example.org/voices\n2. **\n  - https://example.org/nothing\n")
    (week,) = parse_digest(text, date(2023, 1, 9)).weeks
    (paper,) = week.papers
    assert [lk.url for lk in paper.links] == ["https://example.org/voices"]
    assert ("placeholder", 4) in {(d.kind, d.line) for d in week.defects}
