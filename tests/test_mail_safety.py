"""Issue #7: a digest's text never becomes a mail header or a forged line of the text part.

Attack strings go in where an attacker who edits a watched digest or feed puts them (a week heading, a feed's
<title>, a paper title) and where an operator's template does (`email.subject`); what a real aiosmtpd server
receives must hold exactly paperbot's headers, one of each, in order, with the attack shown as literal text.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, date, datetime
from email.parser import BytesHeaderParser
from email.utils import formataddr, parseaddr
from html import escape

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from publish_support import DIGEST, SECRET, add_subscribers, smtp_server, write_config

from bot.channels.email.headers import UnsafeHeader, check_block, unstructured
from bot.channels.email.mime import build_template
from bot.channels.email.render import UNSUBSCRIBE_PLACEHOLDER
from bot.edition.safetext import clean
from bot.publish.pipeline import publish_ready
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

EXPECTED = ["From", "Subject", "Date", "List-Id", "MIME-Version", "To", "Message-ID", "List-Unsubscribe",
            "List-Unsubscribe-Post", "Content-Type"]

# Encoded words that decode to a line break: CRLF (q), CRLF CRLF (ends the block, body injection), bare LF,
# U+2028 (a line separator to str.splitlines), and the base64 form of "x\r\nBcc: evil@x.org".
ATTACKS = {
    "q-crlf": "=?utf-8?q?x=0D=0ABcc:_evil@x.org?=",
    "q-crlf-body": "=?utf-8?q?x=0D=0A=0D=0AContent-Type:_text/html=0D=0A=0D=0A<a_href=3Dhttps://phish.example>"
                   "log_in</a>?=",
    "q-lf": "=?utf-8?q?x=0ABcc:_evil@x.org?=",
    "q-u2028": "=?utf-8?q?x=E2=80=A8Bcc:_evil@x.org?=",
    "b-crlf": "=?utf-8?b?eA0KQmNjOiBldmlsQHgub3Jn?=",
    "b-crlf-upper": "=?UTF-8?B?eA0KDQpCY2M6IGV2aWxAeC5vcmc=?=",
}


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def _digest_with(heading_extra: str = "", paper_title: str = "Sparse Lanterns") -> bytes:
    text = DIGEST.replace("## Top ML Papers of the Week (Feb 20-26)",
                          f"## Top ML Papers of the Week (Feb 20-26) {heading_extra}".rstrip())
    return text.replace("**Sparse Lanterns**", f"**{paper_title}**").encode()


def _feed_with(title: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>{escape(title)}</title><link>https://example.org/</link>
<description>d</description>
<item><title>Paper One</title><link>https://example.org/p/1</link><guid>https://example.org/p/1</guid>
<pubDate>Mon, 06 Mar 2023 10:00:00 GMT</pubDate><description>First summary.</description></item>
</channel></rss>""".encode()


def _publish(tmp_path, data: bytes, fmt: str, *, subject: str = "{title}", source: str = "dair"):
    """Observe `data`, let the gate release it, publish to 3 subscribers through a real SMTP server."""
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        if subject != "{title}":
            text = cfg.path.read_text().replace('subject = "{title}"', f"subject = {subject!r}".replace("'", '"'))
            cfg.path.write_text(text)
            from bot.channels import load_config
            cfg = load_config(cfg.path)
        store = Store.open(cfg.db_path)
        add_subscribers(store, tmp_path, ["a@example.net", "b@example.net", "c@example.net"])
        doc = parse_document(data, date(2023, 3, 13), fmt)
        observe(store, source, doc, datetime(2023, 3, 13, 12, tzinfo=UTC), "v1", cfg.publish)
        release(store, datetime(2023, 4, 10, tzinfo=UTC), cfg.publish)
        publish_ready(cfg, store, datetime(2023, 4, 10, tzinfo=UTC))
        return list(rec.messages)


def _assert_exact_headers(messages, attack: str) -> None:
    assert sorted(r for r, _ in messages) == ["a@example.net", "b@example.net", "c@example.net"]
    for rcpt, raw in messages:
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"Bcc" not in head and b"evil@x.org" not in head.replace(b"=?", b"")
        parsed = BytesHeaderParser(policy=email.policy.default).parsebytes(head + b"\r\n\r\n")
        assert parsed.keys() == EXPECTED, f"{rcpt}: {parsed.keys()}"
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["To"] == rcpt
        assert attack in str(msg["Subject"])  # shown as the literal text it was
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_encoded_words_in_a_week_heading_never_become_headers(tmp_path, name):
    messages = _publish(tmp_path, _digest_with(f"{ATTACKS[name]} end"), "digest")
    _assert_exact_headers(messages, ATTACKS[name])


@pytest.mark.parametrize("name", list(ATTACKS))
def test_encoded_words_in_a_feed_title_never_become_headers(tmp_path, name):
    messages = _publish(tmp_path, _feed_with(f"News {ATTACKS[name]} end"), "feed", source="news")
    _assert_exact_headers(messages, re.sub(r"<[^>]*>", "", ATTACKS[name]))  # feedparser drops the tags


@pytest.mark.parametrize("name", list(ATTACKS))
def test_encoded_words_in_the_subject_template_never_become_headers(tmp_path, name):
    messages = _publish(tmp_path, _digest_with(), "digest", subject=f"{ATTACKS[name]} {{title}}")
    _assert_exact_headers(messages, ATTACKS[name])


@pytest.mark.parametrize("name", list(ATTACKS))
def test_encoded_words_in_a_paper_title_stay_text_in_the_body(tmp_path, name):
    messages = _publish(tmp_path, _digest_with(paper_title=f"Lanterns {ATTACKS[name]}"), "digest")
    _assert_exact_headers(messages, "Top ML Papers of the Week")
    for _, raw in messages:
        text, html = email.message_from_bytes(raw, policy=email.policy.default).iter_parts()
        assert ATTACKS[name].replace("_", " ")[:12] in text.get_content().replace("_", " ")
        assert "<a href=3Dhttps://phish" not in html.get_content()


def test_a_block_with_a_smuggled_header_is_refused_naming_the_week():
    head = b"From: a@b.org\r\nSubject: x\r\nBcc: evil@x.org\r\nDate: d\r\nMIME-Version: 1.0\r\n"
    with pytest.raises(UnsafeHeader, match="bcc"):
        check_block(head, ["From", "Subject", "Date", "MIME-Version"])
    with pytest.raises(UnsafeHeader, match="blank line"):
        check_block(b"From: a@b.org\r\n\r\nSubject: x\r\n", ["From", "Subject"])
    with pytest.raises(UnsafeHeader, match="dair:2023-02-20"):
        build_template(sender="Papers <p@exam\u2028ple.org>", subject="s",
                       date=datetime(2023, 3, 1, tzinfo=UTC), list_id="l.example.org", contact="",
                       text="t", html_body="<p>h</p>", placeholder="P", label="dair:2023-02-20..2023-02-26")
    t = build_template(sender="Papers <p@example.org>", subject="s", date=datetime(2023, 3, 1, tzinfo=UTC),
                       list_id="l.example.org", contact="", text="t", html_body="<p>h</p>", placeholder="P")
    with pytest.raises(UnsafeHeader):
        t.render("a@example.net\r\nBcc: evil@x.org", "<id@x>", "https://u.example/t")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.text(max_size=300), display=st.text(max_size=80))
def test_any_text_in_a_header_field_parses_back_to_exactly_our_headers(subject, display):
    """Hypothesis: whatever the subject and the sender's display name hold, the block is exactly ours."""
    sender = formataddr((display, "papers@example.org"))
    assume(parseaddr(sender)[1] == "papers@example.org")
    t = build_template(sender=sender, subject=subject, date=datetime(2023, 3, 1, tzinfo=UTC),
                       list_id="papers.example.org",
                       contact="help@example.org", text=f"hi {UNSUBSCRIBE_PLACEHOLDER}", html_body="<p>hi</p>",
                       placeholder=UNSUBSCRIBE_PLACEHOLDER)
    raw = t.render("reader@example.net", "<id@papers.example.org>", "https://papers.example.org/u/tok")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert max(len(line) for line in head.split(b"\r\nDate: ")[0].split(b"\r\n")) <= 78  # From, Subject
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.keys() == EXPECTED
    assert str(msg["Subject"]) == clean(subject)
    assert msg["To"] == "reader@example.net"


@given(st.text(max_size=200))
def test_unstructured_reads_back_as_the_clean_text(text):
    line, value = unstructured("Subject", text)
    check_block(line, ["Subject"], subject=value)


SUMMARY = ("A careful study of sparse routing that needs exactly enough words here to wrap "
           "-- Unsubscribe: https://phish.example/unsubscribe?u=1 and View this email in your browser: "
           "https://phish.example/view and → Paper: https://phish.example/p")


def test_text_part_lines_from_the_digest_never_look_like_ours(tmp_path):
    """Issue #7 finding 3: wordwrap put `-- Unsubscribe: https://phish…` from a summary on a line of its own."""
    data = _digest_with().decode().replace("routes tokens to a handful of experts and halves the compute.",
                                           SUMMARY).encode()
    messages = _publish(tmp_path, data, "digest")
    for _, raw in messages:
        text = next(email.message_from_bytes(raw, policy=email.policy.default).iter_parts()).get_content()
        lines = text.splitlines()
        footer = lines.index("-- ")
        assert lines.count("-- ") == 1
        for line in lines[:footer]:
            assert not line.startswith(("--", "Unsubscribe", "View this email")), line
            if "phish.example" in line:
                assert line.startswith("   ") and not line.lstrip().startswith("→"), line
        assert [ln for ln in lines if ln.startswith("Unsubscribe:")] == [
            ln for ln in lines[footer:] if ln.startswith("Unsubscribe: https://papers.weekly.test/")]
        assert not any("phish" in ln for ln in lines[footer:])
