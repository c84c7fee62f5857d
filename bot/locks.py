"""Advisory file locks (fcntl.flock): one daemon per state folder, one poll of a source at a time.

flock locks belong to an open file, so the kernel drops them when the process dies however it dies: a crashed
daemon never leaves a stale lock behind that an operator has to delete by hand.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockBusy(Exception):
    """Someone else holds the lock; the message says who, when the holder wrote its pid."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def acquire(path: Path, wait: float = 0.0) -> int:
    """Lock `path` (created if needed) and write our pid into it; return the fd to keep it held.

    Waits up to `wait` seconds for another holder to let go, then raises LockBusy.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # issue #24: nothing in the state folder is public
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                who = _holder(fd)
                os.close(fd)
                raise LockBusy(f"{path} is held by another paperbot process{who}") from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release(fd: int) -> None:
    """Let go of a lock taken by `acquire` (the file stays; only the lock matters)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def held(path: Path, wait: float = 0.0) -> Iterator[None]:
    fd = acquire(path, wait)
    try:
        yield
    finally:
        release(fd)


def holder(path: Path) -> int | None:
    """The pid of the process holding the lock at `path` (0 if it wrote none), or None when nobody holds it.

    Asks with a shared lock that is let go at once, so it never creates the file and never keeps anyone out
    for more than that instant: `paperbot status` and `serve` use it to tell whether a daemon is running."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
