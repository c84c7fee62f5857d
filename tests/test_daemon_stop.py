"""issue #15: SIGTERM while the daemon is sending a week stops it within 10 s with status 0, and each unit in
flight at that moment is recorded as such (`sending` in the ledger), so the next start sends the rest and
repeats, at most, those. A second daemon on the same state folder refuses to start, naming the first's pid.

Real parts: `paperbot run` as a subprocess, a local git repository as its source, aiosmtpd on 127.0.0.1
answering each message slowly, so a SIGTERM lands in the middle of the week's emails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from aiosmtpd.controller import Controller
from conftest import commit_file, make_repo
from publish_support import KEY, SECRET, Recorder, add_subscribers, addresses, free_port, ready_week
from sources_support import fixture

from bot.channels import load_config
from bot.store import Store

N = 150
CONNECTIONS = 2


class SlowRecorder(Recorder):
    """Takes `delay` seconds over each DATA while `slow` is set: the daemon is mid-send for a good while."""

    delay = 0.2
    slow = True

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.slow:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def _config(tmp_path: Path, smtp_port: int, repo: Path) -> Path:
    path = tmp_path / "paperbot.toml"
    path.write_text(f"""state_dir = "state"
[publish]
backfill = 0
[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
starttls = false
from = "Papers Weekly <papers@weekly.test>"
contact = "help@weekly.test"
list_id = "papers.weekly.test"
connections = {CONNECTIONS}
[web]
base_url = "https://papers.weekly.test"
listen = "127.0.0.1:0"
[x]
enabled = false
[[sources]]
name = "lab"
git = "{repo}"
every = "1h"
""", encoding="utf-8")
    return path


def _start(cfg_path: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    env.pop("PAPERBOT_SMTP_PASSWORD", None)
    return subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "run"], cwd=cfg_path.parent,
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _states(db: Path) -> dict[str, set[str]]:
    con = sqlite3.connect(db)
    try:
        out: dict[str, set[str]] = {}
        for unit, state in con.execute("SELECT unit, state FROM deliveries WHERE channel = 'email' AND week_key = ?",
                                       [KEY]):
            out.setdefault(state, set()).add(unit)
        return out
    finally:
        con.close()


def _wait(what: str, check, proc: subprocess.Popen, log: Path, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert proc.poll() is None, f"the daemon exited while waiting for {what}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()}"
        time.sleep(0.02)


def test_sigterm_mid_send_exits_0_within_10s_leaving_the_units_in_flight_as_sending(tmp_path):
    rec = SlowRecorder()
    smtp_port = free_port()
    ctl = Controller(rec, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    try:
        repo = make_repo(tmp_path / "digest")
        commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
        cfg_path = _config(tmp_path, smtp_port, repo)
        cfg = load_config(cfg_path)
        store = Store.open(cfg.db_path)
        try:
            # the week the daemon publishes after its first poll (the lab source's own weeks are its baseline)
            ready_week(store, replace(cfg, publish=replace(cfg.publish, backfill=1)))
            people = addresses(N)
            add_subscribers(store, tmp_path, people)
        finally:
            store.close()

        log = tmp_path / "first.log"
        first = _start(cfg_path, log)
        _wait("the week's emails to be going out", lambda: rec.count() >= 10, first, log)

        second_log = tmp_path / "second.log"
        second = _start(cfg_path, second_log)  # meanwhile, a second daemon on the same state folder
        assert second.wait(timeout=30) == 1
        text = second_log.read_text()
        assert "another paperbot is already running" in text and f"(pid {first.pid})" in text, text

        first.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = first.wait(timeout=15)
        took = time.monotonic() - signalled
        assert code == 0, log.read_text()
        assert took < 10, f"the daemon took {took:.1f} s to stop"

        states = _states(cfg.db_path)
        received = set(rec.recipients())
        in_flight = states.get("sending", set())
        assert sum(len(v) for v in states.values()) == N, states.keys()
        assert states.get("planned"), "SIGTERM did not land mid-send (everything went out first)"
        assert len(in_flight) <= CONNECTIONS, f"{len(in_flight)} rows in flight with {CONNECTIONS} connections"
        assert states.get("sent", set()) <= received, "a row is marked sent that the server never got"
        assert received <= states.get("sent", set()) | in_flight, "a message went out that the ledger does not name"
        assert not (received & states.get("planned", set()))
        first_text = log.read_text()
        assert "received SIGTERM" in first_text and "Traceback" not in first_text

        rec.slow = False
        log2 = tmp_path / "restart.log"
        again = _start(cfg_path, log2)
        _wait("the rest of the week to go out", lambda: not ({"planned", "sending"} & set(_states(cfg.db_path))),
              again, log2)
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=15) == 0
    finally:
        ctl.stop()
    got = rec.recipients()
    assert set(got) == set(people), "every subscriber has the week"
    extra = {a for a, n in got.items() if n > 1}
    assert extra <= in_flight, f"copies beyond the rows in flight at the SIGTERM: {extra - in_flight}"
    print(f"SIGTERM after {len(received)} messages: exit 0 in {took:.1f} s; in flight {sorted(in_flight)}; "
          f"second copies {sorted(extra)}")
