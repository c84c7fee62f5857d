"""Issue #16: a newsletter readers are glad to get, that credits the people who curated it.

The opening (the week's title and dates once, the number of papers, the credit, the editor's note, a contents
list), each paper (linked title, release date, labelled links, a summary cut at a sentence end with "Read
more" to the full text on the web edition), the footer, in the HTML part, the text part and the web edition;
then the limits: under 102 KB for a 30-paper week, the npm `mjml` validator in strict mode, SpamAssassin.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from html import unescape
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from newsletter_fixtures import DAIR_ANCHOR, DAIR_SOURCE, dair_week, sample_papers, store_edition, write_config
from test_render_email import _reference_mjml

from bot.channels.email.render import edition_url, render_mjml, render_newsletter, render_web_edition
from bot.cli import cli
from bot.config import ConfigError
from bot.store import Store
from bot.track.late import LateGroup

SIZE = 102 * 1024
VOID = {"br", "meta", "img", "link", "hr", "input"}


class Page(HTMLParser):
    """What a reader of an HTML page sees: its text (not <head>, not hidden), its links and its ids."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.words: list[str] = []
        self.links: list[dict] = []
        self.ids: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a":
            self.links.append({"href": a.get("href", ""), "text": ""})
        if tag not in VOID:
            hidden = tag in ("head", "style", "title") or "display:none" in (a.get("style") or "").replace(" ", "")
            self.stack.append((tag, hidden or any(h for _, h in self.stack)))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if not any(h for _, h in self.stack):
            self.words.append(data)
            if self.stack and self.links and any(t == "a" for t, _ in self.stack):
                self.links[-1]["text"] += data

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.words))


@pytest.fixture
def cfg(tmp_path):
    return write_config(tmp_path, subject=None, sources=DAIR_SOURCE, contact="The Editor <editor@example.org>")


def test_the_credit_names_the_curator_and_links_to_the_weeks_section_in_both_parts(cfg):
    email = render_newsletter(dair_week(), cfg)
    page = Page(email.html)
    assert "Curated by dair-ai/ML-Papers-of-the-Week" in page.text
    assert {"href": DAIR_ANCHOR, "text": "dair-ai/ML-Papers-of-the-Week"} in page.links
    lines = email.text.splitlines()
    assert lines[2:4] == ["Curated by dair-ai/ML-Papers-of-the-Week", f"   → Original: {DAIR_ANCHOR}"]


def test_the_credit_setting_and_a_feed_title_are_quoted_text(tmp_path):
    cfg = write_config(tmp_path, sources='\n[[sources]]\nname = "dair-ai"\ngithub = "a/b"\n'
                                         'credit = { name = "DAIR <AI> -- Unsubscribe: https://evil.example/" }\n')
    email = render_newsletter(dair_week(), cfg)
    assert "Curated by <a href=\"https://github.com/a/b#ai-papers" in email.html
    assert ">DAIR &lt;AI&gt; -- Unsubscribe: https://evil.example/</a>" in email.html
    assert "Curated by DAIR <AI> -- Unsubscribe: https://evil.example/" in email.text.splitlines()
    assert [ln for ln in email.text.splitlines() if ln.startswith("Unsubscribe:")] == [
        "Unsubscribe: https://unsubscribe.paperbot.invalid/__TOKEN__"]


def test_the_opening_says_the_title_and_dates_once_and_the_subject_does_not_repeat_the_sender(cfg):
    """The heading used to read "AI Papers of the Week (May 20 - May 26) - 2024" then "20–26 May 2024", and the
    subject was the week's title, which mostly repeats the sender's name ("ML Papers of the Week")."""
    email = render_newsletter(dair_week(), cfg)
    text = Page(email.html).text
    assert text.count("AI Papers of the Week") == 1 and text.count("20–26 May 2024") == 1
    assert "20–26 May 2024 · 10 papers" in text and "May 20 - May 26" not in email.html
    assert email.text.splitlines()[:2] == ["AI Papers of the Week", "20–26 May 2024 · 10 papers"]
    assert email.text.count("20–26 May 2024") == 1 and "May 20 - May 26" not in email.text
    assert email.subject == "20–26 May 2024: Sparse Mixtures for Tiny Devices and 9 more"
    fields = replace(cfg, email=replace(cfg.email, subject="{week} ({papers}), picked by {credit}"))
    assert render_newsletter(dair_week(), fields).subject == \
        "AI Papers of the Week (10), picked by dair-ai/ML-Papers-of-the-Week"
    default = replace(cfg, email=replace(cfg.email, sender="ML Papers of the Week <papers@example.org>"))
    week = replace(dair_week(), title="Top ML Papers of the Week (May 20-26)")
    assert "ML Papers of the Week" not in render_newsletter(week, default).subject
    late = LateGroup("2024-05-13..2024-05-19", "AI Papers of the Week (May 13 - May 19) - 2024", date(2024, 5, 13),
                     date(2024, 5, 19), sample_papers(3))
    alone = replace(dair_week(), papers=(), late=(late,), late_only=True, first_day=None, last_day=None,
                    title="Added to earlier weeks: AI Papers of the Week (May 13 - May 19) - 2024")
    assert render_newsletter(alone, cfg).subject == "3 papers added to earlier weeks"


def test_the_editors_note_is_shown_only_when_set(cfg):
    plain = render_newsletter(dair_week(), cfg)
    assert "Editor's note" not in plain.html and "Editor's note" not in plain.text
    noted = render_newsletter(replace(dair_week(), note="One.\n\nTwo <i>&</i> three."), cfg)
    assert "<p style=\"margin:0 0 8px;\">One.</p>" in noted.html and "Two &lt;i&gt;&amp;&lt;/i&gt; three." in noted.html
    lines = noted.text.splitlines()
    at = lines.index("Editor's note")
    assert lines[at + 1:at + 4] == ["   One.", "", "   Two <i>&</i> three."]
    assert "Editor's note" in render_web_edition(replace(dair_week(), note="One."), cfg)


def test_the_contents_list_links_to_every_paper_by_anchor_and_numbers_them_in_text(cfg):
    late = LateGroup("2024-05-13..2024-05-19", "AI Papers of the Week (May 13 - May 19) - 2024", date(2024, 5, 13),
                     date(2024, 5, 19), sample_papers(3)[:1])
    week = replace(dair_week(), late=(late,))
    for html in (render_newsletter(week, cfg).html, render_web_edition(week, cfg)):
        page = Page(html)
        inner = [a for a in page.links if a["href"].startswith("#")]
        assert [a["text"] for a in inner] == [p.title for p in week.papers] + ["+ 1 added to earlier weeks"]
        assert all(a["href"][1:] in page.ids for a in inner), "a contents link that goes nowhere"
        assert len({a["href"] for a in inner}) == len(inner)
    text = render_newsletter(week, cfg).text.splitlines()
    start = text.index("In this issue")
    assert text[start + 1:start + 12] == [f"{i + 1:3}. {p.title}" for i, p in enumerate(week.papers)] + [
        "   + 1 added to earlier weeks"]
    assert all(f"{p.number}. {p.title}" in text for p in week.papers)  # the numbers lead to the papers


def test_each_paper_has_a_linked_title_its_release_date_and_labelled_links(cfg):
    email = render_newsletter(dair_week(), cfg)
    first = re.search(r"<h2 [^>]*>(.*?)</h2>", email.html, re.S).group(1)
    assert '<a href="https://arxiv.org/abs/2405.10000"' in first and "Sparse Mixtures for Tiny Devices" in first
    buttons = re.findall(r'<a href="([^"]+)" class="pb-btn"[^>]*>([^<]+)</a>', email.html)[:3]
    assert buttons == [("https://arxiv.org/abs/2405.10000", "Paper"), ("https://github.com/example/project-0", "Code"),
                       ("https://x.com/dair_ai/status/1790000000000000000", "Tweet")]
    assert "20 May 2024 · A. Researcher, B. Student, C. Engineer" in Page(email.html).text
    lines = email.text.splitlines()
    i = lines.index("1. Sparse Mixtures for Tiny Devices")
    assert lines[i + 1] == "   20 May 2024 · A. Researcher, B. Student, C. Engineer"
    assert "   → Code: https://github.com/example/project-0" in lines[i:]


def _shown_summary(text: str, title: str) -> tuple[str, str]:
    """(the summary as the text part shows it, its Read more URL) of the paper titled `title`."""
    lines = text.splitlines()
    i = lines.index(title) + 2
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("   →"))
    return " ".join(ln.strip() for ln in lines[i:j]), lines[j].removeprefix("   → Read more: ")


def test_a_250_word_summary_is_cut_at_a_sentence_end_and_read_more_leads_to_the_whole_of_it(cfg):
    week = dair_week(3, words=250)
    full = week.papers[0].summary
    assert len(full.split()) == 250
    email = render_newsletter(week, cfg)
    shown, more = _shown_summary(email.text, "1. Sparse Mixtures for Tiny Devices")
    assert full.startswith(shown) and shown.endswith(".") and len(shown) <= cfg.email.summary_chars == 300
    assert full[len(shown)] == " " and full[len(shown) + 1].isupper()  # the next sentence starts there
    assert len(shown) > 200 and full not in email.text and full not in unescape(email.html)
    base, anchor = more.split("#")
    assert base == edition_url(cfg, "dair-ai", week.key)
    assert {"href": more, "text": "Read more\u00a0→"} in Page(email.html).links
    web = render_web_edition(week, cfg)
    assert anchor in Page(web).ids and "Read more" not in web
    section = unescape(web[web.index(f'id="{anchor}"'):])
    assert full in section[:section.index('id="paper-', 10)]  # the whole summary, in that paper's section


def test_summary_chars_is_configurable_and_zero_never_cuts(tmp_path):
    whole = write_config(tmp_path, sources=DAIR_SOURCE, email_extra="summary_chars = 0\n")
    email = render_newsletter(dair_week(2), whole)
    assert "Read more" not in email.html + email.text and dair_week().papers[0].summary in email.text.replace(
        "\n   ", " ")
    short = write_config(tmp_path, sources=DAIR_SOURCE, email_extra="summary_chars = 120\n")
    shown, _ = _shown_summary(render_newsletter(dair_week(2), short).text, "1. Sparse Mixtures for Tiny Devices")
    assert shown == "The authors propose a way to route each token to a few small experts that keeps every device busy."
    for bad in ("50", "-1", '"300"', "10001"):
        with pytest.raises(ConfigError, match="email.summary_chars"):
            write_config(tmp_path, email_extra=f"summary_chars = {bad}\n")


def test_the_footer_names_the_list_and_the_contact_without_raw_addresses_or_list_id(cfg):
    email = render_newsletter(dair_week(), cfg)
    page = Page(email.html)
    assert "Weekly Papers · news.example.org" in page.text
    assert {"href": "mailto:editor@example.org", "text": "Write to The Editor"} in page.links
    for raw in ("<editor@example.org>", "(weekly.example.org)", "weekly.example.org"):
        assert raw not in page.text and raw not in email.text
    assert "Questions? Write to The Editor at editor@example.org" in email.text.splitlines()


def big_week():
    late = LateGroup("2024-05-13..2024-05-19", "AI Papers of the Week (May 13 - May 19) - 2024", date(2024, 5, 13),
                     date(2024, 5, 19), dair_week(2).papers)
    return replace(dair_week(30, words=250), late=(late,), note="A longer week than usual.\n\nEnjoy.")


def test_a_30_paper_week_stays_under_gmails_clipping_size(cfg):
    email = render_newsletter(big_week(), cfg)
    assert len(email.html.encode("utf-8")) < SIZE and email.size_warning is None
    assert email.html.count('class="pb-btn"') == 32 * 3 and email.html.count("Read more") == 32


@pytest.mark.parametrize("web", [False, True])
def test_the_whole_layout_passes_the_reference_mjml_validator_strict(cfg, tmp_path, web):
    mjml_cli = _reference_mjml()
    source = tmp_path / "newsletter.mjml"
    source.write_text(render_mjml(big_week(), cfg, web=web), encoding="utf-8")
    strict = subprocess.run([mjml_cli, "-r", str(source), "-s", "-c.validationLevel=strict"],
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode == 0, strict.stderr
    assert "Editor's note" in strict.stdout and "Curated by" in strict.stdout


def test_spamassassin_scores_the_message_below_2(cfg, tmp_path):
    """The sample message `paperbot preview` writes, as subscribers get it, through SpamAssassin's local rules."""
    if shutil.which("spamassassin") is None:
        pytest.skip("spamassassin is not installed (Debian: apt-get install spamassassin; .ci/run does it)")
    store = Store.open(cfg.db_path)
    store_edition(store, replace(dair_week(), note="Three papers on routing this week."))
    store.close()
    out = CliRunner().invoke(cli, ["--config", str(cfg.path), "preview", f"dair-ai:{dair_week().key}",
                                   "--out", str(tmp_path / "preview")], obj={})
    assert out.exit_code == 0, out.output
    sample = next((tmp_path / "preview").rglob("sample.eml"))
    home = tmp_path / "sa-home"
    home.mkdir()
    report = subprocess.run(["spamassassin", "-L", "-t", "-p", str(home / "prefs")],  # local rules only
                            input=sample.read_bytes(), capture_output=True, timeout=60,
                            env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    status = re.search(rb"X-Spam-Status: \w+, score=(-?[\d.]+)", report.stdout)
    assert status, report.stderr.decode()[-500:]
    details = report.stdout.decode("utf-8", "replace").split("Content analysis details:")[-1]
    assert float(status.group(1)) < 2.0, details
