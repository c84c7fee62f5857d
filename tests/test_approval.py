"""Issue #14: the editor's approval step. With `[publish] approve = true` a ready week is sent to nobody until
`paperbot approve WEEK`; the editor's test copy arrives; `paperbot skip WEEK` leaves it unsent and says so in
`paperbot history`. Real parts: an aiosmtpd server, the SQLite file, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner
from publish_support import KEY, add_subscribers, parse, ready_week, smtp_server

from bot.channels import load_config
from bot.cli import cli
from bot.publish.pipeline import publish_ready
from bot.store import Store

EDITOR = "editor@example.net"


def _config(tmp_path, port: int):
    path = tmp_path / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[publish]
approve = true
editor = "Eddie <{EDITOR}>"
[email]
smtp_url = "smtp://127.0.0.1:{port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
list_id = "papers.weekly.test"
[web]
base_url = "https://papers.weekly.test"
[x]
enabled = false
[discord]
enabled = false
""", encoding="utf-8")
    return load_config(path)


def _cli(cfg, *args):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={})


def test_a_week_awaiting_approval_reaches_only_the_editor_until_approved(tmp_path):
    with smtp_server() as (server, port):
        cfg = _config(tmp_path, port)
        store = Store.open(cfg.db_path)
        try:
            ready_week(store, cfg)
            add_subscribers(store, tmp_path, ["a@example.net", "b@example.net"])
            publish_ready(cfg, store, datetime.now(UTC))
            assert store.week("dair", KEY).state == "awaiting-approval"
            assert [r for r, _ in server.messages] == [EDITOR], "only the editor's test copy"
            assert parse(server.messages[0][1])["Subject"]
            publish_ready(cfg, store, datetime.now(UTC))  # another round: still held, no second copy
            assert len(server.messages) == 1
        finally:
            store.close()
        web = _cli(cfg, "publish")
        assert "no ready weeks" in web.output
        held = _cli(cfg, "publish", KEY)
        assert held.exit_code != 0 and "paperbot approve" in held.output

        run = _cli(cfg, "approve", KEY)
        assert run.exit_code == 0, run.output
        assert "approved" in run.output and "email: published" in run.output
        got = sorted(r for r, _ in server.messages[1:])
        assert got == ["a@example.net", "b@example.net"]
        assert _cli(cfg, "approve", KEY).exit_code != 0  # published: nothing to approve
        store = Store.open(cfg.db_path)
        try:
            assert store.week("dair", KEY).state == "published"
            publish_ready(cfg, store, datetime.now(UTC))  # approved once: never held again
            assert len(server.messages) == 3
        finally:
            store.close()


def test_a_skipped_week_is_never_sent_and_history_says_why(tmp_path):
    with smtp_server() as (server, port):
        cfg = _config(tmp_path, port)
        store = Store.open(cfg.db_path)
        try:
            ready_week(store, cfg)
            add_subscribers(store, tmp_path, ["a@example.net"])
            publish_ready(cfg, store, datetime.now(UTC))
        finally:
            store.close()
        run = _cli(cfg, "skip", KEY)
        assert run.exit_code == 0, run.output
        assert "skipped by the editor" in run.output
        store = Store.open(cfg.db_path)
        try:
            assert store.week("dair", KEY).state == "skipped"
            publish_ready(cfg, store, datetime.now(UTC))
        finally:
            store.close()
        assert [r for r, _ in server.messages] == [EDITOR]  # the test copy only, ever
        (entry,) = json.loads(_cli(cfg, "history", KEY, "--json").output)
        assert entry["state"] == "skipped"
        assert "skipped by the editor" in entry["channels"]["email"]["note"]
        assert "skipped by the editor" in _cli(cfg, "history").output
