"""The per-recipient MIME template (bot/channels/email/mime.py): what the email package decodes is exactly the
text with the recipient's link in place, for any text, wherever the placeholder falls; lines stay within RFC limits."""

from __future__ import annotations

import email
import email.policy
import html
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.email.mime import build_template, id_domain, message_id

P = "https://unsubscribe.paperbot.invalid/__TOKEN__"
WHEN = datetime(2023, 3, 1, 9, 30, tzinfo=UTC)
piece = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=300)
spaces = st.sampled_from(["", " ", "  ", "=", "x" * 74, "x" * 75, "x" * 76, "é" * 30, "\n", " \n"])


def _build(text: str, body: str, subject: str = "Top ML Papers of the Week"):
    return build_template(sender="Papers Weekly <papers@example.org>", subject=subject, date=WHEN,
                          list_id="papers.example.org", contact="", text=text, html_body=body, placeholder=P)


def _decoded(raw: bytes) -> tuple[email.message.EmailMessage, str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text, body = msg.iter_parts()
    return msg, text.get_content().replace("\r\n", "\n"), body.get_content().replace("\r\n", "\n")


def _check_lines(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b""), "only CRLF line ends"
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "quoted-printable lines are at most 76 octets"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(piece, spaces), min_size=1, max_size=5), st.lists(st.one_of(piece, spaces), min_size=1,
                                                                               max_size=4))
def test_any_text_round_trips_with_the_link_in_place(text_pieces, html_pieces):
    text, body = P.join(text_pieces), P.join(html_pieces)
    url = "https://papers.example.org/unsubscribe/cmVhZGVyMEBleGFtcGxlLm5ldA.6rMxl1EJroJdDo5_cvVSQaVG?a=1&b=2"
    raw = _build(text, body).render("reader0@example.net", "<id@papers.example.org>", url)
    _check_lines(raw)
    _, got_text, got_html = _decoded(raw)
    want_text = text.replace("\r", "").replace(P, url)
    assert got_text.rstrip("\n") == want_text.rstrip("\n")
    assert got_html.rstrip("\n") == body.replace(P, html.escape(url)).rstrip("\n")


def test_headers_and_structure():
    long_subject = "Top ML Papers of the Week — déjà vu " + "and more " * 20
    t = _build("Hello\n" + P + "\n", "<p>" + "x" * 5000 + f'<a href="{P}">unsubscribe</a></p>', long_subject)
    mid = message_id("dair", "2023-02-20..2023-02-26", "reader0@example.net", "papers.example.org")
    raw = t.render("reader0@example.net", mid, "https://papers.example.org/unsubscribe/tok")
    _check_lines(raw)
    msg, text, body = _decoded(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == long_subject.strip() and msg["To"] == "reader0@example.net"
    assert msg["Message-ID"] == mid and msg["Date"] == "Wed, 01 Mar 2023 09:30:00 +0000"
    assert msg["List-Unsubscribe"] == "<https://papers.example.org/unsubscribe/tok>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert text == "Hello\nhttps://papers.example.org/unsubscribe/tok\n"
    assert 'href="https://papers.example.org/unsubscribe/tok"' in body


def test_message_ids_are_stable_per_week_and_subscriber():
    a = message_id("dair", "2023-02-20..2023-02-26", "a@example.org", "papers.example.org")
    assert a == message_id("dair", "2023-02-20..2023-02-26", "a@example.org", "papers.example.org")
    assert a != message_id("dair", "2023-02-27..2023-03-05", "a@example.org", "papers.example.org")
    assert a != message_id("dair", "2023-02-20..2023-02-26", "b@example.org", "papers.example.org")
    assert a.startswith("<") and a.endswith("@papers.example.org>") and len(a) == 35 + len("papers.example.org")
    assert id_domain("", "Papers <papers@lab.example>") == "lab.example"


def test_a_header_value_with_a_line_break_is_refused():
    t = _build("x" + P, "y" + P)
    for bad in ("a@example.org\r\nBcc: victim@example.org", "a@example.org\n"):
        try:
            t.render(bad, "<id@x>", "https://x/u")
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
