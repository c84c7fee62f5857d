"""issue #24: an encoded word in an address. `=?utf-8?q?=0D=0ABcc=3Aevil=40x.org?=@example.org` is valid atext, so
main stored it and wrote it raw into `To:`, where any relay or archiver that decodes it sees a CRLF and a `Bcc:`.
Now anything that reads as an encoded word is refused at intake (the web form: tests/test_web_abuse.py; the CLI;
CSV import, naming the row), and the header check parses every address header back and compares it with what
was written, so an address that slipped in another way (an old database) stops the message, not the reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from bot.channels import load_config
from bot.channels.email import subscribers as subs
from bot.channels.email import transactional
from bot.channels.email.addresses import InvalidAddress, clean_name, normalize_address
from bot.channels.email.headers import UnsafeHeader, check_block
from bot.channels.email.mime import build_template
from bot.channels.email.render import UNSUBSCRIBE_PLACEHOLDER
from bot.store import Store

EVIL = "=?utf-8?q?=0D=0ABcc=3Aevil=40x.org?=@example.org"
NOW = datetime(2024, 3, 11, tzinfo=UTC)


@pytest.mark.parametrize("raw", [
    EVIL,
    "=?utf-8?b?YWxpY2U=?=@example.org",
    "a=?x?q?y?=b@example.org",
    "Alice =?utf-8?q?=0D=0ABcc:_evil@x.org?= <alice@example.org>",
    "alice@example.org =?utf-8?q?x?=",
])
def test_an_address_with_an_encoded_word_is_refused_saying_why(raw):
    """issue #24."""
    with pytest.raises(InvalidAddress, match="encoded word"):
        normalize_address(raw)


def test_a_name_with_an_encoded_word_is_refused_and_plain_names_pass():
    """issue #24: a CSV `name` cell or a `--name` goes into To: as a display name."""
    with pytest.raises(InvalidAddress, match="encoded word"):
        clean_name("=?utf-8?q?=0D=0ABcc:_evil@x.org?=")
    assert clean_name("Ada = Lovelace?") == "Ada = Lovelace?"
    assert normalize_address("ok=?@example.org") == "ok=?@example.org"  # no encoded word: `=?` alone is atext


def _cli(tmp, *args):
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(tmp / "paperbot.toml"), *args], cwd=tmp,
                          capture_output=True, text=True, timeout=60, env={**os.environ})


def test_the_cli_and_csv_import_refuse_it_and_name_the_row(tmp_path):
    """issue #24: `subscribers add` fails; `subscribers import` names the line of the file and adds the rest."""
    (tmp_path / "paperbot.toml").write_text('state_dir = "state"\n', encoding="utf-8")
    run = _cli(tmp_path, "subscribers", "add", EVIL)
    assert run.returncode == 1 and "encoded word" in run.stderr
    (tmp_path / "list.csv").write_text(f"email,name\nok@example.org,Ok\n{EVIL},Evil\n"
                                       "named@example.org,=?utf-8?q?=0D=0ABcc:_x@y.org?=\n", encoding="utf-8")
    run = _cli(tmp_path, "subscribers", "import", "list.csv")
    assert run.returncode == 0, run.stderr
    assert "list.csv:3: rejected:" in run.stderr and "list.csv:4: rejected:" in run.stderr
    assert "added 1, already there 0, rejected 2" in run.stdout
    store = Store.open(tmp_path / "state" / "paperbot.db")
    try:
        assert [a for _, a in subs.active(store)] == ["ok@example.org"]
    finally:
        store.close()


def _template():
    return build_template(sender="Papers <papers@weekly.test>", subject="A week", date=NOW,
                          list_id="papers.weekly.test", contact="", text=f"hi {UNSUBSCRIBE_PLACEHOLDER}",
                          html_body=f"<p>{UNSUBSCRIBE_PLACEHOLDER}</p>", placeholder=UNSUBSCRIBE_PLACEHOLDER)


def test_a_stored_encoded_word_address_stops_the_message_not_the_header_check(tmp_path):
    """issue #24: an address stored before this check (the rendering takes it as it is) is refused when its
    To: would read back as something else; a plain address reads back as itself."""
    t = _template()
    assert b"To: reader@example.org\r\n" in t.render("reader@example.org", "<m@x>", "https://x.test/u/1")
    with pytest.raises(UnsafeHeader, match="reads back"):
        t.render(EVIL, "<m@x>", "https://x.test/u/1")
    (tmp_path / "paperbot.toml").write_text("", encoding="utf-8")
    cfg = load_config(tmp_path / "paperbot.toml")
    with pytest.raises(UnsafeHeader):
        transactional.confirmation(cfg, EVIL, "https://x.test/confirm/c", NOW)
    assert transactional.confirmation(cfg, "reader@example.org", "https://x.test/confirm/c", NOW).to == \
        "reader@example.org"


def test_the_block_check_parses_every_address_header_back():
    """issue #24: main's check compared header names only: a From: or To: naming another mailbox than the one
    written, or one naming two, passed."""
    expected = ["From", "To", "Subject"]
    good = b"From: <papers@weekly.test>\r\nTo: reader@example.org\r\nSubject: x\r\n"
    check_block(good, expected, addresses={"From": "papers@weekly.test", "To": "reader@example.org"})
    two = b"From: <papers@weekly.test>\r\nTo: reader@example.org, evil@x.org\r\nSubject: x\r\n"
    with pytest.raises(UnsafeHeader, match="reads back"):
        check_block(two, expected, addresses={"From": "papers@weekly.test", "To": "reader@example.org"})
    decoded = f"From: <papers@weekly.test>\r\nTo: {EVIL}\r\nSubject: x\r\n".encode()
    with pytest.raises(UnsafeHeader, match="reads back"):
        check_block(decoded, expected, addresses={"From": "papers@weekly.test", "To": EVIL})
    with pytest.raises(UnsafeHeader, match="did not write"):
        check_block(good, expected, addresses={"From": "papers@weekly.test"})


def test_a_week_goes_to_everyone_else_when_one_stored_address_holds_an_encoded_word(tmp_path, monkeypatch):
    """issue #24: an address an earlier version stored raw is refused for good, that reader alone: the real SMTP
    server gets nothing for it and the week's email for everyone else (main wrote it raw into To:)."""
    from publish_support import SECRET, ready_week, smtp_server, write_config

    from bot.publish import ledger
    from bot.publish.pipeline import publish_week

    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        try:
            subs.add(store, "reader@example.net", origin="test", now=NOW)
            store.db.execute("INSERT INTO subscribers (address, state, created_at, updated_at, origin) "
                             "VALUES (?, 'active', ?, ?, 'old version')", [EVIL, NOW.isoformat(), NOW.isoformat()])
            store.db.conn.commit()
            week = ready_week(store, cfg)
            reports = publish_week(cfg, store, week, channels=["email"], now=datetime(2023, 3, 10, tzinfo=UTC))
            assert reports[0].done
            assert dict(rec.recipients()) == {"reader@example.net": 1}
            states = {r["unit"]: r["state"] for r in ledger.rows_in(store, week.source, week.key, "email",
                                                                     ("bounced", "sent"))}
            assert states == {"reader@example.net": "sent", EVIL: "bounced"}
        finally:
            store.close()
