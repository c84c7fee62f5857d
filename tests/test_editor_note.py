"""Issue #16: `paperbot note WEEK "…"` (or `--file`) sets the editor's note that opens a week's email and web
edition; what a real SMTP server receives shows it, and nothing shows when there is none."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from publish_support import KEY, SECRET, add_subscribers, parse, ready_week, smtp_server, write_config

from bot.cli import cli
from bot.edition.edition import edition_from_store
from bot.store import Store


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)


def run(cfg, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={})


def _note(cfg) -> str:
    store = Store.open(cfg.db_path)
    try:
        return store.note("dair", KEY)
    finally:
        store.close()


def test_the_note_set_on_the_command_line_opens_the_email_subscribers_receive(tmp_path):
    with smtp_server() as (rec, port):
        cfg = write_config(tmp_path, port)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        add_subscribers(store, tmp_path, ["a@example.net"])
        store.close()
        out = run(cfg, "note", KEY, "Three papers on routing this week.\n\nBack to <b>normal</b> next week.")
        assert out.exit_code == 0, out.output
        assert out.output == f"dair:{KEY}: note saved (68 characters)\n"
        assert run(cfg, "note", f"dair:{KEY}").output.startswith("Three papers on routing this week.\n\nBack")
        assert run(cfg, "publish").exit_code == 0
        msg = parse(rec.messages[0][1])
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    lines = text.splitlines()
    at = lines.index("Editor's note")
    assert lines[at + 1:at + 4] == ["   Three papers on routing this week.", "", "   Back to <b>normal</b> next week."]
    assert at < lines.index("In this issue")  # at the top, before the papers
    assert "Editor's note" in html
    assert ">Three papers on routing this week.</p>" in html and "Back to &lt;b&gt;normal&lt;/b&gt; next week." in html
    again = run(cfg, "note", KEY, "Too late")
    assert again.exit_code == 0 and "went out already on email" in again.stderr


def test_a_note_from_a_file_and_its_removal(tmp_path):
    cfg = write_config(tmp_path, None)
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    store.close()
    note = tmp_path / "note.md"
    note.write_text("From a file,\r\nover two lines.\n", encoding="utf-8")
    assert run(cfg, "note", KEY, "--file", str(note)).exit_code == 0
    assert _note(cfg) == "From a file,\nover two lines."
    store = Store.open(cfg.db_path)
    assert edition_from_store(store, "dair", KEY).note == "From a file,\nover two lines."
    store.close()
    assert run(cfg, "note", KEY, "--clear").output == f"dair:{KEY}: note removed (0 characters)\n"
    assert _note(cfg) == "" and run(cfg, "note", KEY).output == f"dair:{KEY}: no note\n"


def test_bad_notes_are_one_line_errors_that_change_nothing(tmp_path):
    cfg = write_config(tmp_path, None)
    assert "no state database" in run(cfg, "note", KEY, "x").output
    store = Store.open(cfg.db_path)
    ready_week(store, cfg)
    store.close()
    assert run(cfg, "note", KEY, "Kept.").exit_code == 0
    binary = tmp_path / "note.bin"
    binary.write_bytes(b"caf\xe9")
    for args, says in [((KEY, "   "), "is empty; to remove a note, use --clear"),
                       ((KEY, "x" * 2001), "is 2001 characters; a note may have at most 2000"),
                       ((KEY, "--file", str(binary)), "note.bin: not UTF-8 text (byte 3)"),
                       ((KEY, "--file", str(tmp_path / "missing.txt")), "missing.txt: No such file"),
                       (("1999-01-01..1999-01-07", "x"), "no week '1999-01-01..1999-01-07'")]:
        out = run(cfg, "note", *args)
        assert out.exit_code == 1 and says in out.output and len(out.output.strip().splitlines()) == 1, out.output
    both = run(cfg, "note", KEY, "x", "--clear")
    assert both.exit_code == 2 and "only one of them" in both.output
    assert _note(cfg) == "Kept."
