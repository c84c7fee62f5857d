"""`paperbot run` as a real process: polls on schedule, releases new weeks, survives failures, stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import commit_file, make_repo
from sources_support import DocServer, TrickleServer, fixture, write_config

from bot import locks
from bot.config import Config
from bot.daemon import Daemon, after_poll_hooks
from bot.store import Store

A, B = "2024-01-01..2024-01-07", "2024-01-08..2024-01-14"
WEB = '\n[web]\nlisten = "127.0.0.1:0"\n'  # the daemon's web app on a free port, never a shared 8080


def _start(cfg: Config, tmp_path: Path, name: str = "daemon", ready: bool = True) -> tuple[subprocess.Popen, Path]:
    """Start `paperbot run`; with `ready`, wait until it has created the database and scheduled its polls
    (opening the database while the daemon migrates a fresh one would race with it)."""
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "run"], cwd=tmp_path,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    if ready:
        _wait_for("the daemon to start", lambda: "paperbot running" in log.read_text(), proc, log)
    return proc, log


def _wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen, log: Path, limit: float = 60) -> None:
    """Poll `check` until true; fail (with the daemon's log) if the daemon dies or `limit` passes."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"daemon exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()}")
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")


def _week(cfg: Config, source: str, key: str):
    if not cfg.db_path.exists():
        return None
    store = Store.open(cfg.db_path)
    try:
        return store.week(source, key)
    finally:
        store.close()


def _source_row(cfg: Config, name: str) -> dict:
    if not cfg.db_path.exists():
        return {}
    store = Store.open(cfg.db_path)
    try:
        return store.source(name) or {}
    finally:
        store.close()


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the daemon did not stop within 10 s")


def test_a_committed_week_becomes_ready_and_sigterm_stops_the_daemon(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    cfg = write_config(tmp_path, [{"name": "lab", "git": str(repo), "every": "2s"}], settle="1s", backfill=0,
                       extra=WEB)
    proc, log = _start(cfg, tmp_path)
    try:
        _wait_for("the first poll", lambda: _week(cfg, "lab", A) is not None, proc, log)
        assert _week(cfg, "lab", A).state == "baseline"

        commit_file(repo, "README.md", fixture("digest_v2.md"), datetime.now(UTC).isoformat(), "week 2")
        _wait_for("the new week to be ready", lambda: getattr(_week(cfg, "lab", B), "ready_at", None) is not None,
                  proc, log)  # ready, or already published by the after-poll hooks
        week = _week(cfg, "lab", B)
        assert week.ready_at - week.last_changed >= cfg.publish.settle and not week.flagged

        second, second_log = _start(cfg, tmp_path, "second", ready=False)
        assert second.wait(timeout=30) == 1
        assert "already running" in second_log.read_text() and f"pid {proc.pid}" in second_log.read_text()
    finally:
        code = _stop(proc)
    assert code == 0
    text = log.read_text()
    assert "paperbot running: 1 source(s)" in text and "stopping" in text and "Traceback" not in text


def test_a_failing_source_is_retried_and_reported_while_the_others_run(tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens here any more: every request is refused
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    cfg = write_config(tmp_path, [{"name": "gh", "github": "lab/digest", "every": "1s"},
                                  {"name": "lab", "git": str(repo), "every": "1s"}],
                       github_base_url=f"http://127.0.0.1:{port}", extra=WEB)
    proc, log = _start(cfg, tmp_path)
    try:
        _wait_for("two failed polls", lambda: (_source_row(cfg, "gh").get("error_count") or 0) >= 2, proc, log)
        assert _week(cfg, "lab", A) is not None
        assert _source_row(cfg, "lab")["error_count"] == 0
    finally:
        code = _stop(proc, signal.SIGINT)
    assert code == 0
    text = log.read_text()
    assert f"gh: poll failed (1 in a row): GET http://127.0.0.1:{port}/lab/digest/main/README.md" in text
    assert "gh: poll failed (2 in a row)" in text and "Traceback" not in text


def test_sigterm_during_a_stuck_request_still_exits_promptly(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = threading.Event()
    held: list[socket.socket] = []

    def hold() -> None:  # accept and never answer: the daemon's request waits for its 30 s timeout
        conn, _ = listener.accept()
        held.append(conn)
        accepted.set()

    threading.Thread(target=hold, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/digest.md"
    cfg = write_config(tmp_path, [{"name": "slow", "url": url}], extra=WEB)
    proc, log = _start(cfg, tmp_path)
    try:
        _wait_for("the request to be in flight", accepted.is_set, proc, log)
    finally:
        code = _stop(proc)
        listener.close()
        for c in held:
            c.close()
    assert code == 0
    assert "stopped with a poll of slow still in flight" in log.read_text()  # #25: said as it is
    assert "rolled back" not in log.read_text() and "Task was destroyed" not in log.read_text()


def test_after_poll_hooks_run_after_every_poll_and_the_state_folder_is_locked(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    cfg = write_config(tmp_path, [{"name": "lab", "git": str(repo), "every": "1s"}], extra=WEB)
    assert all(callable(h) for h in after_poll_hooks(cfg))  # what `paperbot run` adds (publishing)
    calls: list[tuple] = []
    two = threading.Event()

    def hook(c: Config, store: Store, now: datetime) -> None:
        calls.append((c, store.week("lab", A) is not None, now))
        if len(calls) >= 2:
            two.set()

    def broken(c: Config, store: Store, now: datetime) -> None:
        raise RuntimeError("a publisher bug must not stop the polling")

    clock = datetime(2024, 2, 1, 12, tzinfo=UTC)
    daemon = Daemon(cfg, hooks=[broken, hook], clock=lambda: clock)
    result: list[bool] = []
    runner = threading.Thread(target=lambda: result.append(daemon.run()))
    runner.start()
    try:
        assert two.wait(30), "the hook was not called twice"
        with pytest.raises(locks.LockBusy):
            locks.acquire(cfg.state_dir / "paperbot.lock")
    finally:
        daemon.stop.set()
        runner.join(15)
    assert result == [True]
    assert calls[0] == (cfg, True, clock)
    locks.release(locks.acquire(cfg.state_dir / "paperbot.lock"))  # let go on exit


def test_sources_dripping_their_headers_never_starve_a_healthy_source(tmp_path: Path) -> None:
    """issue #8 finding 1: four sources on a server that drips its status line held the daemon's four worker
    threads for minutes, and a healthy source set to `every = "2s"` was polled once in 25 s. Each source now
    has a worker of its own: while the four slow polls hang (the 30 s default deadline), the healthy source
    is polled on its schedule."""
    with TrickleServer(interval=0.2) as slow, DocServer() as good:
        good.put("/digest.md", fixture("digest_v1.md"))
        sources = [{"name": f"slow{i}", "url": slow.url(f"/digest{i}.md"), "every": "2s"} for i in range(4)]
        sources.append({"name": "healthy", "url": good.url("/digest.md"), "every": "2s"})
        cfg = write_config(tmp_path, sources, extra=WEB)
        proc, log = _start(cfg, tmp_path)
        try:
            _wait_for("the four slow polls to hang", lambda: slow.connections >= 4, proc, log)
            # Polled at start, then every 2 s (+ up to 0.2 s jitter). A starved source (before: 4 workers, all
            # held by the slow polls for 90 s) never gets its second poll in 20 s.
            _wait_for("a second poll of the healthy source", lambda: len(good.log) >= 2, proc, log, limit=20)
            assert slow.connections == 4  # the slow polls were still in their first attempt all along
        finally:
            slow.close()  # their connections drop: the slow polls fail and the daemon can stop at once
            code = _stop(proc)
    assert code == 0
    assert "Traceback" not in log.read_text()


def test_the_daemon_comes_back_to_a_rate_limited_channel_at_its_reset_without_polling_it(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    """issue #11: a channel's rate-limited-until is in the database; the daemon sends nothing on it before then,
    and comes back at that instant by itself (one scheduled job), not at the next poll an hour later and not by
    trying every second."""
    from publish_support import ready_week
    from x_server import XServer

    from bot.publish import ledger
    from bot.publish.pipeline import after_poll

    creds = ("consumer-key-1", "consumer-secret-2", "access-token-3", "access-token-secret-4")
    for name, value in zip(("PAPERBOT_X_CONSUMER_KEY", "PAPERBOT_X_CONSUMER_SECRET", "PAPERBOT_X_ACCESS_TOKEN",
                            "PAPERBOT_X_ACCESS_TOKEN_SECRET"), creds, strict=True):
        monkeypatch.setenv(name, value)
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", fixture("digest_v1.md"), "2024-01-08T09:00:00+00:00")
    with XServer(*creds) as x:
        cfg = write_config(tmp_path, [{"name": "lab", "git": str(repo), "every": "1h"}], backfill=1,
                           extra=WEB + f'[x]\napi_base = "{x.api_base}"\ndelay = "0s"\n')
        store = Store.open(cfg.db_path)
        try:
            ready_week(store, cfg)
            until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
            ledger.hold_channel(store, "x", until, "429 from X (test)")
        finally:
            store.close()
        rounds: list[datetime] = []

        def counted(c: Config, s: Store, now: datetime) -> None:
            rounds.append(datetime.now(UTC))
            after_poll(c, s, now)

        daemon = Daemon(cfg, hooks=[counted])
        runner = threading.Thread(target=daemon.run)
        runner.start()
        try:
            deadline = time.monotonic() + 30
            while not _x_done(cfg) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            daemon.stop.set()
            runner.join(15)
        posts = [r for r in x.requests if r.method == "POST"]
        assert _x_done(cfg), "the threads were not posted after the reset"
        heads = [p for p in x.ours() if p.in_reply_to is None]
        assert sum(len(x.thread(h.id)) for h in heads) == len(x.ours()) >= 3  # dair's week and lab's
        assert min(r.at for r in posts) >= until.timestamp(), "a post went out before the reset"
        assert len(rounds) == 2, f"publishing ran {len(rounds)} times: once after the poll, once at the reset"


def _x_done(cfg: Config) -> bool:
    """Every week planned on X is published there, and there is one at least."""
    store = Store.open(cfg.db_path)
    try:
        states = [r[0] for r in store.db.execute("SELECT state FROM publications WHERE channel = 'x'")]
    finally:
        store.close()
    return bool(states) and all(s == "published" for s in states)
def test_serve_beside_a_running_daemon_says_that_run_already_serves_the_web_app(tmp_path):
    """issue #14: `paperbot serve` beside a running daemon said "serving on …" and then failed with "address
    already in use", without saying that `run` already serves the web app. Now it says so first, and exits 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, [{"name": "lab", "url": "http://127.0.0.1:9/digest.md", "every": "1h"}],
                       extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
    proc, log = _start(cfg, tmp_path)
    try:
        _wait_for("its web app", lambda: _listening(port), proc, log)
        serve = subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg.path), "serve"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=30)
    finally:
        assert _stop(proc) == 0
    assert serve.returncode == 1
    assert (f"Error: `paperbot run` (pid {proc.pid}) is running on {cfg.state_dir} and already serves the web app "
            f"on 127.0.0.1:{port}") in serve.stderr
    assert "serving on" not in serve.stderr and "address already in use" not in serve.stderr


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
