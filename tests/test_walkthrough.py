"""Issue #26: the README's "Your first newsletter", followed literally on a fresh copy of the repository.

The commands are the README's own: the fenced blocks tagged `first-newsletter` and `first-newsletter-outbox`
between the `<!-- first-newsletter: ... -->` markers, run by bash as written, and the addresses opened in the
browser are the ones the numbered steps give. One substitution, the install: this test's installed environment
stands in for `make .venv/.installed` (`.venv` in the copy is a link to it, and `make .venv/.installed` becomes
`:`), so `. .venv/bin/activate` and `.venv/bin/paperbot` run as written. Then headless Chromium does what the
steps say: subscribe at the web app, open the confirmation email in the mail catcher, follow its link, press
the button; the welcome email must arrive in the catcher carrying the newest week of the example digest, and
the outbox commands must show the X thread and the Discord messages. A change to the README's commands that
breaks the walkthrough fails here.

Screenshots of the email and of the web edition go to test-artifacts/; with PAPERBOT_SCREENSHOTS=docs they
also replace docs/images/email.png and docs/images/web-edition.png, the README's pictures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ARTIFACTS, ROOT

from bot.ops.example_digest import PAPERS

README = ROOT / "README.md"
START, END = "<!-- first-newsletter: start -->", "<!-- first-newsletter: end -->"
INSTALL = "make .venv/.installed"  # the one command replaced: by this test's own installed environment
IMAGES = ROOT / "docs" / "images"
MAX_IMAGE_BYTES = 100_000


def section() -> str:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README.md has no marked walkthrough"
    return text.split(START, 1)[1].split(END, 1)[0]


def block(text: str, tag: str) -> str:
    found = re.findall(rf"^```sh {re.escape(tag)}\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
    assert len(found) == 1, f"README.md: one ```sh {tag} block expected, found {len(found)}"
    return found[0]


def steps_urls(text: str) -> list[str]:
    """The addresses the numbered steps send the reader to, in order."""
    steps = "\n".join(line for line in text.splitlines() if re.match(r"^\d+\. |^   ", line))
    return re.findall(r"<(http://[^>]+)>", steps)


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the walkthrough's commands ended early:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered:\n{log.read_text()[-3000:]}")


def _fresh_copy(dest: Path) -> None:
    """The repository's files as a clone has them (tracked and untracked, not ignored), and `.venv`, the
    installed environment standing in for the install."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERBOT_", "VIRTUAL_ENV"))}
    return {**env, "HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull}


def _wait_for_mail(page, catcher: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(catcher)
        if page.locator('a[href^="/m/"]').count() >= 2 * count:  # two links per row: its number and subject
            return
        time.sleep(0.5)
    raise AssertionError(f"the mail catcher at {catcher} did not get {count} messages: {page.content()[:2000]}")


def _first_with(folder: Path, text: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> int:
    """The number of the first message the mail catcher kept that holds `text` (as its reader sees it)."""
    from email import policy
    from email.parser import BytesParser

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")):
            body = BytesParser(policy=policy.default).parsebytes(path.read_bytes()).get_body(("html",))
            if body is not None and text in body.get_content():
                return int(path.stem)
        assert proc.poll() is None, f"the walkthrough's commands ended early:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"no message holding {text!r} in {folder}:\n{log.read_text()[-3000:]}")


def _shot(page, name: str, width: int = 600, height: int = 820) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": width, "height": height})
    path = ARTIFACTS / f"walkthrough-{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("PAPERBOT_SCREENSHOTS") == "docs":
        size = path.stat().st_size
        assert size <= MAX_IMAGE_BYTES, f"{name}.png is {size} bytes: keep the README's pictures small"
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, IMAGES / f"{name}.png")
    return path


def test_the_readmes_first_newsletter_walkthrough_works_as_written(tmp_path, browser):
    """#26: the README's commands, run as written on a fresh copy, give a first newsletter in the mail catcher."""
    text = section()
    commands, outbox = block(text, "first-newsletter"), block(text, "first-newsletter-outbox")
    assert INSTALL in commands, f"the walkthrough no longer installs with {INSTALL!r}: update this test"
    app, catcher = steps_urls(text)[:2]
    ports = [int(p) for p in re.findall(r":(\d+)", commands)]
    busy = [p for p in set(ports) if not _free(p)]
    if busy:
        pytest.skip(f"port(s) {busy} taken on this machine: the walkthrough uses the README's own ports")
    copy, home = tmp_path / "paperbot", tmp_path / "home"
    copy.mkdir()
    home.mkdir()
    _fresh_copy(copy)
    log = tmp_path / "walkthrough.log"
    script = "set -e\n" + commands.replace(INSTALL, ":")
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "-c", script], cwd=copy, env=_env(home), stdout=out, stderr=out,
                                start_new_session=True)
    try:
        _wait_http(app, proc, log)
        _wait_http(catcher, proc, log)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.set_default_timeout(15000)
        # 1. subscribe at the web app
        page.goto(app)
        page.fill('input[type="email"]', "me@example.org")
        page.click('button:has-text("Subscribe")')
        page.wait_for_load_state("load")
        # 2. the confirmation email in the mail catcher: open it, follow its link, press the button
        _wait_for_mail(page, catcher, 1)
        page.locator('a[href^="/m/"]').first.click()
        page.wait_for_load_state("load")
        link = page.locator('a[href*="/confirm/"]').first
        assert link.count() == 1, f"no confirmation link in the first email: {page.content()[:2000]}"
        link.click()
        page.wait_for_load_state("load")
        assert page.url.startswith(app), page.url
        page.locator('form button[type="submit"]').first.click()
        page.wait_for_load_state("load")
        # 3. the first newsletter: the newest week, in the welcome email (or, had the subscriber come before the
        # daemon's first round, in the week's own email); found in the catcher's folder, opened in its page
        newest = [title for title, _ in PAPERS[0]]
        number = _first_with(copy / "mailcatcher", newest[0], proc, log)
        page.goto(catcher)
        page.locator(f'a[href="/m/{number}"]').first.click()
        page.wait_for_load_state("load")
        body = page.content()
        assert all(t in body for t in newest), f"the newest week's papers are not in the email: {body[:3000]}"
        assert "Local trial" in body, "the email's footer does not say it is a local trial"
        _shot(page, "email")
        # the same week on the web edition
        page.set_viewport_size({"width": 1000, "height": 900})
        page.goto(app.rstrip("/") + "/editions/")
        page.locator('li a[href*="/editions/"]').first.click()
        page.wait_for_load_state("load")
        assert newest[0] in page.content()
        _shot(page, "web-edition")
        page.close()
        # what X and Discord would have posted, and what paperbot says
        shown = subprocess.run(["bash", "-c", "set -e\n" + outbox], cwd=copy, env=_env(home), capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert newest[0] in shown.stdout and "001.json" in shown.stdout, shown.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.reaches_internet("raw.githubusercontent.com")  # the default config's source: its poll is refused
def test_make_run_starts_the_daemon_on_the_default_config_in_a_fresh_clone(tmp_path):
    """The README's quick start: `make run` on a fresh clone starts the daemon on the default config. #25 made
    `run` refuse to start a state folder without a config file, which left `make run` saying so and exiting; the
    Makefile now writes the default config (`paperbot init`) first when there is none."""
    if not _free(8080):
        pytest.skip("port 8080 taken on this machine: the default config's web app listens there")
    repo = tmp_path / "clone"
    _fresh_copy(repo)
    proc = subprocess.Popen(["make", "run"], cwd=repo, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen.append(line)
            if "paperbot running" in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(seen)
    assert "paperbot running" in out, out
    assert (repo / "paperbot.toml").is_file() and (repo / "state" / "paperbot.db").is_file()
