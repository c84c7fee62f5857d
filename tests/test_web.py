"""`paperbot serve` as a real process on 127.0.0.1: unsubscribe links (GET shows, POST acts) and editions."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from newsletter_fixtures import sample_edition, store_edition, write_config

from bot.channels import load_config
from bot.channels.base import Unit
from bot.channels.email import subscribers as subs
from bot.channels.email.render import save_web_edition
from bot.channels.email.tokens import unsubscribe_token
from bot.publish import ledger
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


def _stable(body: str) -> str:
    """The page without its per-browser CSRF token."""
    return re.sub(r'name="csrf" value="[^"]+"', "", body)


def _with_csrf(url: str, data: bytes = b"") -> tuple[int, str, dict]:
    """POST `data` as the page's own form would (issue #13: every form carries a CSRF token and cookie)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode("utf-8")
        cookie = r.headers["Set-Cookie"].split(";")[0]
    field = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    req = urllib.request.Request(url, data=(data + b"&" if data else b"") + b"csrf=" + field.encode(),
                                 method="POST", headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


HEADER_TIMEOUT = 1  # [web] header_timeout in these servers, seconds
KEY_OF = {"baseline": "2024-02-26..2024-03-03", "pending": "2024-03-11..2024-03-17",
          "ready": "2024-03-18..2024-03-24", "sending": "2024-03-25..2024-03-31",
          "trial": "2024-04-01..2024-04-07", "skipped": "2024-04-08..2024-04-14"}


def start_serve(tmp, env: dict | None = None):
    """`paperbot serve` in a process of its own on a free port; returns (process, base URL, config)."""
    port = _free_port()
    write_config(tmp, listen=f"127.0.0.1:{port}", base_url=f"http://127.0.0.1:{port}")
    with (tmp / "paperbot.toml").open("a", encoding="utf-8") as f:
        f.write(f'header_timeout = "{HEADER_TIMEOUT}s"\n')  # the [web] table is the file's last
    cfg = load_config(tmp / "paperbot.toml")
    full_env = {**os.environ, "PAPERBOT_SECRET_KEY": KEY, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "serve"], cwd=tmp,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/static/site.css", timeout=1)  # needs no database connection
            break  # it answers: up
        except urllib.error.HTTPError:
            break  # it answers (an error page): up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("paperbot serve did not start:\n" + proc.stdout.read().decode(errors="replace"))
            time.sleep(0.1)
    return proc, base, cfg


def stop_serve(proc) -> str:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output = proc.stdout.read().decode(errors="replace")
    assert proc.returncode == 0, output
    assert KEY not in output  # the key is never printed or logged
    return output


def _fill(cfg) -> None:
    store = Store.open(cfg.db_path)
    for name in ("keep", "confirm", "oneclick", "forged", "a&b", "locked1", "locked2"):
        subs.add(store, f"{name}@example.org", origin="test", now=NOW)
    store_edition(store, sample_edition(), state="published")
    for state, key in KEY_OF.items():
        store_edition(store, sample_edition(key=key), state="ready" if state in ("sending", "trial") else state)
    ledger.plan(store, "digest", KEY_OF["sending"], "email", [Unit("keep@example.org", "1")], NOW)
    for state in ("trial", "skipped"):  # issue #10: written to the outbox only; then given up when live
        ledger.plan(store, "digest", KEY_OF[state], "email", [Unit("papers@example.org", "sample")], NOW, trial=True)
    ledger.skip(store, "digest", KEY_OF["skipped"], "email", "skipped: only ever a trial", NOW)
    store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    _fill(write_config(tmp))
    proc, base, cfg = start_serve(tmp)
    yield base, cfg
    stop_serve(proc)


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
    assert '<form method="post"' in body and "<button" in body
    assert "keep@example.org" not in body  # issue #13: no page shows the address
    assert headers["Referrer-Policy"] == "no-referrer" and "no-store" in headers["Cache-Control"]
    assert _state(cfg, "keep@example.org") == "active"
    status, body, _ = _request(_link(base, "a&b@example.org"))
    assert status == 200 and "a&b@" not in body and "a&amp;b@" not in body


def test_confirm_button_post_unsubscribes(server):
    base, cfg = server
    status, body, _ = _with_csrf(_link(base, "confirm@example.org"))
    assert status == 200 and "You are unsubscribed" in body and "confirm@example.org" not in body
    assert _state(cfg, "confirm@example.org") == "unsubscribed"
    status, body, _ = _with_csrf(_link(base, "confirm@example.org"))  # twice: still fine
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
    assert "Top ML Papers of the Week</h1>" in body and "&lt;script&gt;alert(1)" in body
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


# -- issue #8: robustness ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state, status", [("baseline", 404), ("pending", 404), ("ready", 404),
                                           ("sending", 200), ("trial", 404), ("skipped", 404)])
def test_only_released_editions_are_public(server, state, status):
    """issue #8: baseline and pending weeks, and ready ones nobody has begun to send, were public. A week is
    released once published, or once a channel has begun sending it (its emails link to the page).
    issue #10: a ready week that only had a trial (the outbox), or one skipped, reached nobody: not public."""
    base, _ = server
    got, body, headers = _request(f"{base}/editions/digest/{KEY_OF[state]}")
    assert got == status
    assert ("Top ML Papers of the Week" in body) == (status == 200)
    assert "nosniff" in headers["X-Content-Type-Options"]


def test_edition_cache_follows_the_weeks_changes(server):
    """issue #8: editions are cached (rendered once per version of the week); an edit must still show."""
    base, cfg = server
    key = KEY_OF["sending"]
    first = _request(f"{base}/editions/digest/{key}")[1]
    assert _stable(_request(f"{base}/editions/digest/{key}")[1]) == _stable(first)
    store = Store.open(cfg.db_path)
    try:
        paper = replace(sample_edition(key=key).papers[0], title="An Edited Title")
        store.replace_papers("digest", key, (paper,))
        store.upsert_week("digest", key, last_changed=datetime(2024, 3, 26, tzinfo=UTC), n_papers=1)
    finally:
        store.close()
    status, body, _ = _request(f"{base}/editions/digest/{key}")
    assert status == 200 and "An Edited Title" in body and body != first


def _hold_write_lock(db_path):
    """Another writer (a long poll, say): BEGIN IMMEDIATE on its own connection until ROLLBACK."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_unsubscribe_is_not_lost_while_another_writer_holds_the_lock(server):
    """issue #8: with the write lock held by another process for 14 s, the one-click POST got a bare 500 and
    the address stayed active, and every other request stalled meanwhile. Now both POSTs (one-click and the
    confirm button) answer 2xx during the hold, pages and 404s are answered during it, and the addresses
    are unsubscribed as soon as the lock is released. The hold lasts until everything was answered (at
    least $PAPERBOT_TEST_LOCK_HOLD seconds, to measure a 14 s hold by hand)."""
    base, cfg = server
    started = time.monotonic()
    holder = _hold_write_lock(cfg.db_path)
    try:
        with ThreadPoolExecutor(2) as pool:
            one_click = pool.submit(_request, _link(base, "locked1@example.org"), b"List-Unsubscribe=One-Click")
            button = pool.submit(_with_csrf, _link(base, "locked2@example.org"))
            page_status, body, _ = _request(f"{base}/editions/digest/2024-03-04..2024-03-10")
            probe_status = _request(f"{base}/nothing")[0]
            form_status = _request(_link(base, "keep@example.org"))[0]
            one_click_status, one_click_body, _ = one_click.result()
            button_status, button_body, _ = button.result()
        assert page_status == 200 and "Top ML Papers of the Week" in body  # WAL: reads go on during a write
        assert probe_status == 404 and form_status == 200
        assert one_click_status in (200, 202) and "unsubscribe" in one_click_body
        assert button_status == 200 and "You are unsubscribed" in button_body
        assert _state(cfg, "locked1@example.org") == "active"  # not yet: the lock is still held
        time.sleep(max(0.0, float(os.environ.get("PAPERBOT_TEST_LOCK_HOLD", "0")) - (time.monotonic() - started)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    deadline = time.monotonic() + 10
    while {_state(cfg, "locked1@example.org"), _state(cfg, "locked2@example.org")} != {"unsubscribed"}:
        assert time.monotonic() < deadline, "queued unsubscribes not applied after the lock was released"
        time.sleep(0.1)
    assert _row(cfg, "locked1@example.org")[1] == "unsubscribed via web:one-click"
    assert _row(cfg, "locked2@example.org")[1] == "unsubscribed via web"


def _raw(base: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; read the answer until the server closes. (status, headers, body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_ours(status: int, headers: dict[str, str], expected: int) -> None:
    assert status == expected, (status, headers)
    assert headers.get("server") == "paperbot", headers
    assert "default-src 'none'" in headers.get("content-security-policy", ""), headers
    assert headers.get("x-content-type-options") == "nosniff", headers


@pytest.mark.parametrize("name, request_bytes, expected", [
    ("malformed request line", b"NOT AN HTTP REQUEST\r\n\r\n", 400),
    ("header line too long", b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", 400),
    ("bad header", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    ("unknown page", b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ("wrong method", b"PUT /unsubscribe/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     405),
    ("body too large", b"POST /unsubscribe/abc HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
     b"urlencoded\r\nContent-Length: 70000\r\nConnection: close\r\n\r\n" + b"a" * 70000, None),
    ("bad token page", b"GET /unsubscribe/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    ("edition", b"GET /editions/digest/2024-03-04..2024-03-10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     200),
])
def test_every_response_has_our_security_headers_and_no_versions(server, name, request_bytes, expected):
    """issue #8: aiohttp's own 400/404/405/500 pages lacked our CSP and nosniff; `Server:` named the Python
    and aiohttp versions."""
    base, _ = server
    status, headers, body = _raw(base, request_bytes)
    _assert_ours(status, headers, expected or status)
    assert b"aiohttp" not in body and b"Python" not in body


def test_405_says_which_methods_are_allowed(server):
    """issue #8: 405 answers had no `Allow` header."""
    base, _ = server
    status, headers, _ = _raw(base, b"DELETE /editions/digest/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _assert_ours(status, headers, 405)
    assert set(headers["allow"].split(",")) == {"GET", "HEAD"}
    status, headers, _ = _raw(base, b"PUT /unsubscribe/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                    b"Connection: close\r\n\r\n")
    assert status == 405 and set(headers["allow"].split(",")) == {"GET", "HEAD", "POST"}


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b"" or s.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_that_never_finish_their_headers_are_dropped(server):
    """issue #8: there was no header-read timeout: 1,100 half-open connections were still held after 20 s.
    Now each connection must send a whole request within [web] header_timeout (1 s here), trickling or not."""
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    stalled = []
    for i in range(50):
        s = socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT + 5)
        s.sendall(b"GET /unsubscribe/" + str(i).encode() + b" HTTP/1.1\r\nHost: exa")
        stalled.append(s)
    trickle = socket.create_connection((host, int(port)), timeout=0.2)
    sent = b""
    try:
        for byte in b"GET /editions/digest/2024-03-04..2024-03-10 HTTP/1.1\r\nHost: example.org\r\n":
            trickle.sendall(bytes([byte]))
            sent += bytes([byte])
            time.sleep(0.05)
    except OSError:
        pass  # closed under us: that is the point
    trickle.settimeout(HEADER_TIMEOUT + 5)
    try:
        assert sum(_closed_by_server(s) for s in stalled) == len(stalled)
        assert _closed_by_server(trickle), f"still open after trickling {len(sent)} bytes"
    finally:
        for s in [*stalled, trickle]:
            s.close()
    assert _request(f"{base}/nothing")[0] == 404  # and the server is fine


def test_a_post_body_that_never_arrives_gets_408(server):
    """issue #8: a POST whose body stalls after its headers must not hold the connection (or the address)."""
    base, cfg = server
    token = unsubscribe_token(KEY.encode(), "keep@example.org")
    status, headers, body = _raw(base, f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                       "application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
                                       "List-Unsubscribe=".encode())
    _assert_ours(status, headers, 408)
    assert _state(cfg, "keep@example.org") == "active"


def test_pages_answer_503_with_retry_after_while_the_database_cannot_be_read(tmp_path):
    """issue #8: a locked database stalled every request. Under WAL a write lock never blocks reads (see the
    test above); a reader is shut out only while another process has the database in exclusive locking mode
    (a `sqlite3` shell, a backup tool). Pages then answer 503 with Retry-After after a short wait instead of
    hanging, and work again once it is released."""
    _fill(write_config(tmp_path))
    proc, base, cfg = start_serve(tmp_path)
    url = f"{base}/editions/digest/2024-03-04..2024-03-10"
    try:
        holder = sqlite3.connect(cfg.db_path, isolation_level=None)
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE subscribers SET origin = origin WHERE id = 1")
        try:
            status, body, headers = _request(url)
            probe = _request(f"{base}/nothing")[0]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert status == 503 and int(headers["Retry-After"]) > 0 and "try again" in body
        assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["Server"] == "paperbot"
        assert probe == 404
        assert _request(url)[0] == 200
    finally:
        stop_serve(proc)


def test_queued_unsubscribes_are_applied_at_start(tmp_path):
    """issue #8: an unsubscribe queued while the database was locked must not wait for another request, and
    must survive a restart: the server applies the queue when it starts."""
    cfg = write_config(tmp_path)
    _fill(cfg)
    subs.queue_unsubscribe(cfg.state_dir / "unsubscribe-queue.jsonl", "locked1@example.org", now=NOW,
                           origin="web:one-click")
    proc, base, cfg = start_serve(tmp_path)
    try:
        deadline = time.monotonic() + 10
        while _state(cfg, "locked1@example.org") != "unsubscribed":
            assert time.monotonic() < deadline, "the queued unsubscribe was not applied at start"
            time.sleep(0.1)
        assert _row(cfg, "locked1@example.org")[1] == "unsubscribed via web:one-click"
        assert _state(cfg, "locked2@example.org") == "active"
    finally:
        stop_serve(proc)


def test_a_page_that_fails_gets_our_500_page(tmp_path):
    """issue #8: aiohttp's own 500 page lacked our security headers and named its version. A broken
    template (the operator's own, via PAPERBOT_TEMPLATES_DIR) makes the edition page fail."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "newsletter.mjml").write_text("{% if %}", encoding="utf-8")
    _fill(write_config(tmp_path))
    proc, base, _ = start_serve(tmp_path, env={"PAPERBOT_TEMPLATES_DIR": str(tmp_path / "templates")})
    try:
        status, headers, body = _raw(base, b"GET /editions/digest/2024-03-04..2024-03-10 HTTP/1.1\r\nHost: x\r\n"
                                           b"Connection: close\r\n\r\n")
        _assert_ours(status, headers, 500)
        assert b"Something went wrong" in body and b"Traceback" not in body
    finally:
        output = stop_serve(proc)
    assert "newsletter.mjml" in output  # the operator learns what broke
