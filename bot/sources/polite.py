"""Fetching from arXiv as its API terms ask (#32): at most one request every three seconds, one connection at a time,
across everything paperbot fetches there: the enrichment's API calls and any `feed` source on arxiv.org, in every
thread and every process sharing the state folder (the daemon, `paperbot enrich`, `paperbot poll`).

The gate is a file in the state folder: holding its lock is holding arXiv's one connection, and it records when the
last request started. The clock and the sleep are arguments, so a test can run many requests through the real
three-second spacing without waiting for it.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

INTERVAL = 3.0  # seconds between the starts of two requests to arXiv (its API's terms of use)
ARXIV_HOSTS = frozenset({"arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org"})


class SpacingGate:
    """One request at a time, each starting at least `interval` seconds after the one before."""

    def __init__(self, path: Path | None, interval: float = INTERVAL, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.path, self.interval, self.clock, self.sleep = path, interval, clock, sleep
        self._lock = threading.Lock()
        self._last = 0.0  # without a file: this process only

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for arXiv's turn, then hold it for one request."""
        with self._lock:
            if self.path is None:
                self._wait(self._last)
                self._last = self.clock()
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+", encoding="ascii") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # other processes: the daemon, `paperbot enrich`
                f.seek(0)
                try:
                    last = float(f.read().strip() or 0)
                except ValueError:
                    last = 0.0
                self._wait(last)
                f.seek(0)
                f.truncate()
                f.write(repr(self.clock()))
                f.flush()
                yield

    def _wait(self, last: float) -> None:
        wait = last + self.interval - self.clock()
        if wait > 0:
            log.debug("arXiv: waiting %.1fs for the next request", wait)
            self.sleep(min(wait, self.interval))


class PoliteHosts:
    """The gate to pass through before a request to a host that asks for one: arXiv's, plus the configured API's
    own host (a mirror, or a test's local server)."""

    def __init__(self, gate: SpacingGate, extra_hosts: tuple[str, ...] = ()):
        self.gate = gate
        self.hosts = ARXIV_HOSTS | {h.lower() for h in extra_hosts if h}

    def __call__(self, url: str) -> AbstractContextManager[None]:
        host = (urlsplit(url).hostname or "").lower()
        return self.gate.slot() if host in self.hosts else nullcontext()


def arxiv_gate(state_dir: Path, api_base: str) -> PoliteHosts:
    """The gate every fetch of this state folder shares (bot/sources/poll.py and enrich.py build it)."""
    return PoliteHosts(SpacingGate(state_dir / "arxiv.gate"), (urlsplit(api_base).hostname or "",))
