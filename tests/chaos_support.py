"""The chaos test's fault schedule and its kills (issue #22), shared by the fake servers and tests/test_chaos.py.

- `draw(seed, server, kind, n)` is the fault of request `n` (counted from 1, per server and per kind of
  request: a create, a read, an SMTP DATA) in the run of `seed`: a pure function, so a seed replays its faults
  exactly whatever order the requests come in. A few faults the issue asks of every run (a 5xx after the post
  is stored, a dropped answer after a create, 429s with resets, SMTP deferrals and drops) are placed by the seed
  among the first requests of their kind (`REQUIRED`); the others fall at random, at `RATE`. Each draw also
  says how long the server takes over the request (`latency`: a create is made, then answered that much
  later), which is what gives a kill a window while the ledger holds a row `sending`.
- `Faults` is what a server holds: the seed and one counter per kind of request; `next(kind)` counts one
  request and returns its draw (None once `stop()` is called: the faults are over).
- `kill_plan(seed, kills)`: for each kill, the channels to kill in the middle of, in the order to try them (the
  first of them with something to send; the first kills: one on each channel, email, X, Discord, Bluesky and
  Mastodon, in the seed's order), how many of its sends to let start first and how long after the last one
  started (the server may have it by then), or (about one kill in seven) a random moment instead.
- `Ledger` watches the SQLite file as the test runs: the rows `sending` now, and which of them are in flight in
  this run (a row's attempt, not a row left `sending` by a run killed before).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SEEDS: list[str] = []  # the seeds of this session's chaos runs, for pytest's summary (tests/conftest.py)
RATE = 0.2  # the share of requests that fail at random, besides the required ones
STALL = 2.0  # seconds a stall holds a request: past the clients' timeout of 1 s
# What may go wrong with each kind of request on each server.
KINDS = {
    ("x", "create"): ("429", "5xx", "stored_5xx", "stall", "drop", "drop_after_create"),
    ("x", "read"): ("429", "5xx", "stall", "drop"),
    ("discord", "create"): ("429", "5xx", "stored_5xx", "stall", "drop", "drop_after_create"),
    ("discord", "read"): ("429", "5xx", "stall", "drop"),
    ("bluesky", "create"): ("429", "5xx", "stored_5xx", "stall", "drop", "drop_after_create"),
    ("bluesky", "read"): ("429", "5xx", "stall", "drop"),
    ("mastodon", "create"): ("429", "5xx", "stored_5xx", "stall", "drop", "drop_after_create"),  # issue #31
    ("mastodon", "read"): ("429", "5xx", "stall", "drop"),
    ("smtp", "data"): ("451", "drop"),
}
# Faults every run has: (kinds, placed among requests 2 .. 1 + within of that kind).
REQUIRED = {
    ("x", "create"): (("stored_5xx", "drop_after_create", "429", "429"), 12),
    ("discord", "create"): (("stored_5xx", "stored_5xx", "drop_after_create", "429"), 8),
    ("bluesky", "create"): (("stored_5xx", "drop_after_create", "429"), 12),  # issue #30
    ("mastodon", "create"): (("stored_5xx", "drop_after_create", "429"), 10),  # issue #31
    ("smtp", "data"): (("451", "drop"), 8),
}
LATENCY = {"create": (0.03, 0.25), "read": (0.0, 0.05), "data": (0.05, 0.3)}  # seconds, from .. to


@dataclass(frozen=True)
class Draw:
    fault: str | None  # one of KINDS, or None: answered as usual
    latency: float  # seconds the server takes (a create: made first, answered this much later)
    wait: float  # a 429's wait in seconds (from 2 to 4)


@cache
def required(seed: int, server: str, kind: str) -> dict[int, str]:
    """Request number -> the fault the run of `seed` must have there."""
    kinds, within = REQUIRED.get((server, kind), ((), 0))
    rng = random.Random(f"{seed}/{server}/{kind}/required")
    return dict(zip(rng.sample(range(2, 2 + within), len(kinds)), kinds, strict=True))


def draw(seed: int, server: str, kind: str, n: int, rate: float = RATE) -> Draw:
    """The fault of request `n` of `kind` on `server` in the run of `seed` (see the module's docstring)."""
    rng = random.Random(f"{seed}/{server}/{kind}/{n}")  # a str seed: the same in every process
    fault = required(seed, server, kind).get(n)
    if rng.random() < rate and fault is None:
        fault = rng.choice(KINDS[(server, kind)])
    lo, hi = LATENCY[kind]
    return Draw(fault, round(rng.uniform(lo, hi), 3), round(rng.uniform(2.0, 4.0), 3))


class Faults:
    """A server's share of the schedule: counts its requests by kind and draws each one's fault."""

    def __init__(self, seed: int, server: str, rate: float = RATE):
        self.seed, self.server, self.rate = seed, server, rate
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, int, str]] = []  # (kind, n, fault) of each fault drawn
        self.on = True
        self.lock = threading.Lock()

    def next(self, kind: str) -> Draw | None:
        with self.lock:
            if not self.on:
                return None
            self.counts[kind] += 1
            d = draw(self.seed, self.server, kind, self.counts[kind], self.rate)
            if d.fault:
                self.log.append((kind, self.counts[kind], d.fault))
            return d

    def stop(self) -> None:
        with self.lock:
            self.on = False


@dataclass(frozen=True)
class Kill:
    prefer: tuple[str, ...]  # the channels to kill in the middle of, first the first that has work
    nth: int  # kill when this many of its sends have started in the run
    lag: float  # seconds from the start of that send to the kill: before the server has it, or after
    delay: float | None  # seconds after the daemon is up: a kill at a random moment instead (None: mid-send)


def kill_plan(seed: int, kills: int, channels: tuple[str, ...]) -> list[Kill]:
    """What each kill of the run of `seed` aims at (see the module's docstring)."""
    rng = random.Random(f"{seed}/kills")
    first = rng.sample(channels, len(channels))
    out = []
    for i in range(kills):
        order = tuple(rng.sample(channels, len(channels)))
        if i < len(first):
            order = (first[i], *(c for c in order if c != first[i]))
        moment = i >= len(first) and rng.random() < 0.15
        nth, lag, delay = rng.randint(1, 2), round(rng.uniform(0.0, 0.2), 3), round(rng.uniform(0.0, 3.0), 3)
        out.append(Kill(order, nth, lag, delay if moment else None))
    return out


class Ledger:
    """A read-only view of the daemon's ledger, polled every few milliseconds."""

    def __init__(self, db: Path):
        self.db = db
        self.conn: sqlite3.Connection | None = None
        self.stale: set[tuple[int, int]] = set()  # (row id, attempts) left `sending` by a killed run

    def _conn(self) -> sqlite3.Connection | None:
        if self.conn is None and self.db.exists():
            self.conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        return self.conn

    def sending(self) -> list[tuple[int, int, str, str, str]]:
        """(id, attempts, channel, week, unit) of each row `sending` now."""
        conn = self._conn()
        if conn is None:
            return []
        try:
            return conn.execute("SELECT id, attempts, channel, week_key, unit FROM deliveries "
                                "WHERE state = 'sending'").fetchall()
        except sqlite3.OperationalError:  # no table yet, or a moment's lock
            return []

    def in_flight(self) -> list[tuple[int, int, str, str, str]]:
        """The rows `sending` now in this run's attempt (not left so by a run killed before)."""
        return [r for r in self.sending() if (r[0], r[1]) not in self.stale]

    def wait_for_sends(self, target: str | None, nth: int, limit: float, alive) -> bool:
        """Wait until `nth` rows of `target` (any channel if None) have started sending in this run; False after
        `limit` seconds or if the daemon exits. A row sent again (after a failure) counts once: the kill then
        comes at a send of its own, not at once on a retry of one that failed."""
        seen: set[int] = set()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and alive():
            for r in self.in_flight():
                if target is None or r[2] == target:
                    seen.add(r[0])
            if len(seen) >= nth:
                return True
            time.sleep(0.003)
        return False

    def after_kill(self) -> list[tuple[int, int, str, str, str]]:
        """The rows that were in flight when the daemon died (read once it is dead: the ledger as it left it);
        they count as stale from now on."""
        rows = self.in_flight()
        self.stale = {(r[0], r[1]) for r in self.sending()}
        return rows

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
