"""issue #8: a full disk (or another OS error) during publishing is one clear line, never a traceback, and the
ledger stays consistent: nothing unwritten is marked sent, and a later run with space sends every row once.

The disk is made "full" for real, without root: the `paperbot publish` process runs with RLIMIT_FSIZE (which
binds root too) and SIGXFSZ ignored, so a write past the limit fails with EFBIG, exactly where a full disk
fails with ENOSPC. The daemon test uses a temporary file name pointing at /dev/full (ENOSPC from the kernel).
"""

from __future__ import annotations

import email
import email.policy
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import ROOT, commit_file, make_repo
from publish_support import SECRET, add_subscribers, addresses, smtp_server, write_config

from bot.channels.email.render import edition_path
from bot.publish.pipeline import publish_week
from bot.store import Store
from bot.track.parsing import parse_document
from bot.track.tracker import observe, release

KEY = "2023-02-20..2023-02-26"
PAPERS = 40  # a week big enough that its messages outgrow what SQLite needs to open the database (32 KiB)
SUBSCRIBERS = 12


def _digest(n: int = PAPERS) -> str:
    rows = [f"| {i}) **Sparse Lanterns, part {i}** - routes tokens to a handful of experts and halves the "
            f"compute, measured on task {i}. | [Paper](https://arxiv.org/abs/2302.{i:05d}) |" for i in range(1, n + 1)]
    return "\n".join(["# Papers We Liked", "", "## Top ML Papers of the Week (Feb 20-26)", "",
                      "| **Paper** | **Links** |", "| --- | --- |", *rows, ""])


def _setup(tmp: Path, port: int | None = None, subscribers: int = SUBSCRIBERS, batch: int = 1):
    """A config (outbox, or SMTP on `port`), a ready week of PAPERS papers and `subscribers` readers. `batch`
    1 (a ledger commit per message, as the limits below were measured for) unless a test says otherwise."""
    cfg = write_config(tmp, port, connections=2, batch=batch)
    store = Store.open(cfg.db_path)
    observe(store, "dair", parse_document(_digest().encode(), date(2023, 2, 27), "digest"),
            datetime(2023, 2, 27, 12, tzinfo=UTC), "v1", cfg.publish)
    release(store, datetime(2023, 3, 10, tzinfo=UTC), cfg.publish)
    add_subscribers(store, tmp, addresses(subscribers))
    store.close()
    return cfg


@pytest.fixture(scope="module")
def sizes(tmp_path_factory) -> dict[str, int]:
    """What one publication writes, measured with no limit (so the limits below follow template changes)."""
    tmp = tmp_path_factory.mktemp("calibrate")
    cfg = _setup(tmp, subscribers=1)
    store = Store.open(cfg.db_path)
    os.environ["PAPERBOT_SECRET_KEY"] = SECRET
    try:
        (rep,) = publish_week(cfg, store, store.week("dair", KEY), now=datetime(2023, 3, 10, tzinfo=UTC))
    finally:
        del os.environ["PAPERBOT_SECRET_KEY"]
        store.close()
    assert rep.done and rep.trial
    folder = cfg.state_dir / "outbox" / "email" / "dair" / KEY
    (eml,) = folder.glob("*.eml")
    html = max(edition_path(cfg.state_dir, "dair", KEY).stat().st_size, (folder / "edition.html").stat().st_size)
    assert 32768 < html < eml.stat().st_size, "the limits below need a message bigger than the HTML copies"
    return {"html": html, "eml": eml.stat().st_size}


def _publish(cfg, limit: int | None = None, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `paperbot publish`; with `limit`, no file of its may grow past `limit` bytes (EFBIG)."""
    def full_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET, **(extra_env or {})}
    env.pop("PAPERBOT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(cfg.path), "publish"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, preexec_fn=full_disk if limit else None)


def _problems(stderr: str) -> list[str]:
    """stderr without the INFO progress lines a non-interactive publish logs."""
    return [line for line in stderr.splitlines() if " INFO " not in line]


def _rows(cfg) -> dict[str, tuple[str, int]]:
    conn = sqlite3.connect(cfg.db_path)
    try:
        return {u: (s, a) for u, s, a in conn.execute("SELECT unit, state, attempts FROM deliveries")}
    finally:
        conn.close()


def _emls(cfg) -> dict[str, Path]:
    folder = cfg.state_dir / "outbox" / "email" / "dair" / KEY
    return {p.name.split("-", 1)[1].removesuffix(".eml"): p for p in folder.glob("*.eml")}


def _published(cfg) -> bool:
    """Done: published for real over SMTP, or (the outbox being a trial since issue #10) a finished trial."""
    conn = sqlite3.connect(cfg.db_path)
    try:
        week = conn.execute("SELECT state FROM weeks WHERE key = ?", [KEY]).fetchone()
        pub = conn.execute("SELECT state FROM publications WHERE week_key = ?", [KEY]).fetchone()
        return (week, pub) in ((("published",), ("published",)), (("ready",), ("trial",)))
    finally:
        conn.close()


DONE = ("sent", "trial")  # a row whose message went out: over SMTP, or into the outbox (a trial)


# Where the disk fills up, from the first write to the last: each must be one line and leave a ledger a
# second run completes. The limit for each comes from the sizes measured above.
WHERE = {
    "database": (lambda s: 16384, "cannot use the state database {db}: disk I/O error"),  # SQLite's -shm is 32 KiB
    "web edition": (lambda s: s["html"] - 1000, "cannot write the web edition {web}: File too large (EFBIG)"),
    "outbox": (lambda s: (s["html"] + s["eml"]) // 2,
               "cannot write {outbox}/000001-reader0@example.net.eml: File too large (EFBIG)"),
    "ledger": (lambda s: s["eml"] + 4096, "cannot write the ledger in {db}: disk I/O error"),
}


@pytest.mark.parametrize("where", WHERE)
def test_a_full_disk_during_publish_is_one_line_and_the_next_run_sends_each_row_once(tmp_path, sizes, where):
    """issue #8: a full disk ended `paperbot publish` in a raw traceback. Now: one line naming what failed,
    the path and the system's reason; exit status 1; no row marked sent without its message written; and a
    second run with space sends what is left, leaving alone what the first one wrote."""
    cfg = _setup(tmp_path)
    limit, expected = WHERE[where]
    first = _publish(cfg, limit(sizes))
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    (line,) = _problems(first.stderr)
    outbox = cfg.state_dir / "outbox" / "email" / "dair" / KEY
    assert line.startswith("Error: " + expected.format(db=cfg.db_path, outbox=outbox,
                                                       web=edition_path(cfg.state_dir, "dair", KEY))), line
    assert "run `paperbot publish` again" in line

    rows, emls = _rows(cfg), _emls(cfg)
    sent = {u for u, (state, _) in rows.items() if state in DONE}
    for unit in sent:  # consistent: a row marked sent has its whole message on disk
        msg = email.message_from_bytes(emls[unit].read_bytes(), policy=email.policy.default)
        assert msg["To"] == unit and "Sparse Lanterns, part 40" in msg.get_body(("html",)).get_content()
    assert set(emls) <= {u for u, (state, _) in rows.items() if state in (*DONE, "sending")}
    assert not list(cfg.state_dir.rglob("*.tmp")), "a half-written file was left behind"
    if where != "ledger":
        assert not sent
    written = {u: (emls[u].stat().st_ino, emls[u].stat().st_mtime_ns) for u in sent}

    second = _publish(cfg)
    assert second.returncode == 0, second.stderr
    assert _problems(second.stderr) == []
    rows, emls = _rows(cfg), _emls(cfg)
    assert sorted(emls) == sorted(addresses(SUBSCRIBERS)) and all(s == "trial" for s, _ in rows.values())
    assert {u: (emls[u].stat().st_ino, emls[u].stat().st_mtime_ns) for u in sent} == written, "resent a sent row"
    assert _published(cfg)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("batch", [1, 4])
def test_a_full_ledger_disk_while_sending_by_smtp_loses_nobody(tmp_path, sizes, batch):
    """issue #8: over SMTP the ledger is the only thing written per message. When its disk fills mid-run the
    run stops in one line; every row marked sent was received; the next run delivers the rest, and a second
    copy exists only of a row the failed run left `sending` (the one documented exception): at most a batch
    per connection (#27)."""
    with smtp_server() as (rec, port):
        cfg = _setup(tmp_path, port, subscribers=30, batch=batch)
        first = _publish(cfg, sizes["html"] + 8192)
        assert first.returncode == 1 and "Traceback" not in first.stderr, first.stderr
        (line,) = _problems(first.stderr)
        assert line.startswith(f"Error: cannot write the ledger in {cfg.db_path}: disk I/O error"), line
        rows = _rows(cfg)
        sent = {u for u, (state, _) in rows.items() if state == "sent"}
        in_flight = {u for u, (state, _) in rows.items() if state == "sending"}
        received = rec.recipients()
        assert 0 < len(sent) < 30 and sent <= set(received) and len(in_flight) <= 2 * batch

        second = _publish(cfg)
        assert second.returncode == 0, second.stderr
        got = rec.recipients()
        assert set(got) == set(addresses(30)), "everybody has the week"
        assert {u for u, n in got.items() if n > 1} <= in_flight
        assert all(state == "sent" for state, _ in _rows(cfg).values()) and _published(cfg)


def test_the_daemon_logs_a_full_disk_in_one_line_keeps_running_and_sends_after_the_next_poll(tmp_path):
    """issue #8: publishing from `paperbot run` on a full disk ended in a traceback in the log. Now one error
    line; the daemon goes on, and the round after its next poll writes the message that failed."""
    repo = make_repo(tmp_path / "digest")
    commit_file(repo, "README.md", _digest(3), "2023-02-27T12:00:00+00:00")
    cfg = write_config(tmp_path, None)
    cfg.path.write_text(cfg.path.read_text(encoding="utf-8").replace("[web]\n", '[web]\nlisten = "127.0.0.1:0"\n')
                        + f'\n[[sources]]\nname = "dair"\ngit = "{repo}"\nevery = "1s"\n', encoding="utf-8")
    store = Store.open(cfg.db_path)
    add_subscribers(store, tmp_path, addresses(3))
    store.close()
    outbox = cfg.state_dir / "outbox" / "email" / "dair" / KEY
    outbox.mkdir(parents=True)
    # The first message's temporary file is /dev/full: its write fails with ENOSPC. paperbot removes a file
    # it failed to write (on a real disk that gives the space back), so the next round writes a real one.
    (outbox / "000002-reader1@example.net.eml.tmp").symlink_to("/dev/full")
    log = tmp_path / "daemon.log"
    env = {**os.environ, "PAPERBOT_SECRET_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--config", str(cfg.path), "run"], cwd=tmp_path, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (cfg.db_path.exists() and _published(cfg)):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1, text
    assert (f"publishing stopped: cannot write {outbox}/000002-reader1@example.net.eml: No space left on device "
            "(ENOSPC)") in errors[0]
    rows = _rows(cfg)
    assert all(state == "trial" for state, _ in rows.values()) and rows["reader1@example.net"][1] == 2
    assert sorted(_emls(cfg)) == sorted(addresses(3)) and not any(p.is_symlink() for p in outbox.iterdir())
