"""The rendered email in a real browser (Debian's chromium via Playwright) at phone, email and desktop widths.

No horizontal scrolling at 375, 600 and 1100 px even with a very long URL and an unbreakable title; every
paper title visible; a title holding a script tag shows as text and runs nothing. Issue #16: a real week
reads well light and dark (a framed column on a wide screen, readable contrast, `prefers-color-scheme: dark`
honoured), its contents links land on the papers, and "Read more" opens the web edition served by the web
app at the paper, with its whole summary. Screenshots go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from conftest import ARTIFACTS
from newsletter_fixtures import (
    DAIR_ANCHOR,
    DAIR_SOURCE,
    LONG_URL,
    SCRIPT_TITLE,
    dair_week,
    sample_edition,
    store_edition,
    write_config,
)
from publish_support import free_port

from bot.channels.email.render import render_newsletter, render_web_edition
from bot.store import Store
from bot.web.thread import WebThread

WIDTHS = [375, 600, 1100]
SCHEMES = ["light", "dark"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The email (placeholder left in) and the browser copy, as files, with the edition they show."""
    tmp = tmp_path_factory.mktemp("browser")
    cfg = write_config(tmp)
    edition = sample_edition(10)
    email = tmp / "email.html"
    email.write_text(render_newsletter(edition, cfg).html, encoding="utf-8")
    web = tmp / "web.html"
    web.write_text(render_web_edition(edition, cfg), encoding="utf-8")
    return {"email": email, "web": web}, edition


def _open(browser, url: str, width: int, scheme: str = "light", *, offline: bool = True):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.set_default_timeout(5000)  # what a test waits for is there at once, or never
    if offline:  # no network: the page must not need any
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else
                   route.continue_())
    page.goto(url)
    page.wait_for_load_state("load")
    return page


def _no_sideways_scroll(page, width: int) -> int:
    scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"horizontal scrolling at {width}px: {scroll_width} > {inner_width}"
    return inner_width


@pytest.mark.parametrize("kind", ["email", "web"])
@pytest.mark.parametrize("width", WIDTHS)
def test_layout_fits_and_untrusted_titles_stay_text(browser, pages, width, kind):
    files, edition = pages
    assert any(LONG_URL in p.summary for p in edition.papers)  # the hard cases are in there
    page = _open(browser, files[kind].as_uri(), width)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    inner_width = _no_sideways_scroll(page, width)
    headings = page.locator("h2")
    assert headings.count() == len(edition.papers)
    for i, paper in enumerate(edition.papers):
        h = headings.nth(i)
        assert h.is_visible()
        box = h.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner_width + 0.5
        assert paper.title in h.inner_text().replace("\n", "")
    assert f"{edition.papers[7].number}. {SCRIPT_TITLE}" in headings.nth(7).inner_text()
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.evaluate("typeof window.__ran") == "undefined" and dialogs == []
    links = page.locator("a")
    assert all(not (links.nth(i).get_attribute("href") or "").startswith("javascript:") for i in range(links.count()))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"hard-cases-{kind}-{width}px.png"), full_page=True)
    page.close()


# -- issue #16: a real week, light and dark ------------------------------------------------------------------
_COLORS = """el => {
  const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
                     if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; } return 'rgb(255, 255, 255)'; };
  return [getComputedStyle(el).color, bg(el)];
}"""

_COLUMN = """el => { for (; el; el = el.parentElement) {
  if (getComputedStyle(el).backgroundColor !== 'rgba(0, 0, 0, 0)') { const r = el.getBoundingClientRect();
                                                                   return [r.x, r.width]; } } }"""


def _luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """A 250-word-summary week with an editor's note, published and served by the web app (bot/web) on a
    free port that is also `[web] base_url`, so the email's links to the web edition can be followed."""
    tmp = tmp_path_factory.mktemp("week")
    port = free_port()
    cfg = write_config(tmp, subject=None, sources=DAIR_SOURCE, listen=f"127.0.0.1:{port}",
                       base_url=f"http://127.0.0.1:{port}")
    edition = replace(dair_week(10, words=250), note="Three papers on routing this week.\n\nBack to normal soon.")
    store = Store.open(cfg.db_path)
    store_edition(store, edition, state="published")
    store.set_note(edition.source, edition.key, edition.note, datetime.now(UTC))
    store.close()
    email = tmp / "email.html"
    email.write_text(render_newsletter(edition, cfg).html, encoding="utf-8")
    server = WebThread(cfg)
    assert server.start(), "the web app did not start"
    yield {"email": email, "cfg": cfg, "edition": edition, "served": f"http://127.0.0.1:{port}/editions/dair-ai/"
                                                                     f"{edition.key}"}
    server.stop()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_a_week_reads_well_in_a_framed_column_light_and_dark(browser, week, width, scheme):
    page = _open(browser, week["email"].as_uri(), width, scheme)
    _no_sideways_scroll(page, width)
    summary = page.locator("h2 + p + p").first  # a paper's summary, after its title and its date line
    x, w = summary.evaluate(_COLUMN)
    assert w <= 600 and abs(x * 2 + w - width) <= 2, f"the column is at {x}px, {w}px wide"
    text_color, paper_bg = summary.evaluate(_COLORS)
    _, page_bg = page.locator("body").evaluate(_COLORS)
    assert _contrast(text_color, paper_bg) >= 7, (text_color, paper_bg)  # WCAG AAA for body text
    muted = page.locator("h2 + p").first.evaluate(_COLORS)
    assert _contrast(*muted) >= 4.5, muted
    link = page.locator("h2 a").first.evaluate(_COLORS)
    assert _contrast(*link) >= 4.5, link
    dark = _luminance(paper_bg) < 0.05
    assert dark == (scheme == "dark"), f"{scheme}: the paper's background is {paper_bg}"
    if width > 600:  # the column stands out from the page around it
        assert _contrast(paper_bg, page_bg) > 1.05, (paper_bg, page_bg)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-{width}px-{scheme}.png"), full_page=True)
    page.close()


def test_contents_links_land_on_their_papers(browser, week):
    page = _open(browser, week["email"].as_uri(), 375)
    contents = page.locator("a[href^='#']")
    assert contents.count() == len(week["edition"].papers)
    for i in (0, 6, 9):
        link = contents.nth(i)
        target = link.get_attribute("href")
        link.click()
        page.wait_for_function(f"location.hash === {target!r}")
        at, scrolled, most = page.evaluate(f"""[document.getElementById({target[1:]!r}).getBoundingClientRect().top
            + scrollY, scrollY, document.scrollingElement.scrollHeight - innerHeight]""")
        assert abs(scrolled - min(at, most)) < 2, f"{target} is at {at}px; the page scrolled to {scrolled}px"
        assert week["edition"].papers[i].title in page.locator(target).inner_text()
    page.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_more_opens_the_served_web_edition_at_the_whole_summary(browser, week, scheme):
    page = _open(browser, week["email"].as_uri(), 1100, scheme, offline=False)
    more = page.get_by_role("link", name="Read more").nth(2)
    href = more.get_attribute("href")
    assert href.startswith(week["served"] + "#paper-")
    more.click()
    page.wait_for_url(href)
    anchor = href.split("#")[1]
    assert abs(page.evaluate(f"document.getElementById({anchor!r}).getBoundingClientRect().top")) < 2
    assert week["edition"].papers[2].summary in page.locator(f"#{anchor}").inner_text().replace("\n", " ")
    credit = page.get_by_role("link", name="dair-ai/ML-Papers-of-the-Week")
    assert credit.get_attribute("href") == DAIR_ANCHOR and page.get_by_text("Editor's note").is_visible()
    _no_sideways_scroll(page, 1100)
    form = page.locator("form.subscribe")  # the web app's own part, under the edition, follows the scheme too
    assert _contrast(*page.locator("form.subscribe label").evaluate(_COLORS)) >= 4.5
    assert (_luminance(form.evaluate(_COLORS)[1]) < 0.05) == (scheme == "dark")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"web-edition-1100px-{scheme}.png"), full_page=True)
    page.close()

