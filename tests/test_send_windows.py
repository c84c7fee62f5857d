"""Issue #14: send windows. `[email] send_at = "mon 14:00"` (the same key for every channel, in the top-level
`timezone`): a ready week waits for its channel's next window. A window missed while the daemon was down is
used once at start-up, decided from the ledger: not zero times, not twice. The daemon runs as a real
subprocess; its clock is set through $PAPERBOT_NOW, the variable meant for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from publish_support import KEY, add_subscribers, ready_week, smtp_server

from bot.channels import load_config
from bot.channels.windows import last_window, may_send, next_window, parse_windows
from bot.config import ConfigError
from bot.store import Store

NY = ZoneInfo("America/New_York")


def test_windows_are_decided_from_when_the_week_became_ready():
    mon = parse_windows("mon 14:00", "email.send_at")
    ready = datetime(2023, 3, 10, 0, 0, tzinfo=UTC)  # a Friday
    assert not may_send(mon, UTC, ready, datetime(2023, 3, 13, 13, 59, tzinfo=UTC))
    assert may_send(mon, UTC, ready, datetime(2023, 3, 13, 14, 0, tzinfo=UTC))
    assert may_send(mon, UTC, ready, datetime(2023, 4, 1, tzinfo=UTC))  # missed long ago: still used
    assert not may_send(mon, UTC, datetime(2023, 3, 13, 14, 1, tzinfo=UTC), datetime(2023, 3, 14, tzinfo=UTC))
    assert may_send((), UTC, ready, ready)  # no window: as soon as ready
    assert next_window(mon, UTC, datetime(2023, 3, 13, 14, 0, tzinfo=UTC)) == datetime(2023, 3, 20, 14, tzinfo=UTC)


def test_a_window_is_local_time_in_the_configured_zone_across_dst():
    w = parse_windows(["Mon 09:30", "thursday 9:30"], "x.send_at")
    assert [str(x) for x in w] == ["mon 09:30", "thu 09:30"]
    # New York leaves daylight saving time on 2023-11-05: 09:30 local is 13:30 UTC before and 14:30 after
    assert last_window(w, NY, datetime(2023, 11, 3, tzinfo=UTC)) == datetime(2023, 11, 2, 13, 30, tzinfo=UTC)
    assert next_window(w, NY, datetime(2023, 11, 3, tzinfo=UTC)) == datetime(2023, 11, 6, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ['"mo 14:00"', '"mon 24:00"', '"mon"', "14", '["mon 14:00", 3]'])
def test_a_bad_window_names_the_key(tmp_path, value):
    (tmp_path / "paperbot.toml").write_text(f"[email]\nsend_at = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="email.send_at"):
        load_config(tmp_path / "paperbot.toml")


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
timezone = "UTC"
[fetch]
timeout = "1s"
[[sources]]
name = "quiet"
url = "http://127.0.0.1:9/digest.md"
every = "1h"
[email]
smtp_url = "smtp://127.0.0.1:{port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
list_id = "papers.weekly.test"
send_at = "mon 14:00"
[arxiv]
enabled = false
[web]
base_url = "https://papers.weekly.test"
listen = "127.0.0.1:0"
[x]
enabled = false
[discord]
enabled = false
[bluesky]
enabled = false
[mastodon]
enabled = false
""", encoding="utf-8")
    return path


def _prepare(tmp_path: Path, port: int) -> Path:
    path = _config(tmp_path, port)
    cfg = load_config(path)
    store = Store.open(cfg.db_path)
    try:
        week = ready_week(store, cfg)  # ready at 2023-03-10 00:00 UTC, a Friday
        assert week.ready_at == datetime(2023, 3, 10, tzinfo=UTC)
        add_subscribers(store, tmp_path, ["a@example.net", "b@example.net"])
    finally:
        store.close()
    return path


def _daemon(path: Path, now: str, seconds: float, until=None) -> str:
    """Run `paperbot run` with its clock at `now` for `seconds` (or until `until()`), then SIGTERM it."""
    log = path.parent / f"daemon-{now.replace(':', '')}.log"
    env = {**os.environ, "PAPERBOT_NOW": now}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "-v", "--config", str(path), "run"], cwd=path.parent,
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None and not (until and until()):
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    return log.read_text()


def _published(path: Path) -> bool:
    store = Store.open(load_config(path).db_path)
    try:
        return store.week("dair", KEY).state == "published"
    finally:
        store.close()


def test_a_window_missed_while_the_daemon_was_down_is_used_once_at_start_up(tmp_path):
    with smtp_server() as (server, port):
        path = _prepare(tmp_path, port)
        log = _daemon(path, "2023-03-13T09:00:00+00:00", 4)  # before Monday's window: nothing
        assert server.count() == 0, log
        assert "waits for its send window" in log
        # The daemon was down at 14:00; it starts at 15:00: the missed window is used, once
        log = _daemon(path, "2023-03-13T15:00:00+00:00", 30, until=lambda: _published(path))
        assert sorted(server.recipients().elements()) == ["a@example.net", "b@example.net"], log
        log = _daemon(path, "2023-03-13T15:30:00+00:00", 4)  # a restart: not twice
        assert sorted(server.recipients().elements()) == ["a@example.net", "b@example.net"], log


def test_the_daemon_comes_back_at_the_window_by_itself(tmp_path):
    with smtp_server() as (server, port):
        path = _prepare(tmp_path, port)
        seen: list[int] = []

        def sent() -> bool:
            seen.append(server.count())
            return server.count() == 2

        log = _daemon(path, "2023-03-13T13:59:55+00:00", 30, until=sent)
        assert seen[0] == 0, "sent before the window"
        assert server.count() == 2, log
        assert "publishing again at 2023-03-13T14:00:00" in log
