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


# -- finding 2: one template for the config ------------------------------------------------------------------

def _keys_in(text: str) -> dict[str, set[str]]:
    """Every key written in each table, set or commented out (`# key =`, `#   key =`)."""
    import re

    table, out = "", {"": set()}
    for line in text.splitlines():
        if m := re.match(r"^\[+(\w+)\]+", line):
            table = m.group(1)
            out.setdefault(table, set())
        elif m := re.match(r"^#?\s*(\w+)\s*=", line):
            out[table].add(m.group(1))
    return out


def test_init_writes_the_one_template_which_deploy_s_example_repeats_with_server_values_25_2(tmp_path):
    """#25 (2): `init` wrote `subject = "{title}"`, 5 of the 8 subject fields and no [x], [discord] or [health];
    deploy/config.example.toml was current: two copies drifted."""
    import difflib

    from bot import channels as registry
    from bot import config
    from bot.channels.email.render import SUBJECT_FIELDS
    from bot.channels.email.settings import EmailSettings

    target = tmp_path / "paperbot.toml"
    result = CliRunner().invoke(cli, ["init", str(target)], obj={})
    assert result.exit_code == 0 and "paperbot" in result.output and "check" in result.output
    laptop = target.read_text(encoding="utf-8")
    server = (ROOT / "deploy" / "config.example.toml").read_text(encoding="utf-8")
    changed = [line for line in difflib.unified_diff(laptop.splitlines(), server.splitlines(), n=0, lineterm="")
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert sorted(line[1:].split("=")[0].strip() for line in changed) == sorted(["state_dir", "base_url", "listen"] * 2)
    assert 'state_dir = "./state"' in laptop and 'listen = "127.0.0.1:8080"' in laptop
    assert 'base_url = "http://127.0.0.1:8080"' in laptop  # with a local mail server: a local trial as written
    cfg = registry.load_config(target)
    assert str(cfg.state_dir) == str(tmp_path / "state") and cfg.web.listen == "127.0.0.1:8080"
    assert cfg.email.subject == EmailSettings().subject == "{dates}: {headline}"
    assert all(f"{{{f}}}" in laptop for f in SUBJECT_FIELDS)  # every subject field listed
    keys = _keys_in(laptop)
    known = {"publish": config._PUBLISH_KEYS, "sources": config._SOURCE_KEYS, "github": {"base_url"},
             "fetch": config._FETCH_KEYS, "web": config._WEB_KEYS, "alerts": config._ALERTS_KEYS,
             "health": config._HEALTH_KEYS, **{n: registry.SETTINGS[n].KEYS for n in registry.NAMES}}
    missing = [f"[{t}] {k}" for t, ks in known.items() for k in ks if k not in keys.get(t, set())]
    missing += [k for k in ("state_dir", "timezone") if k not in keys[""]]
    assert not missing, missing
    assert "credit" in keys["sources"] and "# credit = " in laptop  # shown, with its default said
