"""issue #14, point 7: log lines readable by default, JSON lines with `--log-format json`, and never a secret.

The secrets test runs a whole poll-and-publish as a real daemon process (`paperbot run`: it polls a source whose
URL carries a token, publishes the week over a real aiosmtpd server that demands the SMTP password, and sends
the alert about a failing source to that server and to a local stand-in for the Discord webhook) with every
secret environment variable set (X and Mastodon posting to local servers that speak their APIs), at the
most verbose level, and then searches the logs, every file of the state
folder (the database with its WAL, the outbox, the stored editions), the mail received and the webhook's posts
for each secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from mastodon_server import MastodonServer
from publish_support import SECRET, free_port, smtp_server
from sources_support import DocServer, fixture
from webhook_support import Webhook
from x_server import XServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SOURCE_TOKEN = "src-token-7f3a9c"
SECRETS = {
    "PAPERBOT_SMTP_PASSWORD": "s3cret-pw",  # what tests/publish_support.py's server accepts
    "PAPERBOT_SECRET_KEY": SECRET,
    "PAPERBOT_X_CONSUMER_KEY": "x-consumer-key-4b1d",
    "PAPERBOT_X_CONSUMER_SECRET": "x-consumer-secret-9e2f",
    "PAPERBOT_X_ACCESS_TOKEN": "x-access-token-77aa",
    "PAPERBOT_X_ACCESS_TOKEN_SECRET": "x-access-secret-c0de",
    "PAPERBOT_DISCORD_BOT_TOKEN": "discord-bot-token-5eed",
    "PAPERBOT_DISCORD_WEBHOOK_URL": "http://127.0.0.1:9/api/webhooks/42/discord-channel-secret",
    "PAPERBOT_MASTODON_TOKEN": "mastodon-token-a11ce",  # issue #31
}
HOOK_PATH = "/api/webhooks/77/alerts-hook-secret"


def _run(cfg_path: Path, env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg_path), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _config(tmp_path: Path, smtp_port: int, url: str, missing: str, x_base: str, mastodon_base: str) -> Path:
    path = tmp_path / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[email]
smtp_url = "smtp://news@127.0.0.1:{smtp_port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
list_id = "papers.weekly.test"
[arxiv]
enabled = false
[web]
base_url = "https://papers.weekly.test"
listen = "127.0.0.1:{free_port()}"
[x]
api_base = "{x_base}"
delay = "0s"
[mastodon]
instance = "{mastodon_base}"
delay = "0s"
[alerts]
email = "ops@weekly.test"
failures = 1
quiet = "3650d"
[[sources]]
name = "lab"
url = "{url}"
timezone = "UTC"
every = "1h"
[[sources]]
name = "gone"
url = "{missing}"
every = "1h"
""", encoding="utf-8")
    return path


def test_a_whole_poll_and_publish_keeps_every_secret_out_of_logs_database_and_outbox(tmp_path):
    x_creds = [SECRETS[f"PAPERBOT_X_{k}"] for k in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN",
                                                     "ACCESS_TOKEN_SECRET")]
    with DocServer() as server, smtp_server(auth=True) as (rec, port), Webhook() as hook, \
            XServer(*x_creds) as x, MastodonServer(SECRETS["PAPERBOT_MASTODON_TOKEN"]) as m:
        server.put(f"/digest.md?token={SOURCE_TOKEN}", fixture("digest_v1.md"))
        cfg = _config(tmp_path, port, server.url(f"/digest.md?token={SOURCE_TOKEN}"),
                      server.url(f"/gone.md?token={SOURCE_TOKEN}"), x.api_base, m.base_url)
        env = {**os.environ, **SECRETS, "PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL": hook.url(HOOK_PATH)}
        env.pop("PAPERBOT_CONFIG", None)
        added = _run(cfg, env, "-vv", "--log-format", "json", "subscribers", "add", "Reader <reader@example.net>")
        assert added.returncode == 0, added.stderr
        # The daemon polls both sources at start: `lab`'s week (over already) is released and mailed to the
        # subscriber over SMTP with the password; `gone` fails, and its alert goes by email and to the webhook.
        log = tmp_path / "daemon.log"
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg), "-vv", "--log-format", "json",
                                 "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        try:
            deadline = time.monotonic() + 120
            while (rec.count() < 2 or not hook.posts or len(x.posts) < 4 or len(m.statuses) < 4) \
                    and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        daemon_log = log.read_text()
        assert rec.count() == 2 and len(hook.posts) == 1, daemon_log
        assert len(x.posts) == 4 and len(m.statuses) == 4, daemon_log  # the head and a post per paper, each
        assert set(rec.logins) == {(b"news", b"s3cret-pw")}
        assert sorted(r for r, _ in rec.messages) == ["ops@weekly.test", "reader@example.net"]
        assert "alert: source gone: 1 poll in a row failed" in daemon_log
        assert '"level": "DEBUG"' in daemon_log  # the most verbose level was on
        outputs = [added.stdout + added.stderr, daemon_log]
        received = [data.decode("utf-8", "replace") for _, data in rec.messages] + \
                   [json.dumps(body) for _, body in hook.posts] + \
                   [p.text for p in x.posts.values()] + [st.text for st in m.statuses.values()]

    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "paperbot.db" for p in files) and any(p.suffix == ".html" for p in files)
    stored = [p.read_bytes().decode("utf-8", "replace") for p in files]
    secrets = [*SECRETS.values(), SOURCE_TOKEN, HOOK_PATH, "alerts-hook-secret"]
    for name, texts in (("logs and output", outputs), ("state folder", stored), ("what was sent", received)):
        for secret in secrets:
            assert not any(secret in t for t in texts), f"{secret!r} found in the {name}"
    assert not (tmp_path / "state" / "secret.key").exists()  # the key came from the environment only


def test_json_log_lines_are_one_object_each_and_text_is_the_default(tmp_path):
    with DocServer() as server:
        path = tmp_path / "paperbot.toml"
        path.write_text(f'state_dir = "state"\n[[sources]]\nname = "gone"\nurl = "{server.url("/x.md")}"\n',
                        encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PAPERBOT_CONFIG"}
        as_json = _run(path, env, "-v", "--log-format", "json", "poll")
        text = _run(path, env, "-v", "poll")
    lines = as_json.stderr.splitlines()
    assert lines and as_json.returncode == 1
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
    failed = [e for e in entries if e["logger"] == "bot.sources.poll" and e["level"] == "ERROR"]
    assert failed and "gone: poll failed (1 in a row): GET http://127.0.0.1:" in failed[0]["message"]
    assert failed[0]["time"].endswith("+00:00")
    readable = [line for line in text.stderr.splitlines() if " ERROR bot.sources.poll: gone: poll failed" in line]
    assert readable and not readable[0].startswith("{")


def test_a_secret_in_a_log_message_is_masked_whatever_logs_it(tmp_path):
    """The net under the rule: a library quoting a secret (a webhook URL in an exception, say) in a message
    still cannot write it out; in either format."""
    code = ("import logging, os; from bot.ops import logs; logs.configure(logging.INFO, os.environ['FMT']); "
            "logging.getLogger('some.library').error('POST %s failed', "
            "os.environ['PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL'])")
    for fmt in ("text", "json"):
        env = {**os.environ, "FMT": fmt,
               "PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL": "https://discord.test/api/webhooks/1/tok"}
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=30)
        assert "POST *** failed" in p.stderr and "tok" not in p.stderr, p.stderr
