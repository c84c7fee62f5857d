"""issue #24: the reader's web under abuse, tried as an attacker would against a real `paperbot serve` and a real
aiosmtpd server: rate limits keyed on what a client controls (an IPv6 /64, an IPv4-mapped address), the same
answer and the same work whatever an address's state, /healthz details for the operator only, a `__Host-`
CSRF cookie on HTTPS, and the config and `paperbot check` refusing or warning about what defeats them.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from publish_support import free_port, smtp_server

from bot.channels import load_config
from bot.config import ConfigError
from bot.web.security import client_key

KEY = "abuse-key-" + "0123456789" * 4


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def _form(base: str, headers: dict | None = None) -> tuple[str, str, dict]:
    """(cookie, csrf field, the page's headers) as a browser gets them from the home page."""
    status, body, h = _request(base + "/", headers=headers)
    cookie = h["Set-Cookie"].split(";")[0]
    return cookie, re.search(r'name="csrf" value="([^"]+)"', body.decode()).group(1), h


def _subscribe(base: str, address: str, cookie: str, csrf: str, forwarded: str = "") -> tuple[int, bytes]:
    headers = {"Cookie": cookie, **({"X-Forwarded-For": forwarded} if forwarded else {})}
    status, body, _ = _request(base + "/subscribe", urllib.parse.urlencode({"email": address, "csrf": csrf}).encode(),
                               headers)
    return status, body


def _write(tmp: Path, smtp_port: int, port: int, web: str = "", base_url: str = "") -> Path:
    path = tmp / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
list_id = "papers.weekly.test"
[web]
base_url = "{base_url or f'http://127.0.0.1:{port}'}"
listen = "127.0.0.1:{port}"
header_timeout = "2s"
{web}
""", encoding="utf-8")
    return path


def _serve(tmp: Path, path: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    cfg = load_config(path)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(path), "serve"], cwd=tmp,
                            env={**os.environ, "PAPERBOT_SECRET_KEY": KEY, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{cfg.web.host_port[1]}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/static/site.css", timeout=1)
            return proc, base
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    proc.wait(timeout=10)
    return proc.stdout.read().decode(errors="replace")


def _db(tmp: Path, sql: str) -> list:
    con = sqlite3.connect(tmp / "state" / "paperbot.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _wait(rec, n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while rec.count() < n:
        assert time.monotonic() < deadline, rec.recipients()
        time.sleep(0.05)


def test_the_client_key_is_what_a_client_controls():
    """issue #24: an IPv6 client is its /64 (configurable), `::ffff:a.b.c.d` is `a.b.c.d`; garbage is itself."""
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("2001:db8:1:2::1", 48) == client_key("2001:db8:1:ff::1", 48) == "2001:db8:1::/48"
    assert client_key("2001:db8::1", 128) == "2001:db8::1/128"
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("[2001:db8::5]") == "2001:db8::/64"
    assert client_key("?") == "?"


@pytest.fixture
def proxied(tmp_path):
    """A server behind a trusted proxy on 127.0.0.1 (X-Forwarded-For is believed), 3 attempts per client."""
    with smtp_server() as (rec, smtp_port):
        path = _write(tmp_path, smtp_port, free_port(), 'trusted_proxies = ["127.0.0.1"]\nsubscribe_limit = "3/10m"\n'
                                                        "confirm_per_day = 3")
        proc, base = _serve(tmp_path, path)
        try:
            yield base, rec, tmp_path
        finally:
            _stop(proc)


def test_twenty_addresses_of_one_ipv6_64_share_one_bucket_and_mapped_ipv4_is_ipv4(proxied):
    """issue #24: on main each IPv6 /128 was a bucket of its own (20 of one /64 -> 20 accepted with a limit of
    3) and `::ffff:192.0.2.7` was counted apart from `192.0.2.7`."""
    base, rec, tmp = proxied
    cookie, csrf, _ = _form(base)
    answers = [_subscribe(base, f"v6-{i}@example.org", cookie, csrf, f"2001:db8:aa:bb::{i + 1:x}")[0]
               for i in range(20)]
    assert answers.count(200) == 3 and answers.count(429) == 17
    assert _subscribe(base, "next-64@example.org", cookie, csrf, "2001:db8:aa:bc::1")[0] == 200  # another /64
    mixed = [_subscribe(base, f"v4-{i}@example.org", cookie, csrf, ip)[0]
             for i, ip in enumerate(["192.0.2.7", "::ffff:192.0.2.7", "192.0.2.7", "::ffff:192.0.2.7"])]
    assert mixed == [200, 200, 200, 429]


def test_twenty_case_spellings_of_one_inbox_get_three_confirmations_not_sixty(proxied):
    """issue #24: confirm_per_day counts the mailbox (case folded, +tag removed), not the string typed."""
    base, rec, tmp = proxied
    cookie, csrf, _ = _form(base)
    for i in range(20):
        local = "".join(c.upper() if i >> n & 1 else c for n, c in enumerate("victim"))
        tag = f"+{i}" if i % 3 == 0 else ""
        assert _subscribe(base, f"{local}{tag}@Example.org", cookie, csrf, f"198.51.100.{i + 1}")[0] == 200
    _wait(rec, 3)
    time.sleep(0.5)
    assert rec.count() == 3
    assert _db(tmp, "SELECT count(*) FROM confirmations")[0][0] == 3  # past the cap nothing is written
    assert _db(tmp, "SELECT lower(address) FROM subscribers ORDER BY id") == [("victim+0@example.org",),
                                                                              ("victim@example.org",)]


def test_an_encoded_word_address_is_refused_by_the_form_and_stored_nowhere(proxied):
    """issue #24: `=?utf-8?q?=0D=0ABcc=3Aevil=40x.org?=@example.org` was accepted and written raw into To:."""
    base, rec, tmp = proxied
    cookie, csrf, _ = _form(base)
    for bad in ("=?utf-8?q?=0D=0ABcc=3Aevil=40x.org?=@example.org",
                "Alice =?utf-8?b?DQpCY2M6IGV2aWxAeC5vcmc=?= <alice@example.org>"):
        status, body = _subscribe(base, bad, cookie, csrf, "203.0.113.9")
        assert status == 400 and b"does not look like an email address" in body
    time.sleep(0.3)
    assert rec.count() == 0 and _db(tmp, "SELECT count(*) FROM subscribers")[0][0] == 0


def test_the_answer_is_byte_identical_and_every_state_costs_one_write_and_one_email(tmp_path):
    """issue #24: an active address's answer came faster on main (no write, no email). Now new, pending,
    active and unsubscribed addresses get the same bytes, and each one row in `confirmations` and one email:
    a confirmation, or for the active one a "you are already subscribed" email with its unsubscribe link."""
    with smtp_server() as (rec, smtp_port):
        path = _write(tmp_path, smtp_port, free_port(), 'subscribe_limit = "100/10m"')
        cfg = load_config(path)
        from bot.channels.email import subscribers as subs
        from bot.store import Store
        store = Store.open(cfg.db_path)
        from datetime import UTC, datetime
        now = datetime.now(UTC)
        subs.add(store, "on@example.org", origin="test", now=now)
        subs.add(store, "left@example.org", origin="test", now=now, state="unsubscribed")
        subs.add(store, "waiting@example.org", origin="test", now=now, state="pending")
        store.close()
        proc, base = _serve(tmp_path, path)
        try:
            cookie, csrf, _ = _form(base)
            answers = {}
            for address in ("new@example.org", "On@example.org", "left@example.org", "waiting@example.org"):
                before = _db(tmp_path, "SELECT count(*) FROM confirmations")[0][0]
                status, answers[address] = _subscribe(base, address, cookie, csrf)
                assert status == 200
                assert _db(tmp_path, "SELECT count(*) FROM confirmations")[0][0] == before + 1  # one write each
            assert len(set(answers.values())) == 1  # byte for byte
            _wait(rec, 4)
            time.sleep(0.3)
            got = {rcpt: raw for rcpt, raw in rec.messages}
            assert sorted(got) == ["left@example.org", "new@example.org", "on@example.org", "waiting@example.org"]
            assert b"already subscribed" in got["on@example.org"] and b"/unsubscribe/" in got["on@example.org"]
            assert b"/confirm/" not in got["on@example.org"]
            assert all(b"/confirm/" in got[a] for a in ("left@example.org", "new@example.org", "waiting@example.org"))
            for _ in range(5):  # the "already subscribed" emails are capped like confirmations
                _subscribe(base, "ON@example.org", cookie, csrf)
            time.sleep(0.5)
            assert sum(1 for r, _ in rec.messages if r == "on@example.org") == 3
            assert _db(tmp_path, "SELECT state FROM subscribers WHERE address = 'on@example.org'") == [("active",)]
        finally:
            _stop(proc)


def test_healthz_tells_strangers_ok_or_degraded_and_the_operator_the_details(tmp_path):
    """issue #24: /healthz told anyone the pid, the start time, the source names and failure counts. Now a
    request through a proxy (a forwarding header) gets the status alone, the token or a bare loopback request
    the details; `paperbot health` keeps working."""
    with smtp_server() as (rec, smtp_port):
        path = _write(tmp_path, smtp_port, free_port())
        with path.open("a", encoding="utf-8") as f:
            f.write('[[sources]]\nname = "secret-source-name"\nurl = "https://digest.weekly.test/README.md"\n')
        proc, base = _serve(tmp_path, path, {"PAPERBOT_HEALTH_TOKEN": "t0ken-for-the-monitor"})
        try:
            status, body, _ = _request(base + "/healthz", headers={"X-Forwarded-For": "198.51.100.4"})
            assert status == 503 and json.loads(body) == {"status": "degraded"}
            status, body, _ = _request(base + "/healthz", headers={"Forwarded": "for=198.51.100.4"})
            assert json.loads(body) == {"status": "degraded"}
            status, body, _ = _request(base + "/healthz", headers={"X-Forwarded-For": "198.51.100.4",
                                                                   "Authorization": "Bearer wrong"})
            assert json.loads(body) == {"status": "degraded"}
            for headers in ({"X-Forwarded-For": "198.51.100.4", "Authorization": "Bearer t0ken-for-the-monitor"},
                            {}):
                status, body, _ = _request(base + "/healthz", headers=headers)
                detail = json.loads(body)
                assert detail["status"] == "unhealthy" and "secret-source-name" in detail["sources"]
            run = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "health"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=30)
            assert run.returncode == 1 and run.stdout.startswith("unhealthy (503)") and "heartbeat" in run.stdout
        finally:
            _stop(proc)


def test_the_csrf_cookie_is_a_host_cookie_on_https(tmp_path):
    """issue #24: on an HTTPS site the CSRF cookie is `__Host-` (Secure, Path=/, no Domain), so a subdomain or
    a plain-HTTP page cannot plant one; the form works with it, and not with the old name."""
    with smtp_server() as (rec, smtp_port):
        port = free_port()
        path = _write(tmp_path, smtp_port, port, base_url="https://papers.weekly.test")
        proc, base = _serve(tmp_path, path)
        try:
            cookie, csrf, headers = _form(base)
            set_cookie = headers["Set-Cookie"]
            assert cookie.startswith("__Host-paperbot_csrf=")
            assert "Secure" in set_cookie and "Path=/" in set_cookie and "Domain" not in set_cookie
            assert _subscribe(base, "host@example.org", cookie, csrf)[0] == 200
            old = cookie.replace("__Host-paperbot_csrf=", "paperbot_csrf=")
            assert _subscribe(base, "old@example.org", old, csrf)[0] == 403
        finally:
            _stop(proc)


@pytest.mark.parametrize(("web", "email", "says"), [
    ('base_url = "https://admin:hunter2@papers.weekly.test"', "", "user name or password"),
    ('trusted_proxies = ["0.0.0.0/0"]', "", "trusts every address"),
    ('trusted_proxies = ["::/0"]', "", "trusts every address"),
    ('trusted_proxies = ["::ffff:0:0/96"]', "", "trusts every address"),
    ("", 'list_id = "papers weekly.test"', "RFC 2919"),
    ("", 'list_id = "papers.weekly.test>"', "RFC 2919"),
    ("", 'list_id = "nodot"', "RFC 2919"),
])
def test_the_config_refuses_credentials_catch_all_proxies_and_bad_list_ids(tmp_path, web, email, says):
    """issue #24: each of these loaded on main."""
    path = tmp_path / "paperbot.toml"
    path.write_text(f"[email]\n{email}\n[web]\n{web}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_config(path)


def test_check_warns_about_a_proxy_without_trusted_proxies_and_about_wide_ranges(tmp_path):
    """issue #24: with the shipped proxy set-up and no trusted_proxies every reader shared one bucket, and a
    range holding strangers was believed; `paperbot check` now says so."""
    def check(web: str) -> str:
        path = tmp_path / "paperbot.toml"
        path.write_text(f'state_dir = "state"\n[web]\nbase_url = "https://papers.weekly.test"\n{web}\n',
                        encoding="utf-8")
        run = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "check", "--offline"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        return run.stdout
    out = check('listen = "0.0.0.0:8080"')
    assert re.search(r"note  config web\.trusted_proxies: .*answered by a proxy, but no proxy is trusted", out)
    out = check('trusted_proxies = ["127.0.0.1", "64.0.0.0/2"]')
    assert "64.0.0.0/2 is far wider" in out and "answered by a proxy" not in out
    assert "trusted_proxies" not in check('trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]')
