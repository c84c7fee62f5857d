"""issue #13: the reader's web on a real `paperbot serve` with a real aiosmtpd server: double opt-in, CSRF,
rate limits, same answers, forged/expired/reused links, one-click unsubscribe, archive, feed and search."""

from __future__ import annotations

import email
import email.policy
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
from datetime import UTC, date, datetime

import feedparser
import pytest
from click.testing import CliRunner
from newsletter_fixtures import sample_edition, store_edition
from publish_support import free_port, smtp_server

from bot.channels import load_config
from bot.channels.email import subscribers as subs
from bot.channels.email.tokens import legacy_unsubscribe_token, unsubscribe_token
from bot.cli import cli
from bot.store import Store
from bot.track.model import Link, Paper

KEY = "reader-key-" + "0123456789" * 4
NOW = datetime(2024, 3, 11, tzinfo=UTC)
PUBLISHED = ["2024-02-26..2024-03-03", "2024-03-04..2024-03-10"]
HIDDEN = {"ready": "2024-03-11..2024-03-17", "pending": "2024-03-18..2024-03-24", "baseline": "2024-02-19..2024-02-25"}
SEARCHABLE = (
    Paper(title="GPT-4o Reads Charts", summary="An omni model answers questions about plotted gradients.",
          number=1, links=(Link("Paper", "https://example.org/p/1"),), authors="Ada Quill, Bo Rhee"),
    Paper(title="Fine-tuning Llama-3.1 on Receipts", summary="Small adapters learn <b>totals</b> & taxes.",
          number=2, links=(Link("Paper", "https://example.org/p/2"),), authors="C. Dunmore"),
    Paper(title="Sparse Lanterns", summary="Routes tokens to a handful of experts and halves the compute.",
          number=3, links=(Link("Paper", "https://example.org/p/3"),)),
)


def _edition(key: str, papers=SEARCHABLE):
    d = date.fromisoformat(key[:10])
    return sample_edition(key=key).__class__(source="digest", key=key, title=f"Week of {key[:10]}", first_day=d,
                                             last_day=date.fromisoformat(key[-10:]), papers=papers)


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


def _form(url: str) -> tuple[str, str]:
    """(cookie, csrf field) as a browser gets them from the page at `url`."""
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode("utf-8")
        cookie = r.headers["Set-Cookie"].split(";")[0]
    return cookie, re.search(r'name="csrf" value="([^"]+)"', body).group(1)


def _post(url: str, fields: dict, cookie: str = "", forwarded: str = "") -> tuple[int, str, dict]:
    headers = {"Cookie": cookie} if cookie else {}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    return _request(url, urllib.parse.urlencode(fields).encode(), headers)


def _subscribe(base: str, address: str, forwarded: str = "") -> tuple[int, str, dict]:
    cookie, csrf = _form(base + "/")
    return _post(base + "/subscribe", {"email": address, "csrf": csrf}, cookie, forwarded)


def _state(db, address: str) -> str | None:
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT state FROM subscribers WHERE address = ?", [address]).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def _table(db) -> list:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT address, state, reason FROM subscribers ORDER BY id").fetchall() + \
            con.execute("SELECT nonce, used_at FROM confirmations ORDER BY nonce").fetchall()
    finally:
        con.close()


def _wait_mail(rec, to: str, n: int = 1, timeout: float = 10) -> email.message.EmailMessage:
    deadline = time.monotonic() + timeout
    while True:
        got = [raw for rcpt, raw in list(rec.messages) if rcpt == to]
        if len(got) >= n:
            return email.message_from_bytes(got[n - 1], policy=email.policy.default)
        assert time.monotonic() < deadline, f"no message {n} to {to}"
        time.sleep(0.05)


def _link(msg, pattern: str) -> str:
    text = msg.get_body(("plain",)).get_content()
    return re.search(pattern, text).group(0)


def start(tmp, smtp_port: int, extra: str = ""):
    port = free_port()
    (tmp / "paperbot.toml").write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
starttls = false
from = "Papers Weekly <papers@example.org>"
contact = "help@example.org"
list_id = "papers.example.org"
[web]
base_url = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
title = "Papers <Weekly>"
description = "One email a week."
header_timeout = "2s"
{extra}
""", encoding="utf-8")
    cfg = load_config(tmp / "paperbot.toml")
    store = Store.open(cfg.db_path)
    for key in PUBLISHED:
        store_edition(store, _edition(key), state="published")
    for state, key in HIDDEN.items():
        store_edition(store, _edition(key, (Paper(title=f"Hidden {state} paper", summary="secret words",
                                                  number=1),)), state=state)
    subs.add(store, "already@example.org", origin="test", now=NOW)
    subs.add(store, "old-link@example.org", origin="test", now=NOW)
    store.close()
    env = {**os.environ, "PAPERBOT_SECRET_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "serve"], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/static/site.css", timeout=1)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.1)
    return proc, base, cfg


def stop(proc) -> str:
    proc.terminate()
    proc.wait(timeout=10)
    out = proc.stdout.read().decode(errors="replace")
    assert KEY not in out
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reader")
    with smtp_server() as (rec, smtp_port):
        proc, base, cfg = start(tmp, smtp_port, 'subscribe_limit = "100/10m"')
        yield base, cfg, rec
        out = stop(proc)
    for address in ("new@example.org", "already@example.org"):
        assert address not in out  # issue #13: no address in the logs either


def test_double_opt_in_confirmation_then_welcome_with_the_latest_edition(site):
    """issue #13: subscribe -> pending + a confirmation email whose link names no address -> GET shows a button
    and changes nothing -> POST makes it active and sends the welcome email with the latest edition."""
    base, cfg, rec = site
    status, body, _ = _subscribe(base, "new@example.org")
    assert status == 200 and "Check your inbox" in body
    assert _state(cfg.db_path, "new@example.org") == "pending"
    msg = _wait_mail(rec, "new@example.org")
    assert "Confirm your subscription" in msg["Subject"]
    link = _link(msg, r"http://127\.0\.0\.1:\d+/confirm/\S+")
    assert "new" not in link.rsplit("/", 1)[1]
    for _ in range(2):  # a mail scanner
        status, page, _ = _request(link)
        assert status == 200 and "Confirm my subscription" in page
    assert _state(cfg.db_path, "new@example.org") == "pending"
    cookie, csrf = _form(link)
    status, page, _ = _post(link, {"csrf": csrf}, cookie)
    assert status == 200 and "You are subscribed" in page
    assert _state(cfg.db_path, "new@example.org") == "active"
    welcome = _wait_mail(rec, "new@example.org", 2)
    assert welcome["Subject"].startswith("Welcome to Papers <Weekly>")
    assert "Week of 2024-03-04" in welcome.get_body(("plain",)).get_content()  # the latest published one
    unsub = re.match(r"<(http[^>]+)>", welcome["List-Unsubscribe"]).group(1)
    assert "new" not in unsub and "@" not in unsub
    status, again, _ = _post(link, {"csrf": csrf}, cookie)  # reused: a clear page, nothing changes
    assert status == 410 and "already been used" in again


def test_same_answer_for_new_and_subscribed_addresses(site):
    """issue #13: the answer (status and body) does not say whether an address is on the list."""
    base, cfg, rec = site
    a = _subscribe(base, "brand-new@example.org")
    b = _subscribe(base, "already@example.org")
    assert a[0] == b[0] == 200
    assert re.sub(r'value="[^"]+"', "", a[1]) == re.sub(r'value="[^"]+"', "", b[1])
    _wait_mail(rec, "brand-new@example.org")
    # issue #24: an active address gets a "subscribed already" email instead (tests/test_web_abuse.py)
    assert "already subscribed" in _wait_mail(rec, "already@example.org")["Subject"]


def test_a_form_without_a_valid_csrf_token_changes_nothing(site):
    """issue #13: CSRF on every form: subscribe, confirm and unsubscribe refuse a missing or foreign token."""
    base, cfg, rec = site
    before = _table(cfg.db_path)
    cookie, csrf = _form(base + "/")
    for fields, c in (({"email": "csrf@example.org"}, cookie), ({"email": "csrf@example.org", "csrf": csrf}, ""),
                      ({"email": "csrf@example.org", "csrf": "x" * 24}, cookie)):
        status, body, _ = _post(base + "/subscribe", fields, c)
        assert status == 403 and "nothing was changed" in body
    url = f"{base}/unsubscribe/{unsubscribe_token(KEY.encode(), 'already@example.org')}"
    assert _post(url, {"csrf": csrf})[0] == 403  # the field without the cookie it signs
    assert _table(cfg.db_path) == before


def test_forged_and_expired_confirmation_links_change_nothing(site):
    """issue #13: a forged or expired confirmation link gets a clear page and leaves the table as it was."""
    base, cfg, rec = site
    _subscribe(base, "late@example.org")
    link = _link(_wait_mail(rec, "late@example.org"), r"http://127\.0\.0\.1:\d+/confirm/\S+")
    con = sqlite3.connect(cfg.db_path)
    con.execute("UPDATE confirmations SET expires_at = '2020-01-01T00:00:00+00:00' WHERE address = ?",
                ["late@example.org"])
    con.commit()
    con.close()
    before = _table(cfg.db_path)
    status, page, _ = _request(link)
    assert status == 410 and "expired" in page
    cookie, csrf = _form(base + "/")
    assert _post(link, {"csrf": csrf}, cookie)[0] == 410
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    status, page, _ = _request(forged)
    assert status == 400 and "not valid" in page
    assert _post(forged, {"csrf": csrf}, cookie)[0] == 400
    assert _table(cfg.db_path) == before
    assert _state(cfg.db_path, "late@example.org") == "pending"


def test_one_click_post_unsubscribes_and_get_does_not_and_old_links_still_work(site):
    """issue #13: RFC 8058 POST to the header URL (opaque ref) unsubscribes; a GET does not; a link mailed
    before (the address in it) still works."""
    base, cfg, rec = site
    url = f"{base}/unsubscribe/{unsubscribe_token(KEY.encode(), 'already@example.org')}"
    assert _request(url)[0] == 200 and _state(cfg.db_path, "already@example.org") == "active"
    status, body, _ = _request(url, b"List-Unsubscribe=One-Click")
    assert status == 200 and _state(cfg.db_path, "already@example.org") == "unsubscribed"
    old = f"{base}/unsubscribe/{legacy_unsubscribe_token(KEY.encode(), 'old-link@example.org')}"
    status, body, _ = _request(old, b"List-Unsubscribe=One-Click")
    assert status == 200 and _state(cfg.db_path, "old-link@example.org") == "unsubscribed"


def test_archive_and_feed_list_exactly_the_published_weeks(site):
    """issue #13: /editions/ (newest first) and /feed.xml (valid Atom, stable ids) show only published weeks;
    an edition page has the subscribe form and links to its neighbours."""
    base, cfg, rec = site
    status, body, _ = _request(base + "/editions/")
    assert status == 200
    keys = re.findall(r"/editions/digest/([0-9.-]+)", body)
    assert keys == sorted(PUBLISHED, reverse=True)
    status, xml, headers = _request(base + "/feed.xml")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    parsed = feedparser.parse(xml)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    ids = [e.id for e in parsed.entries]
    assert ids == [f"{cfg.web.base_url}/editions/digest/{k}" for k in sorted(PUBLISHED, reverse=True)]
    assert ids == [e.id for e in feedparser.parse(_request(base + "/feed.xml")[1]).entries]  # stable
    assert "Sparse Lanterns" in parsed.entries[0].content[0].value
    status, page, _ = _request(f"{base}/editions/digest/{PUBLISHED[0]}")
    assert status == 200 and 'action="/subscribe"' in page and f"/editions/digest/{PUBLISHED[1]}" in page
    assert _request(f"{base}/editions/?page=2")[0] == 404


@pytest.mark.parametrize("query,title", [
    ("handful", "Sparse Lanterns"),  # a word of the summary
    ('"halves the compute"', "Sparse Lanterns"),  # a phrase
    ("Lant", "Sparse Lanterns"),  # a prefix
    ("GPT-4o", "GPT-4o Reads Charts"),
    ("Llama-3.1", "Fine-tuning Llama-3.1 on Receipts"),
    ("quill", "GPT-4o Reads Charts"),  # an author
])
def test_search_finds_papers_by_word_phrase_prefix_and_model_names(site, query, title):
    """issue #13: search over published papers, user input quoted (FTS syntax never breaks it)."""
    base, cfg, rec = site
    status, body, _ = _request(f"{base}/search?" + urllib.parse.urlencode({"q": query}))
    assert status == 200 and "<mark>" in body
    assert title.split()[-1] in re.sub(r"</?mark>", "", body)
    assert "Hidden" not in body


def test_search_escapes_text_and_hides_unpublished_weeks_and_survives_fts_syntax(site):
    base, cfg, rec = site
    status, body, _ = _request(f"{base}/search?q=totals")
    assert status == 200 and "&lt;b&gt;<mark>totals</mark>&lt;/b&gt;" in body and "<b>totals" not in body
    status, body, _ = _request(f"{base}/search?q=secret")
    assert status == 200 and "0 papers found" in body
    for q in ['"', "AND OR NOT", "title:x", "a* NEAR(", "(((", "*"]:
        assert _request(f"{base}/search?" + urllib.parse.urlencode({"q": q}))[0] == 200


def test_paperbot_search_command(site):
    base, cfg, rec = site
    run = CliRunner().invoke(cli, ["--config", str(cfg.path), "search", "GPT-4o", "--json"], obj={})
    assert run.exit_code == 0, run.output
    out = json.loads(run.stdout)
    assert out["total"] == 2 and {p["title"] for p in out["papers"]} == {"GPT-4o Reads Charts"}


def test_the_sixth_attempt_from_one_client_gets_429_and_proxies_are_trusted_only_when_listed(tmp_path):
    """issue #13: 5 attempts per 10 minutes per client; X-Forwarded-For is read only from trusted proxies."""
    with smtp_server() as (rec, smtp_port):
        proc, base, cfg = start(tmp_path, smtp_port)
        try:
            for i in range(5):
                assert _subscribe(base, f"r{i}@example.org", forwarded=f"203.0.113.{i}")[0] == 200
            status, body, headers = _subscribe(base, "r5@example.org", forwarded="203.0.113.99")
            assert status == 429 and "Too many attempts" in body and int(headers["Retry-After"]) > 0
            assert _state(cfg.db_path, "r5@example.org") is None
        finally:
            stop(proc)
        proc, base, cfg = start(tmp_path, smtp_port, 'trusted_proxies = ["127.0.0.1"]')
        try:
            for i in range(7):  # each a different client behind our proxy
                assert _subscribe(base, f"p{i}@example.org", forwarded=f"198.51.100.{i}")[0] == 200
            for i in range(5):
                assert _subscribe(base, f"q{i}@example.org", forwarded="198.51.100.200")[0] == 200
            assert _subscribe(base, "q9@example.org", forwarded="198.51.100.200")[0] == 429
        finally:
            stop(proc)


def test_confirmation_emails_per_address_per_day_are_capped(site):
    """issue #13: at most `confirm_per_day` (3) confirmation emails to one address in 24 hours; the answer
    stays the same."""
    base, cfg, rec = site
    for _ in range(5):
        assert _subscribe(base, "capped@example.org")[0] == 200
    _wait_mail(rec, "capped@example.org", 3)
    time.sleep(0.5)
    assert rec.recipients()["capped@example.org"] == 3
