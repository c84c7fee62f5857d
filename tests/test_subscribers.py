"""Subscribers: address validation, states, a 100,000-row CSV import, export round trip and the CLI."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from newsletter_fixtures import write_config

from bot.channels.email import subscribers as subs
from bot.cli import cli
from bot.store import Store

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=UTC)


@pytest.fixture
def store():
    s = Store.open(None)
    yield s
    s.close()


@pytest.mark.parametrize("raw, expected", [
    ("reader@example.org", "reader@example.org"),
    ("  Reader.Name+news@Example.ORG \n", "Reader.Name+news@example.org"),  # local part keeps its case
    ("Jane Doe <jane@Mail.Example.com>", "jane@mail.example.com"),
    ('"Doe, Jane" <jane@example.com>', "jane@example.com"),
    ("o'hara&co@example.co.uk", "o'hara&co@example.co.uk"),
    ("user@bücher.example", "user@xn--bcher-kva.example"),
    ("user@example.org.", "user@example.org"),
])
def test_valid_addresses_are_normalised(raw, expected):
    assert subs.normalize_address(raw) == expected


@pytest.mark.parametrize("raw, why", [
    ("", "empty"),
    ("   ", "empty"),
    ("no-at-sign.example.org", "no @"),
    ("two@at@example.org", "more than one @"),
    ("a@b.com, c@d.com", "more than one @"),
    ("space in@example.org", "spaces"),
    ("x@exa mple.org", "not a valid name"),
    ("user@localhost", "needs a dot"),
    ("@example.org", "nothing before"),
    ("user@-bad-.example.org", "not a valid name"),
    ("user@example.c", "not a valid name"),
    ("two..dots@example.org", "two dots"),
    ("tab\there@example.org", "control characters"),
    ("zero\u200bwidth@example.org", "control characters"),
    ("x" * 65 + "@example.org", "longer than 64"),
    ("a@" + "b" * 60 + "." + ".".join(["c" * 60] * 4) + ".org", "longer than 254"),
    ("Name <broken@>", "cannot read"),
    ("Name <a@b.org> <c@d.org>", "more than one @"),
])
def test_invalid_addresses_say_why(raw, why):
    with pytest.raises(subs.InvalidAddress, match=why):
        subs.normalize_address(raw)


def test_states_add_unsubscribe_bounce_remove(store):
    a = subs.add(store, "one@example.org", origin="cli", now=NOW)
    b = subs.add(store, "Two@Example.org", origin="cli", now=NOW)
    assert subs.add(store, "one@EXAMPLE.org", origin="cli", now=NOW) == a  # same address, same row
    assert subs.active(store) == [(a, "one@example.org"), (b, "Two@example.org")]
    assert subs.unsubscribe(store, "one@example.org", now=NOW, origin="web") is True
    assert subs.unsubscribe(store, "one@example.org", now=NOW, origin="web") is False  # nothing changed
    assert subs.unsubscribe(store, "nobody@example.org", now=NOW, origin="web") is False
    assert subs.unsubscribe(store, "not an address", now=NOW, origin="web") is False
    assert subs.mark_bounced(store, "Two@example.org", now=NOW, reason="550 no such user") is True
    assert subs.active(store) == []
    assert (subs.count(store), subs.count(store, "unsubscribed"), subs.count(store, "bounced")) == (2, 1, 1)
    row = subs.rows(store, "bounced")[0]
    assert (row["address"], row["reason"], row["origin"]) == ("Two@example.org", "550 no such user", "cli")
    # the operator's explicit add brings an unsubscribed address back
    assert subs.add(store, "one@example.org", origin="cli", now=NOW) == a
    assert subs.active(store) == [(a, "one@example.org")]
    assert subs.remove(store, "one@example.org") is True
    assert subs.remove(store, "one@example.org") is False
    assert subs.count(store) == 1


def _write_big_csv(path, n):
    """n data rows: every 997th malformed, every 1000th a repeat. Returns (bad line numbers, unique count)."""
    bad, seen = [], set()
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("Name,Email,Note\n")
        for i in range(n):
            if i % 997 == 996:
                f.write(f"Bad {i},bad{i}.example.org,x\n")
                bad.append(i + 2)  # the header is line 1
                continue
            address = f"reader{i - 500 if i % 1000 == 999 else i}@Example.org"
            f.write(f"Reader {i},{address},\"a, quoted note\"\n")
            seen.add(address)
    return bad, len(seen)


def test_import_100k_rows_reports_rejected_line_numbers(store, tmp_path):
    path = tmp_path / "list.csv"
    n = 100_000
    bad, unique = _write_big_csv(path, n)
    repeats = n - len(bad) - unique
    assert repeats > 90 and len(bad) == 100  # the file is what the test means it to be
    subs.add(store, "reader0@example.org", origin="cli", now=NOW)
    subs.unsubscribe(store, "reader1@example.org", now=NOW, origin="web")  # unknown: stays unknown
    subs.add(store, "reader2@example.org", origin="cli", now=NOW)
    subs.unsubscribe(store, "reader2@example.org", now=NOW, origin="web")
    report = subs.import_csv(store, path, now=NOW)
    assert [line for line, _ in report.rejected] == bad
    assert all("no @" in why for _, why in report.rejected)
    assert report.added == unique - 2  # reader0 and reader2 were there already
    assert report.already == repeats + 2
    assert subs.count(store) == unique
    assert subs.count(store, "unsubscribed") == 1  # the import did not bring reader2 back
    one = "SELECT state, origin FROM subscribers WHERE address = ?"
    assert store.db.execute(one, ["reader2@example.org"]).fetchone() == ("unsubscribed", "cli")
    assert store.db.execute(one, ["reader5@example.org"]).fetchone() == ("active", "import:list.csv")
    again = subs.import_csv(store, path, now=NOW)
    assert (again.added, again.already, len(again.rejected)) == (0, n - len(bad), len(bad))


def test_import_reads_state_column_bom_and_rejects_bad_rows(store, tmp_path):
    path = tmp_path / "with-state.csv"
    path.write_text("\ufeffEMAIL,state\nfirst@example.org,active\n\nsecond@example.org,unsubscribed\n"
                    "third@example.org,maybe\n,active\n\"multi\nline\",active\nfourth@example.org\n",
                    encoding="utf-8")
    report = subs.import_csv(store, path, now=NOW)
    assert report.added == 3
    assert [line for line, _ in report.rejected] == [5, 6, 8]  # line of the record's last physical line
    assert "unknown state 'maybe'" in report.rejected[0][1]
    assert [a for _, a in subs.active(store)] == ["first@example.org", "fourth@example.org"]


def test_import_without_email_column_is_refused(store, tmp_path):
    path = tmp_path / "nope.csv"
    path.write_text("name,address\nx,y@example.org\n", encoding="utf-8")
    with pytest.raises(subs.CsvFormatError, match="no 'email' column"):
        subs.import_csv(store, path, now=NOW)
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(subs.CsvFormatError, match="empty"):
        subs.import_csv(store, tmp_path / "empty.csv", now=NOW)


def test_export_round_trip(store, tmp_path):
    for i in range(50):
        subs.add(store, f"r{i}@example.org", origin="cli", now=NOW)
    subs.unsubscribe(store, "r3@example.org", now=NOW, origin="web")
    subs.mark_bounced(store, "r7@example.org", now=NOW, reason="gone")
    buf = io.StringIO()
    assert subs.export_csv(store, buf) == 50
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == ["email", "name", "state"] and rows[4] == ["r3@example.org", "", "unsubscribed"]
    out = tmp_path / "export.csv"
    subs.export_csv(store, out)
    assert out.read_text(encoding="utf-8") == buf.getvalue()
    fresh = Store.open(None)
    report = subs.import_csv(fresh, out, now=NOW)
    assert (report.added, report.already, report.rejected) == (50, 0, [])
    dump = "SELECT address, state FROM subscribers ORDER BY id"
    assert fresh.db.execute(dump).fetchall() == store.db.execute(dump).fetchall()
    fresh.close()


def test_cli_subscribers_commands(tmp_path):
    write_config(tmp_path)
    cfg = ["--config", str(tmp_path / "paperbot.toml")]
    run = CliRunner().invoke
    r = run(cli, [*cfg, "subscribers", "add", "Ann <ann@Example.org>"], obj={})
    assert r.exit_code == 0 and "Ann <ann@example.org> active" in r.output
    r = run(cli, [*cfg, "subscribers", "add", "not-an-address"], obj={})
    assert r.exit_code == 1 and "not added" in r.output and "no @" in r.output
    (tmp_path / "in.csv").write_text("email\nbob@example.org\nbroken\nann@example.org\n", encoding="utf-8")
    r = run(cli, [*cfg, "subscribers", "import", str(tmp_path / "in.csv")], obj={})
    assert r.exit_code == 0, r.output
    assert "in.csv:3: rejected: 'broken': no @" in r.output
    assert "added 1, already there 1, rejected 1" in r.output
    r = run(cli, [*cfg, "subscribers", "list", "--json"], obj={})
    listed = json.loads(r.output)
    assert [(x["address"], x["state"], x["origin"]) for x in listed] == [
        ("ann@example.org", "active", "cli"), ("bob@example.org", "active", "import:in.csv")]
    r = run(cli, [*cfg, "subscribers", "remove", "bob@example.org"], obj={})
    assert r.exit_code == 0
    r = run(cli, [*cfg, "subscribers", "count", "--json"], obj={})
    assert json.loads(r.output) == {"pending": 0, "active": 1, "unsubscribed": 0, "bounced": 0, "total": 1}
    r = run(cli, [*cfg, "subscribers", "export", "--out", str(tmp_path / "out.csv")], obj={})
    assert r.exit_code == 0
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "email,name,state\nann@example.org,Ann,active\n"
    r = run(cli, [*cfg, "subscribers", "list", "--state", "bounced"], obj={})
    assert "no subscribers in state bounced" in r.output


def test_names_are_kept_from_add_and_from_a_name_column(tmp_path):
    """issue #14: `subscribers add "Alice Reader <alice@example.org>"` dropped the name, and the CSV import
    ignored a `name` column. Both are kept, listed and exported (and imported back)."""
    write_config(tmp_path)
    cfg = ["--config", str(tmp_path / "paperbot.toml")]
    run = CliRunner().invoke
    r = run(cli, [*cfg, "subscribers", "add", "Alice Reader <alice@example.org>"], obj={})
    assert r.exit_code == 0 and r.output.splitlines()[-1].startswith(  # #25: and which state folder
        "subscriber 1: Alice Reader <alice@example.org> active (state folder ")
    (tmp_path / "in.csv").write_text('email,name\nbob@example.org,Bob Builder\n"Carol <carol@example.org>",\n'
                                     "dan@example.org,\n", encoding="utf-8")
    r = run(cli, [*cfg, "subscribers", "import", str(tmp_path / "in.csv")], obj={})
    assert "added 3, already there 0, rejected 0" in r.output, r.output
    listed = json.loads(run(cli, [*cfg, "subscribers", "list", "--json"], obj={}).output)
    assert [(x["address"], x["name"]) for x in listed] == [
        ("alice@example.org", "Alice Reader"), ("bob@example.org", "Bob Builder"), ("carol@example.org", "Carol"),
        ("dan@example.org", None)]
    text = run(cli, [*cfg, "subscribers", "list"], obj={}).output
    assert "Bob Builder <bob@example.org>  import:in.csv" in text
    r = run(cli, [*cfg, "subscribers", "add", "Alice R. <alice@example.org>"], obj={})
    assert r.output.startswith("subscriber 1: Alice R. <alice@example.org> active (already active) (state folder ")
    out = tmp_path / "out.csv"
    run(cli, [*cfg, "subscribers", "export", "--out", str(out)], obj={})
    assert out.read_text(encoding="utf-8").splitlines()[:3] == [
        "email,name,state", "alice@example.org,Alice R.,active", "bob@example.org,Bob Builder,active"]
    fresh = Store.open(None)
    subs.import_csv(fresh, out, now=NOW)
    assert fresh.db.execute("SELECT address, name FROM subscribers ORDER BY id").fetchall()[:2] == [
        ("alice@example.org", "Alice R."), ("bob@example.org", "Bob Builder")]
    fresh.close()


def test_queued_unsubscribes_wait_out_a_lock_and_skip_a_torn_line(tmp_path, caplog):
    """issue #8: an unsubscribe the web app could not write (the database locked) is queued in a journal and
    applied later: nothing is lost while the lock lasts, and a line cut short by a crash is skipped."""
    store = Store.open(tmp_path / "p.db")
    journal = tmp_path / "state" / "unsubscribe-queue.jsonl"
    for name in ("a", "b", "c"):
        subs.add(store, f"{name}@example.org", origin="test", now=NOW)
    subs.queue_unsubscribe(journal, "a@example.org", now=NOW, origin="web:one-click")
    subs.queue_unsubscribe(journal, "b@example.org", now=NOW, origin="web")
    with journal.open("ab") as f:
        f.write(b'not json\n{"address": "c@example.org", "at": "2024-')  # a crash mid-append
    holder = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    store.db.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError):
        subs.apply_queued(store, journal)
    holder.execute("ROLLBACK")
    assert journal.read_bytes().count(b"\n") == 3  # still all there
    assert subs.apply_queued(store, journal) == 2
    assert journal.read_bytes() == b"" and subs.apply_queued(store, journal) == 0
    got = {r["address"]: (r["state"], r["reason"], r["updated_at"]) for r in subs.rows(store)}
    assert got["a@example.org"] == ("unsubscribed", "unsubscribed via web:one-click", NOW.isoformat())
    assert got["b@example.org"][:2] == ("unsubscribed", "unsubscribed via web")
    assert got["c@example.org"][0] == "active"
    assert "unreadable queued unsubscribe" in caplog.text
    store.close()
