"""Issue #27: email at the client's ceiling. The ledger marks a batch of messages `sending` in one commit before
any of its data goes out and `sent` in the next; the message goes out in SMTP's wire form, dot-stuffed once per
week exactly as smtplib would stuff each copy; the subscribers are read as needed (an unsubscribe that lands
mid-run is honoured when its batch comes). Real aiosmtpd, real SQLite files, the real pipeline."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from publish_support import KEY, SECRET, Recorder, add_subscribers, addresses, free_port, ready_week, write_config

from bot.channels.email import subscribers
from bot.channels.email.mime import build_template
from bot.channels.email.smtp import SmtpConnection, SmtpTarget
from bot.publish import ledger
from bot.publish.pipeline import publish_week
from bot.store import Store

NOW = datetime(2023, 3, 10, 12, tzinfo=UTC)
P = "https://unsubscribe.paperbot.invalid/__TOKEN__"
URLS = ["https://papers.example.org/unsubscribe/tok",
        "https://papers.example.org/u/" + "a" * 44 + "." * 40 + "/b",  # wraps onto a line that starts with '.'
        "https://papers.example.org/" + "x." * 60]
piece = st.text(alphabet=st.sampled_from(list("ab .\n=é")), max_size=200)


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def _smtplib_stuffed(message: bytes) -> bytes:
    """What smtplib's `data()` sends for a CRLF-only bytes message: its `_quote_periods`, then CRLF.CRLF."""
    q = re.sub(rb"(?m)^\.", b"..", message)
    return q + (b"" if q.endswith(b"\r\n") else b"\r\n") + b".\r\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(piece, min_size=1, max_size=4), st.lists(piece, min_size=1, max_size=3), st.sampled_from(URLS))
def test_the_wire_form_is_exactly_what_smtplib_would_send_issue_27(text_pieces, html_pieces, url):
    """#27: stuffed once per week, each copy's DATA is byte for byte smtplib's stuffing of that copy."""
    t = build_template(sender="Papers Weekly <papers@example.org>", subject="Top ML Papers", date=NOW,
                       list_id="papers.example.org", contact="", text=P.join(text_pieces),
                       html_body=P.join(html_pieces), placeholder=P)
    message = t.render("reader0@example.net", "<id@papers.example.org>", url)
    assert t.wire().render("reader0@example.net", "<id@papers.example.org>", url) == _smtplib_stuffed(message)


def test_a_message_with_dot_lines_arrives_as_rendered_issue_27():
    """#27: over a real server, the wire form's stuffing is undone to exactly the message rendered."""
    text = ".\n..\n.starts with a dot\n" + P + "\n."
    t = build_template(sender="Papers Weekly <papers@example.org>", subject="Dots", date=NOW,
                       list_id="papers.example.org", contact="", text=text, html_body="<p>.</p>\n." + P,
                       placeholder=P)
    rec, port = Recorder(), free_port()
    from aiosmtpd.controller import Controller

    ctl = Controller(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        conn = SmtpConnection(SmtpTarget.from_url(f"smtp://127.0.0.1:{port}", False), "papers@example.org")
        try:
            for url in URLS:
                conn.send("reader0@example.net", t.wire().render("reader0@example.net", "<i@x.org>", url), wire=True)
        finally:
            conn.close()
    finally:
        ctl.stop()
    assert [raw for _, raw in rec.messages] == [t.render("reader0@example.net", "<i@x.org>", u) for u in URLS]


class Watcher(Recorder):
    """At each DATA, reads the ledger as it stands: the recipient's row, and how many rows are `sending`."""

    def __init__(self, db):
        super().__init__()
        self.db = db
        self.seen: list[tuple[str, str, int]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        rcpt = envelope.rcpt_tos[0]
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            (state,) = conn.execute("SELECT state FROM deliveries WHERE unit = ?", [rcpt]).fetchone()
            (sending,) = conn.execute("SELECT count(*) FROM deliveries WHERE state = 'sending'").fetchone()
        finally:
            conn.close()
        self.seen.append((rcpt, state, sending))
        return await super().handle_DATA(server, session, envelope)


def _publish(tmp_path, n: int, *, connections: int, batch: int):
    from aiosmtpd.controller import Controller

    port = free_port()
    cfg = write_config(tmp_path, port, connections=connections, batch=batch)
    store = Store.open(cfg.db_path)
    week = ready_week(store, cfg)
    add_subscribers(store, tmp_path, addresses(n))
    rec = Watcher(cfg.db_path)
    ctl = Controller(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        (rep,) = publish_week(cfg, store, week, now=NOW)
    finally:
        ctl.stop()
    counts = ledger.counts(store, "dair", KEY, "email")
    store.close()
    return rep, rec, counts


def test_every_row_is_sending_before_its_data_and_at_most_a_batch_per_connection_issue_27(tmp_path):
    """#27: each message's row is `sending` in the database when the server gets its DATA (so a kill can only
    send again what was marked), never more than `batch` rows per connection at once, and all end `sent`."""
    rep, rec, counts = _publish(tmp_path, 60, connections=2, batch=7)
    assert rep.done and counts["sent"] == 60
    assert len(rec.seen) == 60 and {state for _, state, _ in rec.seen} == {"sending"}
    assert max(sending for _, _, sending in rec.seen) <= 2 * 7
    assert max(sending for _, _, sending in rec.seen) > 2, "the rows were marked a batch at a time"


def test_a_reader_who_left_after_planning_is_skipped_without_the_list_in_memory_issue_27(tmp_path):
    """#27: the channel's plan is a roster read from the database, not a list of everyone; a reader planned for
    the week who unsubscribes, and one removed, before the run that sends it are skipped, the rest sent."""
    from aiosmtpd.controller import Controller

    from bot.channels.email.channel import EmailChannel
    from bot.channels.email.roster import Roster

    port = free_port()
    cfg = write_config(tmp_path, port, connections=2, batch=5)
    store = Store.open(cfg.db_path)
    week = ready_week(store, cfg)
    add_subscribers(store, tmp_path, addresses(40))
    units = EmailChannel(cfg).plan(store, week)
    assert isinstance(units, Roster) and len(units) == 40
    assert ledger.plan(store, "dair", KEY, "email", units, NOW) == 40
    subscribers.unsubscribe(store, "reader33@example.net", now=NOW, origin="test")
    subscribers.remove(store, "reader7@example.net")
    rec = Recorder()
    ctl = Controller(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        (rep,) = publish_week(cfg, store, week, now=NOW)
    finally:
        ctl.stop()
    counts = ledger.counts(store, "dair", KEY, "email")
    store.close()
    assert set(rec.recipients()) == set(addresses(40)) - {"reader33@example.net", "reader7@example.net"}
    assert rep.done and counts["sent"] == 38 and counts["skipped"] == 2


class Pipelining(Recorder):
    """The test server as Postfix, Exim or a provider answer EHLO: offering PIPELINING (RFC 2920)."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


def test_with_pipelining_every_outcome_is_read_as_without_issue_27(tmp_path):
    """#27: MAIL, RCPT and DATA in one write when the server offers it, each reply read in order: a 550 to RCPT
    bounces, a 451 to DATA and a connection closed at RCPT are retried, a message taken whose answer was lost is
    sent again as a possible duplicate; everyone else gets exactly one copy."""
    from aiosmtpd.controller import Controller

    port = free_port()
    cfg = write_config(tmp_path, port, connections=2, batch=5)
    store = Store.open(cfg.db_path)
    week = ready_week(store, cfg)
    people = addresses(30)
    add_subscribers(store, tmp_path, people)
    rec = Pipelining()
    rec.refuse = {"reader3@example.net"}
    rec.defer = {"reader5@example.net": 1}
    rec.drop_at_rcpt = {"reader8@example.net"}
    rec.after_data = {"reader11@example.net": ("drop", 0.0)}
    ctl = Controller(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        with smtplib_session(port) as features:
            assert "pipelining" in features, "the test server offers PIPELINING"
        (rep,) = publish_week(cfg, store, week, now=NOW)
    finally:
        ctl.stop()
    counts = ledger.counts(store, "dair", KEY, "email")
    dupes = {d["unit"] for d in ledger.possible_duplicates(store, "dair", KEY, "email")}
    store.close()
    got = rec.recipients()
    assert set(got) == set(people) - {"reader3@example.net"}
    assert {a for a, n in got.items() if n > 1} == {"reader11@example.net"} == dupes
    assert rec.rcpt_attempts["reader8@example.net"] == 2 and rec.rcpt_attempts["reader5@example.net"] == 2
    assert rep.done and counts["sent"] == 29 and counts["bounced"] == 1


class smtplib_session:  # noqa: N801
    """EHLO with smtplib, for the features the server offers."""

    def __init__(self, port: int):
        import smtplib

        self.smtp = smtplib.SMTP("127.0.0.1", port)

    def __enter__(self) -> dict:
        self.smtp.ehlo()
        return self.smtp.esmtp_features

    def __exit__(self, *exc) -> None:
        self.smtp.quit()
