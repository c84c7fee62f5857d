"""Who holds a TCP port (issue #25, finding 11): a web app that cannot listen names the process in its way.

Linux only, from /proc: the listening socket's inode in /proc/net/tcp{,6}, then the process whose open files
hold that socket. Another user's processes cannot be read; then only that something listens is known.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def _inodes(port: int, proc: Path) -> set[str]:
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            if len(parts) > 9 and parts[3] == _LISTEN and int(parts[1].rsplit(":", 1)[1], 16) == port:
                found.add(parts[9])
    return found


def holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """`paperbot run (pid 4242)`, say: the process listening on `port`; "a process of another user" when it
    cannot be read; None when nothing is found listening (or this is not Linux)."""
    inodes = _inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in (p for p in os.listdir(proc) if p.isdigit()):
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / pid / "fd" / fd) in wanted:
                    return f"{_command(proc, pid)} (pid {pid})"
            except OSError:
                continue
    return "a process of another user"


def _command(proc: Path, pid: str) -> str:
    try:
        args = (proc / pid / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "a process"
    words = [a.decode(errors="replace") for a in args if a]
    if len(words) >= 3 and words[1:3] == ["-m", "bot"]:  # python -m bot …: paperbot itself
        words = ["paperbot", *words[3:]]
    elif words and Path(words[0]).name.startswith("python") and len(words) > 1 and words[1].endswith("paperbot"):
        words = ["paperbot", *words[2:]]
    elif words:
        words[0] = Path(words[0]).name
    text = " ".join(words)
    return text if len(text) <= 80 else text[:79] + "…"


def in_use(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno == errno.EADDRINUSE


def taken_message(listen: str, port: int) -> str:
    """What to say when `[web] listen` is taken: who holds it, and what to do."""
    who = holder(port)
    return (f"port {port} ([web] listen = {listen!r}) is taken" + (f" by {who}" if who else "")
            + "; stop that process or set another [web] listen")
