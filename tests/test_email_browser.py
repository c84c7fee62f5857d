"""The rendered email in a real browser (Debian's chromium via Playwright) at desktop and phone widths.

No horizontal scrolling at 600 px and 375 px even with a very long URL and an unbreakable title; every
paper title visible; a title holding a script tag shows as text and runs nothing. Screenshots go to
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS
from newsletter_fixtures import LONG_URL, SCRIPT_TITLE, sample_edition, write_config

from bot.channels.email.render import render_newsletter, render_web_edition


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


@pytest.mark.parametrize("kind", ["email", "web"])
@pytest.mark.parametrize("width", [600, 375])
def test_layout_fits_and_untrusted_titles_stay_text(browser, pages, width, kind):
    files, edition = pages
    assert any(LONG_URL in p.summary for p in edition.papers)  # the hard cases are in there
    page = browser.new_page(viewport={"width": width, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else
               route.continue_())  # no network: the page must not need any
    page.goto(files[kind].as_uri())
    page.wait_for_load_state("load")
    scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"horizontal scrolling at {width}px: {scroll_width} > {inner_width}"
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
    page.screenshot(path=str(ARTIFACTS / f"{kind}-{width}px.png"), full_page=True)
    page.close()
