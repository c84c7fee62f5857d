"""issue #29: a command imports a channel's libraries only when it uses that channel.

Each command runs in a fresh interpreter (the real `paperbot` entry point, a real config and database in a temp
folder); the test reads `sys.modules` once the command is done. `status` still says whether each channel is live,
from its settings and the environment alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHANNEL_LIBRARIES = ("tweepy", "discord", "aiohttp", "mjml", "twitter_text", "mastodon")

PROBE = """
import json, sys
from bot.cli import cli
try:
    cli(sys.argv[1:], obj={})
except SystemExit as e:
    code = e.code
else:
    code = 0
print("\\n@@" + json.dumps({"code": code, "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def run(tmp: Path, *args: str, env: dict | None = None) -> tuple[int, set[str], str]:
    """(exit code, top-level modules loaded, output) of `paperbot ARGS` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp, capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    text, _, tail = out.stdout.rpartition("\n@@")
    assert tail, out.stdout + out.stderr
    found = json.loads(tail)
    return found["code"], set(found["modules"]), text


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "paperbot.toml").write_text('state_dir = "state"\n', encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("args", [("--help",), ("--config", "paperbot.toml", "status"),
                                  ("--config", "paperbot.toml", "status", "--json"),
                                  ("--config", "paperbot.toml", "weeks")])
def test_29_commands_load_no_channel_library_they_do_not_use(folder: Path, args: tuple[str, ...]) -> None:
    """#29: `paperbot --help`, `status` and `weeks` import none of tweepy, discord.py, aiohttp, mjml or
    twitter-text (status used to build every channel to ask whether it was live)."""
    code, modules, text = run(folder, *args)
    assert code == 0, text
    assert sorted(modules & set(CHANNEL_LIBRARIES)) == []


def test_29_status_still_tells_live_from_the_environment(folder: Path) -> None:
    """#29: the light `status` reads each channel's live flag from its settings and the environment: X and
    Discord with a credential set are live (a half-set X is live, and fails loudly when it sends), without
    any they are trials."""
    code, modules, text = run(folder, "--config", "paperbot.toml", "status", "--json",
                              env={"PAPERBOT_X_CONSUMER_KEY": "k", "PAPERBOT_DISCORD_WEBHOOK_URL": "",
                                   "PAPERBOT_DISCORD_BOT_TOKEN": ""})
    assert code == 0, text
    channels = json.loads(text)["channels"]
    assert (channels["x"]["live"], channels["discord"]["live"], channels["email"]["live"]) == (True, False, False)
    assert not modules & set(CHANNEL_LIBRARIES)


def test_29_a_command_that_uses_a_channel_still_loads_it(folder: Path) -> None:
    """The other side: `paperbot check` builds every channel, so their libraries do load (the probe sees
    imports, not an empty list by accident)."""
    _, modules, text = run(folder, "--config", "paperbot.toml", "check")
    assert {"tweepy", "discord"} <= modules, text
