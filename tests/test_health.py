"""issue #15: `GET /healthz` and `paperbot health`, against a real `paperbot run` and a real `paperbot serve`.

200 with JSON while the daemon's loop turns and a source still works; 503 once every source has failed for
`[health] max_failing_age`, when the daemon's heartbeat is older than `max_heartbeat_age` (its process stopped
with SIGSTOP: a stuck loop), and after it stopped. The heartbeat is in the database, so `paperbot serve` in a
process of its own answers the same as the daemon's own web app.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sources_support import DocServer, fixture, write_config
from test_daemon import _start, _stop

from bot.channels import load_config
from bot.channels.base import Unit
from bot.publish import ledger
from bot.store import Store
from bot.web.health import Heartbeat

STALE = '[health]\nmax_failing_age = "1h"\nmax_heartbeat_age = "2s"\n'  # the heartbeat test
FAILING = '[health]\nmax_failing_age = "2s"\nmax_heartbeat_age = "30s"\n'  # the sources' test: a busy machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthz(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return 0, {}  # not listening (yet)


def _until(what: str, base: str, check: Callable[[int, dict], bool], seen: list | None = None,
           limit: float = 30) -> tuple[int, dict]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status, body = _healthz(base)
        if seen is not None and status:
            seen.append((status, body))
        if check(status, body):
            return status, body
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; last answer {status}: {body}")


def _cli(cfg_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg_path), *args], capture_output=True,
                          text=True, timeout=30)


def test_healthz_is_200_while_polls_succeed_and_503_after_every_source_failed_for_max_failing_age(tmp_path):
    """A real daemon polling a local HTTP source every second: 200 (with the poll's age and the heartbeat's)
    while the source answers; once it starts failing, still 200 until the failures are 2 s old, then 503
    naming the cause; 200 again when the source comes back. `paperbot health` exits 0, then 1."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with DocServer() as srv:
        srv.put("/digest.md", fixture("digest_v1.md"))
        cfg = write_config(tmp_path, [{"name": "lab", "url": srv.url("/digest.md"), "every": "1s"}],
                           extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\n' + FAILING)
        proc, log = _start(cfg, tmp_path)
        try:
            status, body = _until("a healthy answer after the first poll", base,
                                  lambda s, b: s == 200 and b["sources"]["lab"]["last_success_age"] is not None)
            assert body["status"] == "ok" and body["problems"] == []
            assert body["daemon"]["pid"] == proc.pid and body["daemon"]["heartbeat_age"] <= 30
            assert body["sources"]["lab"]["errors_in_a_row"] == 0 and body["sources"]["lab"]["failing_for"] is None
            ok = _cli(cfg.path, "health")
            assert ok.returncode == 0 and ok.stdout.startswith("ok (200)"), ok.stdout + ok.stderr

            del srv.resources["/digest.md"]  # every poll now gets a 404
            broke = time.monotonic()
            seen: list[tuple[int, dict]] = []
            status, body = _until("503 after 2 s of failures", base, lambda s, b: s == 503, seen)
            assert time.monotonic() - broke > 2, "503 before the failures were max_failing_age old"
            assert any(s == 200 and b["sources"]["lab"]["errors_in_a_row"] >= 1 for s, b in seen), \
                "a failure younger than max_failing_age is no alarm yet"
            assert body["status"] == "unhealthy" and body["problems"] == ["every source has failed for over 2s"]
            assert body["sources"]["lab"]["failing_for"] >= 2 and body["sources"]["lab"]["errors_in_a_row"] >= 2
            assert body["daemon"]["heartbeat_age"] <= 30  # the daemon itself is fine
            bad = _cli(cfg.path, "health")
            assert bad.returncode == 1 and "every source has failed for over 2s" in bad.stdout, bad.stdout

            srv.put("/digest.md", fixture("digest_v1.md"))
            status, body = _until("200 once the source answers again", base, lambda s, b: s == 200)
            assert body["sources"]["lab"]["errors_in_a_row"] == 0
        finally:
            code = _stop(proc)
    assert code == 0
    assert "Traceback" not in log.read_text()


def test_healthz_from_paperbot_serve_is_503_while_the_daemons_heartbeat_is_stale(tmp_path):
    """`paperbot serve` in its own process, beside a daemon: 200 while the daemon's loop turns; SIGSTOP the
    daemon (a stuck loop) and its heartbeat grows past max_heartbeat_age: 503; SIGCONT: 200 again; SIGTERM:
    503, saying it stopped."""
    with DocServer() as srv:
        srv.put("/digest.md", fixture("digest_v1.md"))
        cfg = write_config(tmp_path, [{"name": "lab", "url": srv.url("/digest.md"), "every": "1h"}],
                           extra='\n[web]\nlisten = "127.0.0.1:0"\n' + STALE)
        port = _free_port()
        serve_cfg = tmp_path / "serve.toml"  # the same state folder and settings, its own port
        serve_cfg.write_text(cfg.path.read_text().replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"'))
        base = f"http://127.0.0.1:{port}"
        daemon, log = _start(cfg, tmp_path)
        serve = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(serve_cfg), "serve"], cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            status, body = _until("a healthy answer from paperbot serve", base, lambda s, b: s == 200)
            assert body["daemon"]["pid"] == daemon.pid

            os.kill(daemon.pid, signal.SIGSTOP)
            try:
                status, body = _until("503 for a stale heartbeat", base, lambda s, b: s == 503)
            finally:
                os.kill(daemon.pid, signal.SIGCONT)
            assert body["daemon"]["heartbeat_age"] >= 2
            assert body["problems"] == [f"the daemon's heartbeat (pid {daemon.pid}) is "
                                        f"{body['daemon']['heartbeat_age']:g}s old, over 2s: its loop is stuck or "
                                        "it is gone"]
            _until("200 once the daemon runs again", base, lambda s, b: s == 200)
        finally:
            code = _stop(daemon)
        try:
            assert code == 0
            status, body = _until("503 after the daemon stopped", base, lambda s, b: s == 503)
            assert body["problems"][0].startswith(f"the daemon (pid {daemon.pid}) stopped ")
            assert body["daemon"]["stopped_at"] is not None
        finally:
            serve.terminate()
            assert serve.wait(timeout=10) == 0


def test_healthz_shows_each_channels_deliveries_in_progress_failed_uncertain_and_rate_limited_until(tmp_path):
    """The ledger's watched states per channel and `channel_state`'s rate-limited-until (only while it is in the
    future); no heartbeat at all: 503 saying no daemon ran here."""
    port = _free_port()
    cfg_path = tmp_path / "paperbot.toml"
    cfg_path.write_text(f'state_dir = "state"\n[web]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
    cfg = load_config(cfg_path)
    now = datetime.now(UTC)
    until = (now + timedelta(hours=1)).replace(microsecond=0)
    store = Store.open(cfg.db_path)
    try:
        ledger.plan(store, "lab", "2024-01-01..2024-01-07", "email",
                    [Unit(f"r{i}@example.org", str(i)) for i in range(6)], now)
        for i, state in enumerate(("sending", "failed", "failed", "uncertain", "sent")):
            store.db.execute("UPDATE deliveries SET state = ? WHERE unit = ?", [state, f"r{i}@example.org"])
        store.db.conn.commit()
        ledger.hold_channel(store, "x", until, "429 from X")
        ledger.hold_channel(store, "discord", now - timedelta(minutes=5), "over")  # already past
    finally:
        store.close()
    serve = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg_path), "serve"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        status, body = _until("an answer", base, lambda s, b: s != 0)
        assert status == 503 and body["problems"] == [
            "no daemon heartbeat: `paperbot run` has not run on this state folder"]
        assert body["channels"] == {
            "email": {"sending": 1, "failed": 2, "uncertain": 1, "refused": 0, "rate_limited_until": None},
            "x": {"sending": 0, "failed": 0, "uncertain": 0, "refused": 0,
                  "rate_limited_until": until.isoformat(timespec="seconds")},
            "discord": {"sending": 0, "failed": 0, "uncertain": 0, "refused": 0, "rate_limited_until": None}}
        assert body["sources"] == {}

        heart = Heartbeat(cfg.db_path)  # what `paperbot run` writes from its loop
        try:
            assert heart.start(datetime.now(UTC))
            status, body = _healthz(base)
        finally:
            heart.close()
        assert status == 200 and body["daemon"]["pid"] == os.getpid()
    finally:
        serve.terminate()
        assert serve.wait(timeout=10) == 0
