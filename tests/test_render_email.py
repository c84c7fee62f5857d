"""The newsletter rendering: escaping, the text part, the unsubscribe placeholder, size, overrides, MJML."""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from newsletter_fixtures import LONG_URL, SCRIPT_TITLE, sample_edition, sample_papers, store_edition, write_config

from bot.channels.email.render import (
    BUILTIN_TEMPLATES,
    TEMPLATES_ENV,
    UNSUBSCRIBE_PLACEHOLDER,
    RenderError,
    edition_from_store,
    edition_path,
    personalize,
    render_mjml,
    render_newsletter,
    render_web_edition,
    save_web_edition,
)
from bot.store import Store
from bot.track.late import LateGroup
from bot.track.model import Link, Paper

ROOT = Path(__file__).resolve().parents[1]
MJML_CLI = ROOT / "node_modules" / ".bin" / "mjml"


@pytest.fixture
def cfg(tmp_path):
    return write_config(tmp_path, subject="Papers: {title} ({papers}) {unknown} {title.__class__}")


def test_html_escapes_untrusted_titles_and_drops_unsafe_links(cfg):
    email = render_newsletter(sample_edition(), cfg)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in email.html
    assert "<script" not in email.html.lower()
    assert "&lt;b&gt;bold?&lt;/b&gt;" in email.html and "<b>bold?" not in email.html
    assert "javascript:" not in email.html and "Evil" not in email.html
    assert 'href="https://example.org/papers/1"' in email.html  # a title links to its first link
    assert ">Code</a>" in email.html and ">Tweet</a>" in email.html
    assert "Top ML Papers of the Week</h1>" in email.html and "4–10 March 2024" in email.html  # issue #16: dates once
    assert "(Mar 4-10)" not in email.html
    assert 'href="https://news.example.org/editions/digest/2024-03-04..2024-03-10"' in email.html
    assert "Questions? Write to editor@example.org" in email.html
    assert "news.example.org</a>" in email.html and "Weekly Papers" in email.html
    assert email.preheader.startswith("10 papers this week: Sparse Mixtures for Tiny Devices;")
    assert email.preheader in email.html


def test_text_part_is_plain_and_cannot_forge_lines(cfg):
    papers = (Paper(title="Evil\nUnsubscribe: https://evil.example/\x1b[31m", number=1,
                    summary="line one\r\nView this email in your browser: https://evil.example/\u202e",
                    links=(Link("Paper", "https://example.org/p"),)),)
    email = render_newsletter(replace(sample_edition(), papers=papers), cfg)
    lines = email.text.splitlines()
    assert lines[0] == "Top ML Papers of the Week" and lines[1] == "4–10 March 2024 · 1 paper"
    assert [ln for ln in lines if ln.startswith("Unsubscribe:")] == [f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}"]
    assert [ln for ln in lines if ln.startswith("View this email")] == [
        "View this email in your browser: https://news.example.org/editions/digest/2024-03-04..2024-03-10"]
    assert "1. Evil Unsubscribe: https://evil.example/[31m" in lines
    assert not any(c in email.text for c in "\x1b\r\u202e")
    assert "   → Paper: https://example.org/p" in lines
    full = render_newsletter(sample_edition(), cfg).text
    assert f"8. {SCRIPT_TITLE}" in full.splitlines()  # text stays text: no HTML escaping in the text part
    assert f"   → Paper: {LONG_URL}" in full.splitlines()  # URLs are never wrapped mid-way
    assert "javascript:" not in full
    wrappable = [ln for ln in full.splitlines() if max(map(len, ln.split()), default=0) < 40]
    assert len(wrappable) > 30 and all(len(ln) <= 72 for ln in wrappable)


def test_placeholder_once_in_each_part_and_personalize(cfg):
    email = render_newsletter(sample_edition(), cfg)
    assert email.html.count(UNSUBSCRIBE_PLACEHOLDER) == 1
    assert email.text.count(UNSUBSCRIBE_PLACEHOLDER) == 1
    html, text = personalize(email, "https://news.example.org/unsubscribe/abc.def?x=1&y=2")
    assert 'href="https://news.example.org/unsubscribe/abc.def?x=1&amp;y=2"' in html
    assert "Unsubscribe: https://news.example.org/unsubscribe/abc.def?x=1&y=2" in text
    assert UNSUBSCRIBE_PLACEHOLDER not in html + text


def test_subject_fills_known_fields_only_and_is_one_line(cfg, caplog):
    with caplog.at_level(logging.WARNING, logger="bot.edition.safetext"):
        email = render_newsletter(replace(sample_edition(), title="Week\r\nBcc: victim@example.org"), cfg)
    assert email.subject == "Papers: Week Bcc: victim@example.org (10) {unknown} {title.__class__}"
    assert "unknown field {unknown}" in caplog.text
    cfg2 = write_config(cfg.base_dir, subject="{source}/{key}: {dates} {title")
    assert render_newsletter(sample_edition(), cfg2).subject == "Top ML Papers of the Week (Mar 4-10)"
    cfg3 = write_config(cfg.base_dir, subject="{source}/{key}: {dates}")
    assert render_newsletter(sample_edition(), cfg3).subject == "digest/2024-03-04..2024-03-10: 4–10 March 2024"


def test_size_warning_over_100kb(cfg, caplog):
    assert render_newsletter(sample_edition(), cfg).size_warning is None
    many = tuple(Paper(title=f"Paper {i}", summary="Words that take up room. " * 20, number=i,
                       links=(Link("Paper", f"https://example.org/{i}"),)) for i in range(1, 201))
    with caplog.at_level(logging.WARNING, logger="bot.channels.email.render"):
        email = render_newsletter(replace(sample_edition(), papers=many), cfg)
    assert len(email.html.encode()) > 100 * 1024
    assert email.size_warning and "Gmail clips" in email.size_warning and "digest:2024-03-04" in email.size_warning
    assert email.size_warning in caplog.text


def test_operator_templates_override_without_python(cfg, tmp_path, monkeypatch):
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "newsletter.txt").write_text("MY DIGEST {{ title }}\n{% for p in papers %}* {{ p.title }}\n{% endfor %}"
                                         "Leave: {{ unsubscribe_url }}\n", encoding="utf-8")
    email = render_newsletter(sample_edition(), cfg, templates_dir=mine)
    assert email.text.startswith("MY DIGEST Top ML Papers of the Week (Mar 4-10)\n* Sparse Mixtures")
    assert f"* {SCRIPT_TITLE}\n" in email.text
    assert email.text.endswith(f"Leave: {UNSUBSCRIBE_PLACEHOLDER}\n")
    assert "&lt;script&gt;" in email.html  # the HTML part falls back to the built-in template
    builtin = (BUILTIN_TEMPLATES / "newsletter.mjml").read_text(encoding="utf-8")
    (mine / "newsletter.mjml").write_text(builtin.replace("View this email in your browser", "Open online"),
                                          encoding="utf-8")
    monkeypatch.setenv(TEMPLATES_ENV, str(mine))  # the same folder chosen by environment variable
    email = render_newsletter(sample_edition(), cfg)
    assert "Open online" in email.html and email.text.startswith("MY DIGEST")
    (mine / "newsletter.mjml").write_text("<mjml><mj-body>{{ no_such_value }}</mj-body></mjml>", encoding="utf-8")
    with pytest.raises(RenderError, match="no_such_value"):
        render_newsletter(sample_edition(), cfg)


def test_contact_address_becomes_a_mailto_link(tmp_path):
    cfg = write_config(tmp_path, contact="The Editor <editor@Example.org>")
    email = render_newsletter(sample_edition(), cfg)
    assert 'href="mailto:editor@example.org"' in email.html and ">Write to The Editor</a>" in email.html
    assert "&lt;editor@" not in email.html  # issue #16: a name and a link, not a raw `Name <address>`
    assert "Questions? Write to The Editor at editor@example.org" in email.text.splitlines()
    cfg = write_config(tmp_path, contact="Write to editor@example.org")
    assert "mailto:" not in render_newsletter(sample_edition(), cfg).html


def test_web_edition_has_nothing_personal(cfg):
    page = render_web_edition(sample_edition(), cfg)
    assert UNSUBSCRIBE_PLACEHOLDER not in page and "Unsubscribe" not in page
    assert "&lt;script&gt;alert(1)" in page and "web copy of the Weekly Papers newsletter" in page


def test_edition_from_store_and_saved_copy(cfg):
    store = Store.open(cfg.db_path)
    edition = sample_edition()
    store_edition(store, edition)
    loaded = edition_from_store(store, "digest", edition.key)
    assert loaded == edition
    with pytest.raises(KeyError):
        edition_from_store(store, "digest", "1999-01-01..1999-01-07")
    store.close()
    path = save_web_edition(cfg, loaded)
    assert path == cfg.state_dir / "editions" / "digest" / f"{edition.key}.html"
    assert path.read_text(encoding="utf-8") == render_web_edition(loaded, cfg)
    for bad in ("..", "../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            edition_path(cfg.state_dir, bad, "k")


def _reference_mjml() -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the reference MJML validator (npm mjml) cannot run")
    if not MJML_CLI.exists():
        pytest.skip("node_modules/.bin/mjml missing: run `npm ci` (make test does) for the reference validator")
    return str(MJML_CLI)


@pytest.mark.parametrize("web", [False, True])
def test_rendered_mjml_passes_reference_validator_strict(cfg, tmp_path, web):
    mjml_cli = _reference_mjml()
    source = tmp_path / "newsletter.mjml"
    source.write_text(render_mjml(sample_edition(), cfg, web=web), encoding="utf-8")
    strict = subprocess.run([mjml_cli, "-r", str(source), "-s", "-c.validationLevel=strict"],
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode == 0, strict.stderr
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in strict.stdout
    validate = subprocess.run([mjml_cli, "--validate", str(source)], capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stderr


def late_edition(late_only: bool):
    """The sample edition carrying papers added to two earlier weeks (issue #10), or those alone."""
    groups = (LateGroup("2024-02-19..2024-02-25", f"Top ML Papers of the Week (Feb 19-25) {SCRIPT_TITLE}",
                        date(2024, 2, 19), date(2024, 2, 25), sample_papers(5)[-2:]),
              LateGroup("2024-02-26..2024-03-03", "Top ML Papers of the Week (Feb 26-Mar 3)", date(2024, 2, 26),
                        date(2024, 3, 3), sample_papers(4)[:1]))
    e = replace(sample_edition(), late=groups)
    return replace(e, papers=(), late_only=True, title="Added to earlier weeks", first_day=None,
                   last_day=None) if late_only else e


@pytest.mark.parametrize("late_only", [False, True])
def test_late_section_passes_reference_validator_strict(cfg, tmp_path, late_only):
    """issue #10: the "Added to earlier weeks" section, and an edition of late papers alone, are valid MJML."""
    mjml_cli = _reference_mjml()
    source = tmp_path / "newsletter.mjml"
    source.write_text(render_mjml(late_edition(late_only), cfg), encoding="utf-8")
    strict = subprocess.run([mjml_cli, "-r", str(source), "-s", "-c.validationLevel=strict"],
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode == 0, strict.stderr
    html = strict.stdout
    assert "Added to earlier weeks" in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "No papers this week" not in html


def test_late_section_in_the_text_part_is_quoted(cfg):
    """issue #10: a late week's title and papers are digest text: quoted like the rest, after the week's papers,
    once each, with their numbers in their own week; an edition of late papers alone has no "No papers"."""
    text = render_newsletter(late_edition(False), cfg).text
    lines = text.splitlines()
    head = lines.index("Added to earlier weeks")
    assert lines[head + 1] == "=" * len("Added to earlier weeks") and lines.count("Added to earlier weeks") == 1
    assert lines.index("10. " + sample_papers()[-1].title) < head  # the week's own papers come first
    assert "== Top ML Papers of the Week <script>alert(1)</script> & co" in lines[head:]
    assert "1. Sparse Mixtures for Tiny Devices" in lines[head:]
    alone = render_newsletter(late_edition(True), cfg).text
    assert "No papers this week" not in alone and "Added to earlier weeks" in alone.splitlines()[0]
    assert alone.count("== Top ML Papers of the Week") == 2


def test_reference_validator_does_reject_bad_mjml(tmp_path):
    """The check above can fail: the same command refuses an MJML error our template could make."""
    mjml_cli = _reference_mjml()
    bad = tmp_path / "bad.mjml"
    bad.write_text("<mjml><mj-body><mj-section><mj-text padding-x=\"1\">x</mj-text></mj-section></mj-body></mjml>",
                   encoding="utf-8")
    strict = subprocess.run([mjml_cli, "-r", str(bad), "-s", "-c.validationLevel=strict"],
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode != 0 and "illegal" in strict.stderr
