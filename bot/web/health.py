"""Is the daemon alive and working? The heartbeat it writes, and the verdict `GET /healthz` answers.

The daemon rewrites one `heartbeat` row from its main loop every few seconds (`Heartbeat`); the web app reads
it with the sources' poll times and the channels' ledger (`read`), and `verdict` (pure) decides: unhealthy
when the heartbeat is older than `[health] max_heartbeat_age` (the loop is stuck, or the daemon is gone or
stopped), or when every source has failed in a row for longer than `max_failing_age`. Both live in the
database, so a web app run by `paperbot serve` in another process answers exactly like the daemon's own.
What it shows is meant for a monitor: ages, counts and times, never an error text, an address or a secret.
Anyone gets `{"status": "ok"}` or `{"status": "degraded"}` alone (issue #24: the pid, start time and source
names are the operator's); the details go to a request with `Authorization: Bearer $PAPERBOT_HEALTH_TOKEN`, or
from a loopback peer whose request carries no forwarding header (`paperbot health` on the same machine).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Config, HealthSettings

log = logging.getLogger(__name__)

TOKEN_ENV = "PAPERBOT_HEALTH_TOKEN"
FORWARDING = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host", "X-Forwarded-Proto")
DAEMON = "daemon"  # the heartbeat row of `paperbot run`
BEAT_MIN, BEAT_MAX = 0.25, 30.0  # seconds between two heartbeats, at least and at most
WATCHED = ("sending", "failed", "uncertain", "refused")  # the delivery states /healthz counts per channel


def beat_every(settings: HealthSettings) -> float:
    """Four heartbeats per `max_heartbeat_age` (one late write is no alarm), within [BEAT_MIN, BEAT_MAX]."""
    return min(BEAT_MAX, max(BEAT_MIN, settings.max_heartbeat_age / 4))


class Heartbeat:
    """The daemon's heartbeat row, on a connection of its own.

    A write waits at most a second for the database lock and is skipped if it does not get it (the next one
    will come): a heartbeat must never hold up the loop it vouches for. Writes are not fsynced one by one
    (`synchronous = NORMAL`): a heartbeat lost to a power cut is worth nothing anyway."""

    def __init__(self, db_path: Path, name: str = DAEMON):
        self.name = name
        self.conn = sqlite3.connect(db_path, timeout=1.0, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self._failing = False

    def _write(self, sql: str, args: list) -> bool:
        try:
            self.conn.execute(sql, args)
        except sqlite3.Error as e:
            if not self._failing:  # once per run of failures, not every few seconds
                log.warning("cannot write the daemon's heartbeat (%s); /healthz will call it stuck if this lasts", e)
            self._failing = True
            return False
        self._failing = False
        return True

    def start(self, now: datetime) -> bool:
        return self._write("INSERT INTO heartbeat (name, pid, started_at, beat_at, stopped_at) VALUES (?, ?, ?, ?, "
                           "NULL) ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, started_at = "
                           "excluded.started_at, beat_at = excluded.beat_at, stopped_at = NULL",
                           [self.name, os.getpid(), _iso(now), _iso(now)])

    def beat(self, now: datetime) -> bool:
        return self._write("UPDATE heartbeat SET beat_at = ? WHERE name = ? AND pid = ?",
                           [_iso(now), self.name, os.getpid()])

    def stopped(self, now: datetime) -> bool:
        """A clean stop: /healthz then says "stopped" rather than "stuck"."""
        return self._write("UPDATE heartbeat SET beat_at = ?, stopped_at = ? WHERE name = ? AND pid = ?",
                           [_iso(now), _iso(now), self.name, os.getpid()])

    def close(self) -> None:
        self.conn.close()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SourceHealth:
    name: str
    last_success: datetime | None  # the last poll that worked (changed or not)
    failing_since: datetime | None  # the first of the failed polls in a row, None if the last poll worked
    errors: int  # failed polls in a row


@dataclass(frozen=True)
class ChannelHealth:
    name: str
    counts: dict[str, int] = field(default_factory=dict)  # WATCHED state -> deliveries
    rate_limited_until: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """What /healthz looks at, read in one go."""

    pid: int | None  # None: no daemon ever wrote a heartbeat here
    started_at: datetime | None
    beat_at: datetime | None
    stopped_at: datetime | None
    sources: tuple[SourceHealth, ...]
    channels: tuple[ChannelHealth, ...]


def read(conn: sqlite3.Connection, cfg: Config) -> Snapshot:
    """The heartbeat, the configured sources' poll times and the channels' ledger, in one read transaction."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        beat = conn.execute("SELECT pid, started_at, beat_at, stopped_at FROM heartbeat WHERE name = ?",
                            [DAEMON]).fetchone()
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT name, last_polled, failing_since, error_count FROM sources")}
        counts: dict[str, dict[str, int]] = {}
        for channel, state, n in conn.execute(
                f"SELECT channel, state, count(*) FROM deliveries WHERE state IN ({', '.join('?' * len(WATCHED))})"
                " GROUP BY channel, state", list(WATCHED)):
            counts.setdefault(channel, {})[state] = n
        limits = {r[0]: _time(r[1]) for r in conn.execute("SELECT channel, until FROM channel_state")}
    finally:
        if own:
            conn.execute("COMMIT")
    sources = []
    for src in cfg.sources:  # what the config watches now; a source removed from it no longer counts
        polled, failing, errors = rows.get(src.name, (None, None, 0))
        sources.append(SourceHealth(src.name, _time(polled), _time(failing) if errors else None, errors or 0))
    channels = tuple(ChannelHealth(name, {s: counts.get(name, {}).get(s, 0) for s in WATCHED}, limits.get(name))
                     for name in sorted(set(counts) | set(limits)))
    pid, started, beat_at, stopped = beat if beat else (None, None, None, None)
    return Snapshot(pid, _time(started), _time(beat_at), _time(stopped), tuple(sources), channels)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 1)


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def verdict(snap: Snapshot, settings: HealthSettings, now: datetime) -> tuple[bool, dict]:
    """(healthy, the JSON body). Unhealthy when the daemon's heartbeat is missing, stopped or older than
    `max_heartbeat_age`, or when there are sources and every one has failed in a row for over `max_failing_age`."""
    problems = []
    beat_age = _age(now, snap.beat_at)
    if snap.beat_at is None:
        problems.append("no daemon heartbeat: `paperbot run` has not run on this state folder")
    elif snap.stopped_at is not None:
        problems.append(f"the daemon (pid {snap.pid}) stopped {_age(now, snap.stopped_at):g}s ago")
    elif beat_age > settings.max_heartbeat_age:
        problems.append(f"the daemon's heartbeat (pid {snap.pid}) is {beat_age:g}s old, over "
                        f"{_span(settings.max_heartbeat_age)}: its loop is stuck or it is gone")
    failing = [s for s in snap.sources if s.failing_since is not None
               and (now - s.failing_since).total_seconds() > settings.max_failing_age]
    if snap.sources and len(failing) == len(snap.sources):
        problems.append(f"every source has failed for over {_span(settings.max_failing_age)}")
    body = {
        "status": "unhealthy" if problems else "ok",
        "problems": problems,
        "daemon": {"pid": snap.pid, "heartbeat_age": beat_age, "started_at": _show(snap.started_at),
                   "stopped_at": _show(snap.stopped_at)},
        "sources": {s.name: {"last_success_age": _age(now, s.last_success),
                             "failing_for": _age(now, s.failing_since), "errors_in_a_row": s.errors}
                    for s in snap.sources},
        "channels": {c.name: {**c.counts, "rate_limited_until": _show(c.rate_limited_until)
                              if c.rate_limited_until and c.rate_limited_until > now else None}
                     for c in snap.channels},
    }
    return not problems, body


def _show(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds")


def may_see_details(peer: str | None, headers: dict[str, str] | object, token: str | None) -> bool:
    """Whether a /healthz request gets the details: it holds the token (when one is set), or it comes from
    a loopback peer with no forwarding header (a proxy on the same machine forwards strangers). Pure."""
    auth = headers.get("Authorization", "") if hasattr(headers, "get") else ""
    if token and isinstance(auth, str) and hmac.compare_digest(auth.encode(), f"Bearer {token}".encode()):
        return True
    if any(h in headers for h in FORWARDING):
        return False
    try:
        addr = ipaddress.ip_address((peer or "").strip("[]"))
    except ValueError:
        return False
    addr = getattr(addr, "ipv4_mapped", None) or addr
    return addr.is_loopback


def anonymous(ok: bool) -> dict:
    """What anyone may know: ok or degraded, nothing else."""
    return {"status": "ok" if ok else "degraded"}
