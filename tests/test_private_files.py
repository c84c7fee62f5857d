"""issue #24: files anyone on the machine could read. Under the usual umask 022 main left `state/` 0755 and the
database, its WAL and every outbox `.eml` (the address in its name, the reader's own unsubscribe link inside)
0644, and backups 0644. Now the state folder is 0700 and every file paperbot writes 0600 whatever the umask; an
older, looser folder is tightened at start with a log line; a file it cannot tighten is a warning naming it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from publish_support import SECRET, ready_week, write_config

from bot.channels.email import subscribers as subs
from bot.store import Store


def _run(tmp: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`paperbot ARGS` in a process of its own started with the usual umask 022."""
    return subprocess.run([*prefix, sys.executable, "-m", "bot", "--config", str(tmp / "paperbot.toml"), *args],
                          cwd=tmp, env={**os.environ, "PAPERBOT_SECRET_KEY": SECRET}, capture_output=True,
                          text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))


def _loose(root: Path) -> list[str]:
    """Every path under `root` (itself included) that its group or others may use, with its mode."""
    out = []
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o077:
            out.append(f"{p.relative_to(root.parent)} {stat.S_IMODE(p.stat().st_mode):o}")
    return out


def test_every_file_paperbot_writes_is_private_whatever_the_umask(tmp_path):
    """issue #24: the database (and its WAL/SHM while open), the outbox, the web edition, the unsubscribe
    journal and a backup, all written by processes whose umask is 022."""
    write_config(tmp_path, None)  # no smtp_url: the week goes to the outbox
    state = tmp_path / "state"
    run = _run(tmp_path, "subscribers", "add", "Reader One <reader@example.net>")
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "paperbot.db").stat().st_mode) == 0o600
    old = os.umask(0o022)
    try:
        store = Store.open(state / "paperbot.db")  # a library caller with umask 022: WAL and SHM exist now
        try:
            assert (state / "paperbot.db-wal").exists() and (state / "paperbot.db-shm").exists()
            assert _loose(state) == []
            from bot.channels import load_config
            ready_week(store, load_config(tmp_path / "paperbot.toml"))
            subs.queue_unsubscribe(state / subs.JOURNAL, "gone@example.net", now=datetime.now(UTC), origin="test")
        finally:
            store.close()
    finally:
        os.umask(old)
    run = _run(tmp_path, "publish")
    assert run.returncode == 0, run.stdout + run.stderr
    emls = list((state / "outbox").rglob("*.eml"))
    assert emls and any("reader@example.net" in p.name for p in emls)
    assert list((state / "editions").rglob("*.html")) or list((state / "outbox").rglob("edition.html"))
    assert _loose(state) == []
    run = _run(tmp_path, "backup", str(tmp_path / "backup"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "backup" / "paperbot.db").exists() and _loose(tmp_path / "backup") == []


def test_an_older_loose_state_folder_is_tightened_at_start_with_a_log_line(tmp_path):
    """issue #24: a state folder made by main (0755, files 0644) is made private by the next command."""
    write_config(tmp_path, None)
    state = tmp_path / "state"
    assert _run(tmp_path, "subscribers", "add", "reader@example.net").returncode == 0
    (state / "outbox" / "email").mkdir(parents=True)
    (state / "outbox" / "email" / "000001-reader@example.net.eml").write_bytes(b"To: reader@example.net\r\n")
    for p in [state, *state.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    assert _loose(state)
    run = _run(tmp_path, "status")
    assert run.returncode == 0, run.stderr
    assert "made 6 path(s) readable by their owner only" in run.stderr
    assert _loose(state) == []
    assert "readable by their owner only" not in _run(tmp_path, "status").stderr  # nothing left to say


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to make a file this process does not own")
def test_a_file_it_cannot_tighten_is_a_warning_naming_it_never_a_crash(tmp_path):
    """issue #24: on some container volumes a file belongs to another user: paperbot cannot chmod it (run here
    as root without CAP_FOWNER, as any other user is), warns naming it, tightens the rest and carries on."""
    write_config(tmp_path, None)
    state = tmp_path / "state"
    assert _run(tmp_path, "subscribers", "add", "reader@example.net").returncode == 0
    foreign = state / "outbox" / "email" / "000001-reader@example.net.eml"  # copied in by another user
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"To: reader@example.net\r\n")
    os.chown(foreign, 65534, 65534)
    for p in [state, *state.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    run = _run(tmp_path, "status", prefix=("setpriv", "--inh-caps=-fowner", "--bounding-set=-fowner"))
    assert run.returncode == 0, run.stderr
    assert f"{foreign}: cannot make it private" in run.stderr
    assert _loose(state) == [f"state/outbox/email/{foreign.name} 644"]


def test_only_what_paperbot_keeps_in_a_shared_state_folder_is_changed(tmp_path):
    """issue #24: with `state_dir = "."` the folder also holds the operator's own files: those keep their modes."""
    (tmp_path / "paperbot.toml").write_text('state_dir = "."\n', encoding="utf-8")
    mine = tmp_path / "notes.txt"
    mine.write_text("mine\n")
    mine.chmod(0o644)
    assert _run(tmp_path, "subscribers", "add", "reader@example.net").returncode == 0
    (tmp_path / "outbox").mkdir(mode=0o755)
    (tmp_path / "outbox" / "a.eml").write_bytes(b"To: reader@example.net\r\n")
    (tmp_path / "outbox" / "a.eml").chmod(0o644)
    (tmp_path / "paperbot.db").chmod(0o644)
    assert _run(tmp_path, "status").returncode == 0
    assert stat.S_IMODE(mine.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "paperbot.db").stat().st_mode) == 0o600
    assert _loose(tmp_path / "outbox") == []
