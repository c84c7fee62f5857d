"""issue #13 end to end in real headless Chromium (Debian's, via Playwright): subscribe on `/`, confirm from the
email that reached aiosmtpd, get the welcome, get a published week, unsubscribe from its link, get no more.
Screenshots at 1280 and 375 px go to test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from conftest import ARTIFACTS
from newsletter_fixtures import store_edition
from publish_support import smtp_server
from test_web_reader import KEY, _edition, _state, _wait_mail, start, stop

from bot.store import Store

READER = "reader@example.org"


PUBLIC = "https://papers.weekly.test"  # the newsletter's public address (issue #14: a live send to a local
# base_url or from an example domain is refused); the test maps its links back to the local web app


def _publish(cfg, key: str) -> None:
    store = Store.open(cfg.db_path)
    store_edition(store, _edition(key), state="ready")
    store.close()
    text = re.sub(r'base_url = ".*"', f'base_url = "{PUBLIC}"', cfg.path.read_text(encoding="utf-8"))
    public = cfg.path.with_name("publish.toml")  # the same folder, so the same state_dir
    public.write_text(text.replace("example.org", "weekly.test"), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "bot", "--config", str(public), "publish", key],
                         env={**os.environ, "PAPERBOT_SECRET_KEY": KEY}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_subscribe_confirm_welcome_newsletter_unsubscribe_in_chromium(browser, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with smtp_server() as (rec, smtp_port):
        proc, base, cfg = start(tmp_path, smtp_port)
        try:
            for width in (1280, 375):  # the pages at both widths, for a person to look at
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(base + "/")
                sw, iw = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
                assert sw <= iw, f"horizontal scrolling at {width}px"
                page.screenshot(path=str(ARTIFACTS / f"web-home-{width}px.png"), full_page=True)
                page.goto(base + "/search?q=GPT-4o")
                page.screenshot(path=str(ARTIFACTS / f"web-search-{width}px.png"), full_page=True)
                page.close()
            page = browser.new_page(viewport={"width": 375, "height": 800})
            page.goto(base + "/")
            page.get_by_label("Your email address").fill(READER)
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_load_state("load")
            assert "Check your inbox" in page.content()
            confirm = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+",
                                _wait_mail(rec, READER).get_body(("plain",)).get_content()).group(0)
            page.goto(confirm)
            assert _state(cfg.db_path, READER) == "pending"  # opening the link changes nothing
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_load_state("load")
            assert "You are subscribed" in page.content() and _state(cfg.db_path, READER) == "active"
            assert _wait_mail(rec, READER, 2)["Subject"].startswith("Welcome to")
            _publish(cfg, "2024-03-11..2024-03-17")
            news = _wait_mail(rec, READER, 3)
            assert news["Subject"] == "11–17 March 2024: GPT-4o Reads Charts and 2 more"  # issue #16's default
            unsub = re.match(r"<(http[^>]+)>", news["List-Unsubscribe"]).group(1)
            assert "reader" not in unsub and unsub.startswith(PUBLIC + "/unsubscribe/")
            page.goto(unsub.replace(PUBLIC, base))
            page.get_by_role("button", name="Unsubscribe").click()
            page.wait_for_load_state("load")
            assert "You are unsubscribed" in page.content() and _state(cfg.db_path, READER) == "unsubscribed"
            page.screenshot(path=str(ARTIFACTS / "web-unsubscribed-375px.png"), full_page=True)
            page.close()
            before = rec.count()
            _publish(cfg, "2024-03-18..2024-03-24")
            time.sleep(0.5)
            assert READER not in [r for r, _ in rec.messages[before:]]
        finally:
            stop(proc)
