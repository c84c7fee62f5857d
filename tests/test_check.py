"""issue #14, point 1: `paperbot check` runs the config checks, tries each source and the SMTP login, and sends
and records nothing. One line per check; exit status 1 when any fails.

Real parts: an HTTP source on a real local server (sources_support.DocServer), a git source in a real repository
in a temp folder, a real aiosmtpd server that demands a login, the real CLI.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import commit_file, make_repo
from publish_support import SECRET, smtp_server, write_config
from sources_support import DocServer, fixture, snapshot

from bot.channels import load_config
from bot.cli import cli
from bot.sources.poll import poll_source
from bot.store import Store

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.setenv("PAPERBOT_SMTP_PASSWORD", "s3cret-pw")


def _config(tmp_path, smtp_port: int, sources: list[dict], user: str = "news"):
    cfg = write_config(tmp_path, smtp_port, user=user)
    with cfg.path.open("a", encoding="utf-8") as f:
        f.write('[fetch]\ntimeout = "2s"\n')
        for s in sources:
            f.write("\n[[sources]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items()))
    return load_config(cfg.path)


def _check(cfg, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg.path), "check", *args], obj={}, catch_exceptions=False)


def test_check_passes_on_a_good_config_against_local_servers_and_sends_and_records_nothing(tmp_path):
    repo = make_repo(tmp_path / "repo")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T10:00:00+00:00")
    with DocServer() as server, smtp_server(auth=True) as (rec, port):
        server.put("/digest.md", fixture("digest_v1.md"))
        cfg = _config(tmp_path, port, [{"name": "web", "url": server.url("/digest.md"), "timezone": "UTC"},
                                       {"name": "lab", "git": str(repo)}])
        result = _check(cfg)
        assert result.exit_code == 0, result.output
        out = result.output.splitlines()
        assert any(line.startswith("ok    config: ") and "email is live" in line for line in out), out
        assert any(line.startswith("ok    source web: GET ") and "200" in line and "weeks (digest)" in line
                   for line in out), out
        assert any(line.startswith("ok    source lab: git ") and "branch main at" in line for line in out), out
        assert any(line.startswith("ok    email smtp: ") and "logged in as news" in line and "nothing sent" in line
                   for line in out), out
        assert out[-1] == "all checks passed"
        assert rec.logins == [(b"news", b"s3cret-pw")] and rec.count() == 0  # logged in, sent nothing
    assert not cfg.db_path.exists() and not (cfg.state_dir / "git").exists()  # nothing recorded, no mirror


def test_check_names_each_thing_that_fails_and_exits_1(tmp_path, monkeypatch):
    """A source that answers 404, a git path that is no repository (with git's whole message), a refused
    SMTP login and an example `from`: each gets its FAIL line naming it."""
    monkeypatch.setenv("PAPERBOT_SMTP_PASSWORD", "wrong")
    with DocServer() as server, smtp_server(auth=True) as (rec, port):
        cfg = _config(tmp_path, port, [{"name": "gone", "url": server.url("/missing.md")},
                                       {"name": "nogit", "git": str(tmp_path / "no-such-repo")}])
        cfg.path.write_text(cfg.path.read_text().replace("papers@weekly.test", "papers@example.org"))
        result = _check(cfg)
        assert result.exit_code == 1
        out = result.output
        assert "FAIL  config email.from: 'Papers Weekly <papers@example.org>' is at the example domain" in out
        assert "FAIL  source gone: GET http://127.0.0.1:" in out and "404" in out
        assert "FAIL  source nogit: git ls-remote" in out and "does not appear to be a git repository" in out
        assert "and the repository exists." in out  # git's whole message, not only its last line
        assert "FAIL  email smtp: " in out and "login refused: 535" in out
        assert "Error: 4 check(s) failed: config email.from, source gone, source nogit, email smtp" in out
        assert rec.count() == 0
        assert "wrong" not in out.replace("wrong path", "")  # the password is never printed


def test_check_asks_a_polled_source_conditionally_and_changes_nothing(tmp_path):
    """After a poll, `check` sends the validators of the last good poll (an unchanged file costs a 304) and
    leaves weeks, versions and validators exactly as they were."""
    with DocServer() as server, smtp_server(auth=True) as (_, port):
        server.put("/digest.md", fixture("digest_v1.md"))
        cfg = _config(tmp_path, port, [{"name": "web", "url": server.url("/digest.md"), "timezone": "UTC"}])
        store = Store.open(cfg.db_path)
        assert poll_source(store, cfg, cfg.sources[0], datetime(2024, 1, 9, tzinfo=UTC)).error is None
        before = snapshot(store, "web")
        result = _check(cfg)
        assert result.exit_code == 0, result.output
        assert "source web: GET " in result.output and "304 not modified since the last poll" in result.output
        assert server.requests_to("/digest.md")[-1].headers.get("if-none-match")
        assert snapshot(store, "web") == before
        store.close()


def test_check_offline_runs_only_the_config_checks(tmp_path):
    with DocServer() as server:
        cfg = _config(tmp_path, 9, [{"name": "web", "url": server.url("/digest.md")}])
        result = _check(cfg, "--offline")
        assert result.exit_code == 0 and "all checks passed (config only)" in result.output
        assert server.log == []


X_CREDS = ("consumer-key-1", "consumer-secret-2", "access-token-3", "access-token-secret-4")
X_ENV = ("PAPERBOT_X_CONSUMER_KEY", "PAPERBOT_X_CONSUMER_SECRET", "PAPERBOT_X_ACCESS_TOKEN",
         "PAPERBOT_X_ACCESS_TOKEN_SECRET")


def test_check_tries_the_x_and_discord_credentials_and_posts_nothing(tmp_path, monkeypatch):
    """issue #14: `paperbot check` also tries the X credentials (GET /2/users/me) and the Discord webhook (GET
    the webhook), against local servers that speak those APIs; nothing is posted. Wrong credentials FAIL,
    naming the channel."""
    from discord_server import DiscordServer
    from x_server import XServer

    with smtp_server(auth=True) as (rec, port), XServer(*X_CREDS) as x, DiscordServer() as d:
        cfg = write_config(tmp_path, port, user="news", x=f'api_base = "{x.api_base}"\n',
                           discord=f'api_base = "{d.api_base}"\n')
        for name, value in zip(X_ENV, X_CREDS, strict=True):
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PAPERBOT_DISCORD_WEBHOOK_URL", d.webhook_url())
        result = _check(cfg)
        assert result.exit_code == 0, result.output
        out = result.output.splitlines()
        assert any(line.startswith("ok    x: ") and f"account {x.user_id}" in line for line in out), out
        assert any(line.startswith("ok    discord: ") and "the webhook works" in line for line in out), out
        assert x.ours() == [] and d.messages == {}
        assert [r.path for r in x.requests] == ["/2/users/me"]

        monkeypatch.setenv("PAPERBOT_X_ACCESS_TOKEN_SECRET", "wrong")
        monkeypatch.setenv("PAPERBOT_DISCORD_WEBHOOK_URL", d.webhook_url().replace("T" * 68, "U" * 68))
        result = _check(cfg)
        assert result.exit_code == 1
        out = result.output.splitlines()
        assert any(line.startswith("FAIL  x: ") and "401" in line for line in out), out
        assert any(line.startswith("FAIL  discord: ") for line in out), out
        assert "U" * 68 not in result.output  # the webhook's token is a secret
