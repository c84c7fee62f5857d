"""Private files (issue #24): the state folder holds subscribers' addresses, their personal unsubscribe links (in
every outbox `.eml`) and the signing key, so it is the owner's alone, whatever the umask.

The folder is 0700 and every file paperbot writes 0600: `paperbot` sets its umask to 077 as it starts (so the
database, its WAL and SHM, the outbox, the editions, the journal and the backups are created private by
anyone), `write_private` creates a file 0600 itself for callers outside the command line, and `tighten` takes
the group's and others' bits off a state folder made before (once per process and folder, at the first
`Store.open`), with one log line saying how many paths it changed. A path it cannot change (another owner, as
on some container volumes) is a warning naming it, never a crash.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700
_tightened: set[Path] = set()
# What paperbot writes into a state folder (besides the database and its companions): only these are walked,
# so a state_dir shared with other files (state_dir = ".") never has someone else's files changed.
OURS = frozenset({"git", "http", "locks", "outbox", "editions", "secret.key", "unsubscribe-queue.jsonl",
                  "paperbot.lock"})


def private_umask() -> None:
    """Files and folders this process creates from now on are its owner's alone."""
    os.umask(UMASK)


def _tighten_one(path: Path, failed: list[str]) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:  # sent and removed while we walked
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return False
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
    except OSError as e:
        failed.append(str(path))
        log.warning("%s: cannot make it private (mode %o; %s): anyone on this machine may read it; change its "
                    "owner or mode by hand", path, stat.S_IMODE(st.st_mode), e.strerror or e)
        return False
    return True


def tighten(folder: Path, *, db_name: str | None = None, again: bool = False) -> list[str]:
    """Take group and other permissions off `folder` and what paperbot keeps in it (with `db_name`: the
    database, its companions and `OURS`, recursively; without: everything), symlinks left alone. Returns the
    paths it could not change, each already logged as a warning. Once per process and folder unless `again`."""
    folder = Path(folder)
    key = folder.resolve()
    if key in _tightened and not again:
        return []
    _tightened.add(key)
    failed: list[str] = []
    changed = int(_tighten_one(folder, failed))
    for root, dirs, names in os.walk(folder):
        if db_name is not None and Path(root) == folder:
            dirs[:] = [d for d in dirs if d in OURS]
            names = [n for n in names if n in OURS or n.startswith(db_name)]
        for name in dirs + names:
            changed += _tighten_one(Path(root) / name, failed)
    if changed:
        log.warning("%s: made %d path(s) readable by their owner only (the state folder holds subscribers' "
                    "addresses and links)", folder, changed)
    return failed


def make_private(*paths: Path) -> None:
    """chmod each existing path to 0600 (a file) or 0700 (a folder); a failure is a warning, not an error."""
    failed: list[str] = []
    for p in paths:
        if os.path.lexists(p):
            _tighten_one(Path(p), failed)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new or truncated file at `path`, mode 0600 whatever the umask. OSError to the caller."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through O_CREAT
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
