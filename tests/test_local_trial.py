"""issue #25, finding 3: a local try-out on one laptop.

With `[email] smtp_url` on this machine (localhost, 127.0.0.1, ::1) and `[web] base_url` too, a `localhost`
base_url is accepted by `check`, `publish` and `run`, and every log line about sending, `status` and the
email's footer say it is a local trial. A real send (a mail server elsewhere, or a public base_url) keeps every
check. Real parts: the CLI, an aiosmtpd server on 127.0.0.1, the daemon as a subprocess.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from publish_support import SECRET, add_subscribers, addresses, free_port, parse, ready_week, smtp_server

from bot.channels import load_config
from bot.cli import cli
from bot.ops.config_checks import live_send_problems
from bot.store import Store


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("PAPERBOT_NOW", raising=False)


def _config(tmp_path, smtp_host: str, port: int, base_url: str, sender: str = "papers@example.org",
            extra: str = ""):
    """`init`'s example addresses kept, as a newcomer on a laptop would."""
    path = tmp_path / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://{smtp_host}:{port}"
starttls = false
from = "ML Papers of the Week <{sender}>"
list_id = "papers.example.org"
[web]
base_url = "{base_url}"
listen = "127.0.0.1:{free_port()}"
[x]
enabled = false
[discord]
enabled = false
[bluesky]
enabled = false
[mastodon]
enabled = false
{extra}""", encoding="utf-8")
    return load_config(path)


def local_trial(cfg) -> bool:
    from bot.channels.email.settings import local_trial as is_local  # new in #25: imported here, so each test
    return is_local(cfg)  # fails on main by what it observes


def run_cli(cfg, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


@pytest.mark.parametrize("host, base", [("127.0.0.1", "http://127.0.0.1:8080"), ("localhost", "http://localhost:8080"),
                                        ("[::1]", "http://[::1]:8080")])
def test_a_local_mail_server_and_a_localhost_base_url_make_a_local_trial_25(tmp_path, host, base):
    """#25: `run` refused a localhost base_url with smtp_url set, so nothing could be tried on one machine."""
    cfg = _config(tmp_path, host, 2525, base)
    assert local_trial(cfg)
    assert live_send_problems(cfg) == []  # example addresses reach nobody from here
    result = run_cli(cfg, "check", "--offline")
    assert result.exit_code == 0, result.output
    assert "local trial" in result.output and "all checks passed" in result.output
    assert "fine for a local trial" in result.output  # the example `from` is a note, not hidden


@pytest.mark.parametrize("host, base, key", [
    ("mail.weekly.test", "http://localhost:8080", "web.base_url"),  # a real mail server: links must be public
    ("127.0.0.1", "https://papers.weekly.test", "email.from"),  # a public base_url: a real send (a local relay)
])
def test_a_real_send_keeps_every_check_25(tmp_path, host, base, key):
    cfg = _config(tmp_path, host, 2525, base)
    assert not local_trial(cfg)
    assert any(f": {key}: " in p for p in live_send_problems(cfg))
    result = run_cli(cfg, "check", "--offline")
    assert result.exit_code == 1 and key in result.output and "local trial" not in result.output


def test_a_local_trial_sends_to_the_local_server_and_says_so_everywhere_25(tmp_path, caplog):
    """The emails arrive at the server on this machine with a footer saying so; each log line about sending
    and `status` say it is a local trial."""
    with smtp_server() as (rec, port):
        cfg = _config(tmp_path, "127.0.0.1", port, "http://127.0.0.1:8080")
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(2))
        store.close()
        with caplog.at_level(logging.INFO):
            result = run_cli(cfg, "publish")
        assert result.exit_code == 0, result.output
        assert rec.count() == 2
    assert "local trial: email dair:" in result.output
    sending = [r.getMessage() for r in caplog.records if r.name.startswith(("bot.publish", "bot.channels"))]
    assert sending and all(m.startswith("local trial: ") for m in sending), sending
    msg = parse(rec.messages[0][1])
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Local trial: paperbot sent this to the mail server on this machine" in text
    assert "Local trial: paperbot sent this to the mail server on this machine" in html
    assert "http://127.0.0.1:8080/" in text  # the links work on this machine
    status = run_cli(cfg, "status")
    assert "email: local trial" in status.output, status.output
    assert run_cli(cfg, "status", "--json").output.count('"mode": "local trial"') == 1


def test_a_real_send_has_no_local_trial_footer_or_marks_25(tmp_path, caplog):
    with smtp_server() as (rec, port):
        cfg = _config(tmp_path, "127.0.0.1", port, "https://papers.weekly.test", sender="papers@weekly.test",
                      extra="")
        text = cfg.path.read_text().replace('list_id = "papers.example.org"', 'list_id = "papers.weekly.test"')
        cfg.path.write_text(text)
        cfg = load_config(cfg.path)
        store = Store.open(cfg.db_path)
        ready_week(store, cfg)
        add_subscribers(store, tmp_path, addresses(1))
        store.close()
        with caplog.at_level(logging.INFO):
            result = run_cli(cfg, "publish")
        assert result.exit_code == 0, result.output
        assert rec.count() == 1
    assert "local trial" not in result.output
    assert not any("local trial" in r.getMessage() for r in caplog.records)
    assert "Local trial" not in parse(rec.messages[0][1]).get_body(("plain",)).get_content()
    assert "email: live" in run_cli(cfg, "status").output


def test_run_starts_in_a_local_trial_and_says_so_25(tmp_path):
    """`paperbot run` with a localhost base_url and a local mail server starts (main refused it) and logs that
    it is a local trial."""
    cfg = _config(tmp_path, "127.0.0.1", free_port(), "http://localhost:8080",
                  extra='[[sources]]\nname = "lab"\nurl = "http://127.0.0.1:9/digest.md"\nevery = "1h"\n')
    log = tmp_path / "run.log"
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "run"], cwd=tmp_path,
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "paperbot running" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    out = log.read_text()
    assert proc.returncode == 0, out
    assert re.search(r"local trial: mail goes to the server on this machine \(smtp://127\.0\.0\.1:\d+\)", out), out
    assert re.search(r"bot\.daemon: local trial: paperbot running", out), out
