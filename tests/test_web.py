"""`paperbot serve` as a real process on 127.0.0.1: unsubscribe links (GET shows, POST acts) and editions."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from newsletter_fixtures import sample_edition, store_edition, write_config

from bot.channels.email import subscribers as subs
from bot.channels.email.render import save_web_edition
from bot.channels.email.tokens import unsubscribe_token
from bot.store import Store

KEY = "test-key-" + "0123456789" * 4
NOW = datetime(2024, 3, 11, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, data: bytes | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    port = _free_port()
    cfg = write_config(tmp, listen=f"127.0.0.1:{port}", base_url=f"http://127.0.0.1:{port}")
    store = Store.open(cfg.db_path)
    for name in ("keep", "confirm", "oneclick", "forged", "a&b"):
        subs.add(store, f"{name}@example.org", origin="test", now=NOW)
    store_edition(store, sample_edition())
    store.close()
    env = {**os.environ, "PAPERBOT_SECRET_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "serve"], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=1)
        except urllib.error.HTTPError:
            break  # it answers (404): up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("paperbot serve did not start:\n" + proc.stdout.read().decode(errors="replace"))
            time.sleep(0.1)
    yield base, cfg
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output = proc.stdout.read().decode(errors="replace")
    assert proc.returncode == 0, output
    assert KEY not in output  # the key is never printed or logged


def _row(cfg, address: str) -> tuple[str, str | None]:
    store = Store.open(cfg.db_path)
    try:
        return store.db.execute("SELECT state, reason FROM subscribers WHERE address = ?", [address]).fetchone()
    finally:
        store.close()


def _state(cfg, address: str) -> str:
    return _row(cfg, address)[0]


def _link(base: str, address: str, key: str = KEY) -> str:
    return f"{base}/unsubscribe/{unsubscribe_token(key.encode(), address)}"


def test_get_shows_a_confirm_form_and_changes_nothing(server):
    base, cfg = server
    for _ in range(3):  # a mail scanner following the link, several times
        status, body, headers = _request(_link(base, "keep@example.org"))
        assert status == 200
    assert '<form method="post">' in body and "<button" in body and "keep@example.org" in body
    assert headers["Referrer-Policy"] == "no-referrer" and "no-store" in headers["Cache-Control"]
    assert _state(cfg, "keep@example.org") == "active"
    status, body, _ = _request(_link(base, "a&b@example.org"))
    assert status == 200 and "a&amp;b@example.org" in body and "a&b@" not in body


def test_confirm_button_post_unsubscribes(server):
    base, cfg = server
    status, body, _ = _request(_link(base, "confirm@example.org"), data=b"")
    assert status == 200 and "You are unsubscribed" in body and "confirm@example.org" in body
    assert _state(cfg, "confirm@example.org") == "unsubscribed"
    status, body, _ = _request(_link(base, "confirm@example.org"), data=b"")  # twice: still fine
    assert status == 200 and _state(cfg, "confirm@example.org") == "unsubscribed"
    assert _state(cfg, "keep@example.org") == "active"


def test_rfc8058_one_click_post_unsubscribes(server):
    base, cfg = server
    status, body, _ = _request(_link(base, "oneclick@example.org"), data=b"List-Unsubscribe=One-Click")
    assert status == 200 and len(body) < 100 and "<html" not in body
    assert _row(cfg, "oneclick@example.org") == ("unsubscribed", "unsubscribed via web:one-click")


@pytest.mark.parametrize("token", ["forged", "other-key", "malformed", "swapped"])
def test_forged_tokens_change_nothing_and_get_400(server, token):
    base, cfg = server
    good = unsubscribe_token(KEY.encode(), "keep@example.org")
    url = {
        "forged": f"{base}/unsubscribe/{good.split('.')[0][:-2]}Zm.{good.split('.')[1]}",
        "other-key": _link(base, "forged@example.org", key="another-key-" + "x" * 40),
        "malformed": f"{base}/unsubscribe/%3Cscript%3Enot-a-token",
        "swapped": f"{base}/unsubscribe/{unsubscribe_token(KEY.encode(), 'keep@example.org').split('.')[0]}."
                   f"{unsubscribe_token(KEY.encode(), 'forged@example.org').split('.')[1]}",
    }[token]
    for data in (None, b"", b"List-Unsubscribe=One-Click"):
        status, body, _ = _request(url, data=data)
        assert status == 400 and "not valid" in body and "nothing was changed" in body
        assert "<script>" not in body
    assert _state(cfg, "forged@example.org") == "active" and _state(cfg, "keep@example.org") == "active"


def test_editions_rendered_on_the_fly_then_stored_copy(server):
    base, cfg = server
    edition = sample_edition()
    url = f"{base}/editions/digest/{edition.key}"
    status, body, headers = _request(url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Top ML Papers of the Week (Mar 4-10)" in body and "&lt;script&gt;alert(1)" in body
    assert "Unsubscribe" not in body and "__TOKEN__" not in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    path = save_web_edition(cfg, edition)
    path.write_text(path.read_text(encoding="utf-8").replace("web copy", "STORED copy"), encoding="utf-8")
    status, body, _ = _request(url)
    assert status == 200 and "STORED copy" in body


@pytest.mark.parametrize("path", ["/editions/digest/1999-01-01..1999-01-07", "/editions/nope/2024-03-04..2024-03-10",
                                  "/editions/digest/..%2F..%2Fpaperbot.toml", "/editions/..%2F/x", "/nothing"])
def test_unknown_pages_are_404(server, path):
    base, _ = server
    status, body, _ = _request(base + path)
    assert status == 404 and "Not found" in body


def test_a_trailing_newline_in_a_token_or_an_edition_name_is_refused(server):
    """issue #8: `$` matched before a trailing newline: an unsubscribe link ending in %0A unsubscribed the
    address, and an edition name ending in %0A reached the file system. Now: 400 and 404, nothing changed."""
    base, cfg = server
    address = "forged@example.org"
    for data in (None, b"", b"List-Unsubscribe=One-Click"):
        status, body, _ = _request(_link(base, address) + "%0A", data=data)
        assert status == 400 and "nothing was changed" in body
    assert _state(cfg, address) == "active"
    edition = sample_edition()
    stray = cfg.state_dir / "editions" / "digest" / f"{edition.key}\n.html"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("<p>made under a name with a newline</p>", encoding="utf-8")
    status, body, _ = _request(f"{base}/editions/digest/{edition.key}%0A")
    assert status == 404 and "newline" not in body
