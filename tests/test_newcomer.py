"""issue #25: no rough edges for a newcomer. One test (or a few) per finding of the issue, each naming it; the
local trial (finding 3) is tests/test_local_trial.py and the first subscriber (finding 4)
tests/test_first_subscriber.py. Real parts: the CLI, SQLite files, an aiosmtpd server, the daemon as a
subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import ROOT
from publish_support import SECRET, write_config

from bot.cli import cli


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PAPERBOT_SECRET_KEY", SECRET)
    monkeypatch.delenv("PAPERBOT_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("PAPERBOT_NOW", raising=False)


def run_cli(cfg, *args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(cli, ["--config", str(cfg.path), *args], obj={}, catch_exceptions=False)


# -- finding 1: a short PAPERBOT_SECRET_KEY ------------------------------------------------------------------

def test_check_fails_on_a_short_secret_key_with_the_command_that_makes_a_good_one_25_1(tmp_path):
    """#25 (1): a 10-character key passed `check` ("all checks passed"); every publish round then failed."""
    cfg = write_config(tmp_path, None)
    result = run_cli(cfg, "check", "--offline", env={"PAPERBOT_SECRET_KEY": "short-key!"})
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "PAPERBOT_SECRET_KEY is 10 characters" in result.output
    assert "secrets.token_urlsafe(32)" in result.output
    assert "short-key!" not in result.output  # never the key itself
    assert "all checks passed" not in result.output


def test_run_refuses_to_start_with_a_short_secret_key_25_1(tmp_path):
    cfg = write_config(tmp_path, None)
    with cfg.path.open("a", encoding="utf-8") as f:
        f.write('[[sources]]\nname = "lab"\nurl = "http://127.0.0.1:9/digest.md"\n')
    env = {**os.environ, "PAPERBOT_SECRET_KEY": "short-key!"}
    proc = subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg.path), "run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "PAPERBOT_SECRET_KEY" in proc.stderr and "secrets.token_urlsafe(32)" in proc.stderr
    assert not cfg.db_path.exists()  # refused before the first poll
