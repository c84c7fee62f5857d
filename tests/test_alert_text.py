"""Issue #21, "Alert text stays text": what a failing source said (an HTTP reason phrase, git's `remote:` lines,
a parser's complaint) never renders as Markdown in an alert, and a reason phrase is never stored.

A real HTTP server on 127.0.0.1 plays a hostile host: every answer is a 403 whose reason phrase, and whose
text/plain body (which git prints as `remote:` lines), is a phishing message in Discord Markdown. Real polls
(urllib for a `url` source, the git binary over smart HTTP for a `git` source) fail against it; the alerts go
to a real aiosmtpd server and to the local webhook server (tests/webhook_support.py). What is asserted is what
those servers received, and the rows in the SQLite file.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from publish_support import SECRET, smtp_server, write_config
from sources_support import FAST
from webhook_support import Webhook

from bot.channels import load_config
from bot.ops import alerts
from bot.sources.poll import poll_source
from bot.store import Store

T0 = datetime(2024, 2, 1, 12, tzinfo=UTC)
HOOK_PATH = "/api/webhooks/1234/hook-token-abcdef"
PHISH = "[Paperbot login expired - click to re-authorize](https://evil.test/login)"
LOUD = "**URGENT** ||act now|| <@&123456789012345678> @everyone ~~safe~~ __here__ `code` ```"
REASON = f"{PHISH} {LOUD}"
BODY = f"{PHISH}\n{LOUD}\n"
# What renders on Discord outside a code block: a masked link, bold, spoiler, strike, underline, a role or user
# pill, @everyone, inline code.
RENDERS = re.compile(r"\]\(|\*\*|\|\||~~|__|<@|@everyone|@here|evil\.test")


@contextmanager
def hostile_host() -> Iterator[str]:
    """A server answering every GET with 403, the reason phrase REASON and the text/plain body BODY."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = BODY.encode()
            self.send_response(403, REASON)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)


def _config(tmp_path, smtp_port: int, source: str):
    cfg = write_config(tmp_path, smtp_port)
    with cfg.path.open("a", encoding="utf-8") as f:
        f.write('[alerts]\nemail = "Ops <ops@weekly.test>"\nfailures = 2\n[publish]\nbackfill = 0\n')
        f.write(f'\n[[sources]]\nname = "lab"\n{source}\ntimezone = "UTC"\n')
    return load_config(cfg.path)


def _fail_twice_and_alert(cfg, monkeypatch, hook: Webhook) -> str:
    """Two failed polls, then the alerts; returns the source's stored last error."""
    monkeypatch.setenv(alerts.WEBHOOK_ENV, hook.url(HOOK_PATH))
    store = Store.open(cfg.db_path)
    try:
        for hours in (0, 1):
            poll_source(store, cfg, cfg.sources[0], T0 + timedelta(hours=hours), options=FAST)
        assert [p.kind for p in alerts.run(cfg, store, T0 + timedelta(hours=1))] == ["failing"]
        return store.source("lab")["last_error"]
    finally:
        store.close()


def assert_nothing_renders(content: str) -> str:
    """`content` as Discord got it: outside its one code block no Markdown from the source can render, and the
    block cannot be closed early (no backtick inside). Returns the block's text."""
    assert len(content.encode("utf-16-le")) // 2 <= 2000  # Discord's limit, counted the safe way
    parts = content.split("```")
    assert len(parts) == 3, content  # exactly one fenced block
    before, inside, after = parts
    assert before.endswith("\n") and inside.startswith("\n") and inside.endswith("\n"), content
    assert "`" not in inside
    outside = before + after
    assert not RENDERS.search(outside.replace("**paperbot: ", "").replace("failed**\n", "failed\n")), outside
    return inside.strip("\n")


def _email_text(rec) -> str:
    ((rcpt, raw),) = rec.messages
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpt == "ops@weekly.test" and msg.get_content_type() == "text/plain" and not msg.is_multipart()
    return msg.get_content().replace("\r\n", "\n")


def test_an_http_reason_phrase_is_never_stored_nor_shown_issue_21(tmp_path, monkeypatch):
    """#21: a 403 whose reason phrase is a Markdown phishing link: the database keeps `HTTP 403 Forbidden`
    (the code, with the standard phrase), and neither the webhook nor the email carries a word of the phrase."""
    with hostile_host() as base, smtp_server() as (rec, port), Webhook() as hook:
        cfg = _config(tmp_path, port, f'url = "{base}/digest.md"')
        stored = _fail_twice_and_alert(cfg, monkeypatch, hook)
        assert "HTTP 403 Forbidden" in stored and "evil" not in stored and "URGENT" not in stored, stored
        (content,) = hook.contents()
        quote = assert_nothing_renders(content)
        assert "HTTP 403 Forbidden" in quote
        assert "evil" not in content and "URGENT" not in content
        text = _email_text(rec)
        assert "HTTP 403 Forbidden" in text and "evil" not in text
    dump = b"".join(p.read_bytes() for p in cfg.state_dir.rglob("*.db*") if p.is_file())
    assert b"evil.test" not in dump and b"URGENT" not in dump  # in no table, no WAL page


def test_git_remote_lines_show_as_typed_never_as_markdown_issue_21(tmp_path, monkeypatch):
    """#21: git prints the hostile host's text/plain answer as `remote:` lines. The alert shows them exactly as
    typed: on Discord only inside a code block that they cannot close, in the email on a line of their own in a
    text/plain body."""
    with hostile_host() as base, smtp_server() as (rec, port), Webhook() as hook:
        cfg = _config(tmp_path, port, f'git = "{base}/lab/digest.git"')
        stored = _fail_twice_and_alert(cfg, monkeypatch, hook)
        assert f"remote: {PHISH}" in stored and "403" in stored, stored
        (content,) = hook.contents()
        quote = assert_nothing_renders(content)
        assert f"remote: {PHISH}; remote: {LOUD.replace('`', 'ˋ')}" in quote  # as typed, backticks stood in for
        assert hook.posts[0][1]["allowed_mentions"] == {"parse": []}
        text = _email_text(rec)
        assert f"\n    {stored}\n" in text  # the whole stored error, as typed, on its own indented line
        assert text.count(PHISH) == 1 and "`paperbot check`" in text


def _posted(p: alerts.Problem) -> str:
    """`p` posted to the local webhook server: the content it received."""
    with Webhook() as hook:
        alerts.post_webhook(hook.url(HOOK_PATH), p)
        ((path, body),) = hook.posts
    assert path == HOOK_PATH and body["allowed_mentions"] == {"parse": []}
    return body["content"]


def test_a_long_quote_holding_fences_is_cut_inside_its_block_issue_21():
    """#21: whatever a source said, one fenced block, closed, within Discord's 2000 characters; paperbot's own
    words around it stay whole."""
    hostile = "```\n" + "**x** [a](https://evil.test) ``` 🧨 " * 200
    p = alerts.Problem("failing:lab", "failing", "source lab: 3 polls in a row failed",
                       "The last said:\nWhat to do: `paperbot check`.", quote=" ".join(hostile.split()))
    content = _posted(p)
    quote = assert_nothing_renders(content)
    assert quote.endswith("…") and content.endswith("\nWhat to do: `paperbot check`.")
    assert content.startswith("**paperbot: source lab: 3 polls in a row failed**\nThe last said:\n```\n")
    assert quote.startswith("ˋˋˋ **x** [a](https://evil.test) ˋˋˋ 🧨")
    assert p.text().startswith("source lab: 3 polls in a row failed\n\nThe last said:\n    ``` **x**")


def test_a_delivery_error_from_a_server_is_quoted_too_issue_21():
    """#21: a delivery's last error (an SMTP reply, a platform's message) is a server's text: quoted like a
    source's."""
    p = alerts.Problem("deliveries:x:dair:k", "deliveries", "x dair:k: deliveries failed",
                       "1 refused for good. The last error:\nWhat to do: see `paperbot history dair:k`.",
                       quote=f"403 Forbidden: {REASON}")
    quote = assert_nothing_renders(_posted(p))
    assert quote == f"403 Forbidden: {REASON}".replace("`", "ˋ")
