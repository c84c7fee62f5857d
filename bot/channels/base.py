"""What every publishing channel is: render a week into what it sends, then send one unit of it.

The pipeline (bot/publish/pipeline.py, bot/publish/dispatch.py) owns the ledger, retries, rate and
parallelism; a channel only knows its own medium. Its limits are data (`ChannelLimits`), so the pipeline can
honour them without knowing what the medium is.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bot.store import Store, WeekRow
from bot.store.files import write_private


class TransientError(Exception):
    """Try this unit again later (4xx, dropped connection, timeout)."""


class PermanentError(Exception):
    """The remote side refused this unit for good (5xx for a recipient): never retry it."""


class ChannelDown(TransientError):
    """The channel cannot send anything right now (cannot connect, log in, or the sender is refused)."""


class MessageRefused(ChannelDown):
    """The remote side refused the message itself, not its recipient (an SMTP 5xx to DATA: spam filter, size,
    policy). Never a bounce: when it repeats across recipients it stops the run like a channel that is down,
    and the rows stay `failed` for the operator to look at and the next run to retry."""


class RateLimited(TransientError):
    """The remote side says: nothing more before `until` (UTC). The pipeline records it on the channel in the
    database, so no process sends on the channel before then, and the daemon comes back at `until`."""

    def __init__(self, message: str, until: datetime):
        super().__init__(message)
        self.until = until


class Uncertain(Exception):
    """The request went out and no usable answer came back (a dropped connection, a 5xx to a create, a read
    timeout): the unit may have been delivered. On an ordered channel the pipeline never resends it blindly: it
    asks the sender to `reconcile` first. `resend_if_missing` is False when the remote side said it has the
    unit already (X's 403 "duplicate content"): if reconciling cannot find it, only the operator can settle it."""

    def __init__(self, message: str, *, resend_if_missing: bool = True):
        super().__init__(message)
        self.resend_if_missing = resend_if_missing


class RenderError(RuntimeError):
    """A template could not be rendered; the message names the template and the problem."""


class StorageError(Exception):
    """A local write failed: the outbox, a web edition, the signing key or the state database (disk full,
    read-only, no permission). Not the remote side's fault, and retrying it within seconds helps nothing: the
    run stops, no row is marked sent that was not written, and the next run resumes. The message is one line
    for the operator: what failed, which path, the system's reason."""


def storage_error(e: OSError | sqlite3.Error, action: str, path: Path | str | None) -> StorageError:
    """`cannot <action> <path>: <reason> (<ERRNO or SQLite code>)` from an OSError or a SQLite error."""
    if isinstance(e, OSError):
        reason = e.strerror or str(e) or type(e).__name__
        code = errno.errorcode.get(e.errno or 0, "")
    else:
        reason, code = str(e) or type(e).__name__, getattr(e, "sqlite_errorname", "")
    where = f" {path}" if path else ""
    return StorageError(f"cannot {action}{where}: {reason}" + (f" ({code})" if code else ""))


def write_file(path: Path, data: bytes) -> None:
    """Atomically (a whole file or none). A full disk or a read-only folder is a StorageError naming `path`;
    the partial temporary file is removed, so it takes no space and is never mistaken for a message."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(tmp, data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise storage_error(e, "write", path) from e


@dataclass(frozen=True)
class ChannelLimits:
    connections: int = 1  # units sent in parallel, each worker with its own reused connection
    rate: float = 0.0  # units per second across all workers; 0 = no cap
    max_attempts: int = 4  # tries per unit within one publish run; then `failed` until the next run
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    backoff_max: float = 60.0
    down_after: int = 5  # consecutive ChannelDown errors that stop the run
    max_size: int = 0  # the largest sensible rendered unit in bytes (informative; 0 = none)
    daily_budget: int = 0  # units per rolling 24 hours on this channel, counted from the ledger; 0 = none
    delay: float = 0.0  # seconds between two units of an ordered chain
    batch: int = 1  # units marked `sending` in one commit per connection, their `sent` in the next (issue #27)


@dataclass(frozen=True)
class Unit:
    """One thing to send: for email, one subscriber. `key` is unique within a week and channel."""

    key: str
    ref: str | None = None  # the channel's own id for it (subscriber id, "sample", post index)
    row_id: int = 0  # the ledger row, once planned
    prior: tuple[str, ...] = ()  # an ordered channel's chain: the remote ids of the units before this one


class Sender(Protocol):
    """One worker's connection. Not shared between threads."""

    def send(self, unit: Unit) -> str:
        """Send one unit; return its remote id. Raise TransientError (RateLimited, ChannelDown) or
        PermanentError to say why not, or Uncertain when it may have gone out anyway."""

    def close(self) -> None: ...


class OutboxSender:
    """A trial of a thread channel (X, Mastodon): each unit's request body, as `body(unit)` gives it, goes to
    `folder/NN.json`; the "ids" are `outbox-N`, and a file already written reconciles as sent."""

    def __init__(self, body: Callable[[Unit], Any], folder: Path):
        self.body, self.folder = body, folder

    def _path(self, unit: Unit) -> Path:
        return self.folder / f"{int(unit.ref or 0):02d}.json"

    def send(self, unit: Unit) -> str:
        write_file(self._path(unit), json.dumps(self.body(unit), ensure_ascii=False, indent=2).encode("utf-8"))
        return f"outbox-{int(unit.ref or 0)}"

    def reconcile(self, unit: Unit) -> str | None:
        return f"outbox-{int(unit.ref or 0)}" if self._path(unit).exists() else None

    def close(self) -> None:
        pass


class ChainSender(Sender, Protocol):
    """The sender of an ordered channel, which can read back what it sent."""

    def reconcile(self, unit: Unit) -> str | None:
        """After an Uncertain outcome (or a row found `sending` after a kill): the remote id of the unit if it
        was delivered, None if it certainly was not (so it is sent). Raise TransientError (or RateLimited)
        when it cannot tell: the row stays `uncertain` and the chain waits."""

    # Optional: `reads_back(unit) -> bool`, False when `reconcile` cannot look at all (a Discord webhook alone):
    # its None then means "not known", and the unit sent again is marked a possible duplicate (issue #21).
    # A sender without it reads back (X, the outbox).


class Channel(Protocol):
    name: str
    limits: ChannelLimits
    live: bool
    """True when units reach real people (email with `smtp_url`). False when they only go to a local folder
    (the outbox: email without `smtp_url`; later X or Discord without credentials): a trial, which the ledger
    records as `trial`, never `sent`, and which leaves the week ready (README "Trial runs")."""
    ordered: bool
    """True for a chain (a thread on X): units go one at a time in plan order, each `send` given the remote ids
    of the units before it (`Unit.prior`); a failure stops the chain. False (email): in parallel, any order."""
    audience: str
    """Who the units go to, for messages such as "published to nobody: no active subscribers"."""

    def plan(self, store: Store, week: WeekRow) -> Sequence[Unit]:
        """Who or what should receive this week right now (for email: the active subscribers)."""

    def render(self, store: Store, week: WeekRow, *, dry: bool = False) -> Any:
        """Everything that is the same for every unit of the week. Writes nothing; with `dry`, creates
        nothing either (no signing key: a preview or a dry run must leave the state folder as it was)."""

    def prepare(self, rendition: Any) -> None:
        """Write what the week needs before its first unit goes out (the web edition, say)."""

    def open_sender(self, rendition: Any) -> Sender:
        """A sender for one worker thread; it connects lazily and reuses its connection."""

    def on_permanent(self, store: Store, unit: Unit, error: str, now: datetime) -> None:
        """A unit was refused for good (an email bounce): tell whoever keeps the list."""

    def preview(self, store: Store, week: WeekRow, out: Path | None) -> list[str]:
        """Render the week without changing any state; write files under `out`; return lines to show."""


class EditorCopy(Protocol):
    """A channel that can send one test copy of a week to an address (the editor's, under `[publish] approve`):
    email. Reached through the registry (`bot.channels.make`), so publishing never names a concrete channel."""

    def send_copy(self, store: Store, week: WeekRow, address: str, *, approval: dict | None = None) -> str:
        """Send one copy of `week` to `address`, recording nothing; return a line saying where it went. With
        `approval` (the approve/skip commands), the editor's approval copy. Raises TransientError/PermanentError,
        Uncertain, StorageError or RenderError."""
