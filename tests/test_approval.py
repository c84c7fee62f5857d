"""Issue #14: the editor's approval step. With `[publish] approve = true` a ready week is sent to nobody until
`paperbot approve WEEK`; the editor's test copy arrives; `paperbot skip WEEK` leaves it unsent and says so in
`paperbot history`. Real parts: an aiosmtpd server, the SQLite file, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime

from click.testing import CliRunner
from newsletter_fixtures import sample_edition
from publish_support import KEY, add_subscribers, parse, ready_week, smtp_server
from test_render_email import _reference_mjml

from bot.channels import load_config
from bot.channels.email import render
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
[bluesky]
enabled = false
[mastodon]
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


_LINK = re.compile(r"""(?:href=["']|\b)(https?://[^\s"'<>]+|mailto:[^\s"'<>]+)""")


def test_the_approval_copy_is_unmistakable_issue_21(tmp_path):
    """#21: the editor's copy looked like the real issue: the same subject, the subscriber footer, a "View in
    browser" link answering 404 (the edition is not on the web before it goes out) and no word of `paperbot
    approve`. As the SMTP server receives it now: "[Approval needed]" before the subject, a banner at the top of
    both parts naming the exact approve and skip commands, no subscriber footer, no unsubscribe link or
    List-Unsubscribe/List-Id header, no link to the unpublished web edition. The subscribers' copy, after
    `paperbot approve`, keeps all of those."""
    with smtp_server() as (server, port):
        cfg = _config(tmp_path, port)
        store = Store.open(cfg.db_path)
        try:
            ready_week(store, cfg)
            add_subscribers(store, tmp_path, ["a@example.net"])
            publish_ready(cfg, store, datetime.now(UTC))
        finally:
            store.close()
        run = _cli(cfg, "approve", KEY)
        assert run.exit_code == 0, run.output
        (to_editor, copy), (to_reader, issue) = server.messages
    assert (to_editor, to_reader) == (EDITOR, "a@example.net")
    copy, issue = parse(copy), parse(issue)
    assert str(copy["Subject"]) == "[Approval needed] " + str(issue["Subject"])
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        assert copy[header] is None and issue[header] is not None, header
    approve, skip = f"paperbot approve dair:{KEY}", f"paperbot skip dair:{KEY}"
    web_edition = f"{cfg.web.base_url}/editions/"
    for kind in ("plain", "html"):
        body = copy.get_body(preferencelist=(kind,)).get_content()
        text = re.sub(r"<[^>]+>", " ", body) if kind == "html" else body
        banner = text.index("Approval needed" if kind == "html" else "APPROVAL NEEDED")
        first = text.index("Sparse Lanterns") if kind == "plain" else body.index("<h1")  # the issue's own opening
        assert banner < text.index(approve) < text.index(skip) and body.index(skip) < first, kind  # at the top
        assert "You receive this email because you subscribed" not in text, kind
        assert "Unsubscribe" not in text and "View this email in your browser" not in text, kind
        links = _LINK.findall(body)
        assert links and not [u for u in links if u.startswith(web_edition) or "unsubscribe" in u.lower()], links
        real = issue.get_body(preferencelist=(kind,)).get_content()
        assert "You receive this email because you subscribed" in real and "Unsubscribe" in real, kind
        assert any(u.startswith(web_edition) for u in _LINK.findall(real)), kind  # the real issue links it


def test_the_approval_banner_passes_the_reference_mjml_validator_strict_issue_21(tmp_path):
    """#21: the approval copy's layout (its banner, its footer) is valid MJML, as the subscribers' is."""
    mjml_cli = _reference_mjml()
    cfg = _config(tmp_path, 9)
    commands = {"name": f"dair:{KEY}", "approve": f"paperbot approve dair:{KEY}", "skip": f"paperbot skip dair:{KEY}"}
    ctx = render._context(sample_edition(), cfg, web=False, approval=commands)
    source = tmp_path / "approval.mjml"
    source.write_text(render._render(render.HTML_TEMPLATE, ctx, render.templates_path(None), autoescape=True),
                      encoding="utf-8")
    strict = subprocess.run([mjml_cli, "-r", str(source), "-s", "-c.validationLevel=strict"],
                            capture_output=True, text=True, timeout=120)
    assert strict.returncode == 0, strict.stderr
    assert "paperbot approve dair:" in source.read_text(encoding="utf-8")
