"""Newsletter subscribers in SQLite: states, the unsubscribe journal, confirmations, CSV import and export.

An address is stored normalised (surrounding space stripped, domain lower-cased; the local part keeps its
case, as RFC 5321 lets the receiving server decide). One mailbox is one subscriber (issue #24): every lookup
goes by the mailbox key (`lower(address)`, unique in the database), the spelling first given is kept for
delivery, and an unsubscribe applies to the mailbox. States: `pending`, `active`, `unsubscribed`, `bounced`.
Unsubscribed and bounced rows are kept rather than deleted, so a later CSV import (INSERT OR IGNORE) cannot
put them back on the list; only an explicit `add` by the operator reactivates an address. What makes an address
valid is bot/channels/email/addresses.py.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from bot.channels.email.addresses import InvalidAddress as InvalidAddress
from bot.channels.email.addresses import cap_key, clean_name, display_name, mailbox_key, normalize_address
from bot.store import Store, iso

log = logging.getLogger(__name__)

STATES = ("pending", "active", "unsubscribed", "bounced")


class CsvFormatError(ValueError):
    """The CSV file as a whole cannot be read (no header, no `email` column)."""


@dataclass(frozen=True)
class ImportReport:
    added: int = 0
    already: int = 0  # in the database already, or repeated in the file
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line in the file, reason)


def _row(store: Store, address: str) -> dict | None:
    """The subscriber of `address`'s mailbox, whatever the spelling stored."""
    rows = list(store.db["subscribers"].rows_where("lower(address) = ?", [mailbox_key(address)]))
    return rows[0] if rows else None


def delivery_address(store: Store, address: str) -> str | None:
    """The spelling mail to `address`'s mailbox goes to (the one stored), or None if it is not listed."""
    row = _row(store, address)
    return row["address"] if row else None


def state_of(store: Store, address: str) -> str | None:
    """The state of `address`'s mailbox, or None if it is not listed."""
    row = _row(store, address)
    return row["state"] if row else None


def add(store: Store, address: str, *, origin: str, now: datetime, state: str = "active",
        name: str | None = None) -> int:
    """Add `address` (or bring it back to `state` if it is there in another state); returns its id.

    This is the operator's explicit act, so it also reactivates an unsubscribed or bounced address. The name
    is `name`, else the one in `Name <addr>` (issue #14: it was dropped); a name given replaces the stored one.
    """
    if state not in STATES:
        raise ValueError(f"state {state!r} must be one of {', '.join(STATES)}")
    name = clean_name(name) if name is not None else display_name(address)
    address = normalize_address(address)
    with store.atomic():
        row = _row(store, address)
        if row is None:
            return store.db["subscribers"].insert(
                {"address": address, "state": state, "created_at": iso(now), "updated_at": iso(now),
                 "origin": origin, "reason": None, "name": name}).last_pk
        if name and name != row.get("name"):
            store.db["subscribers"].update(row["id"], {"name": name, "updated_at": iso(now)})
        if row["state"] != state:
            log.info("subscriber %d: %s -> %s (added again by %s)", row["id"], row["state"], state, origin)
            store.db["subscribers"].update(row["id"], {"state": state, "updated_at": iso(now),
                                                       "reason": f"added again via {origin}"})
        return row["id"]


def remove(store: Store, address: str) -> bool:
    """Erase the address completely (e.g. on a deletion request). True if it was there."""
    address = normalize_address(address)
    with store.atomic():
        cur = store.db.execute("DELETE FROM subscribers WHERE lower(address) = ?", [mailbox_key(address)])
        return cur.rowcount > 0


def _set_state(store: Store, address: str, state: str, now: datetime, reason: str) -> bool:
    try:
        key = mailbox_key(address)
    except InvalidAddress:
        return False
    with store.atomic():
        cur = store.db.execute(
            "UPDATE subscribers SET state = ?, updated_at = ?, reason = ? WHERE lower(address) = ? AND state != ?",
            [state, iso(now), reason, key, state])
        return cur.rowcount > 0


def unsubscribe(store: Store, address: str, *, now: datetime, origin: str) -> bool:
    """Stop mail to `address`. True if that changed something (False: unknown, or unsubscribed already)."""
    changed = _set_state(store, address, "unsubscribed", now, f"unsubscribed via {origin}")
    if changed:
        log.info("unsubscribed one address via %s", origin)
    return changed


JOURNAL = "unsubscribe-queue.jsonl"  # in state_dir: unsubscribes the web app could not write yet


def queue_unsubscribe(journal: Path, address: str, *, now: datetime, origin: str, ref: str | None = None) -> None:
    """Append an unsubscribe to `journal` and fsync it, for when the database is locked too long to wait.

    `apply_queued` makes it real as soon as it can; the request is durable once this returns (the caller
    only then tells the reader it worked). OSError (a full disk) goes to the caller.
    """
    entry = {"address": address, "at": iso(now), "origin": origin} if ref is None else \
        {"ref": ref, "at": iso(now), "origin": origin}  # a new-form link: its address is not known here
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    journal.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # also releases the flock


def apply_queued(store: Store, journal: Path) -> int:
    """Apply every unsubscribe queued in `journal` in one transaction, then empty it. Returns how many.

    The journal stays locked (flock) from reading to emptying, so an unsubscribe queued meanwhile is never
    dropped; sqlite3.OperationalError (still locked) leaves the journal as it was, for the next attempt.
    """
    try:
        fd = os.open(journal, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        entries, keep = [], []
        for n, line in enumerate(data.splitlines(keepends=True), 1):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("cut short")
                e = json.loads(line)
                address = e["address"] if "address" in e else address_for_ref(store, e["ref"])
                if address is None:  # a ref the web app has not mapped yet (it fills refs, then applies)
                    keep.append(line)
                    continue
                entries.append((address, datetime.fromisoformat(e["at"]), e["origin"]))
            except (ValueError, KeyError, TypeError) as exc:  # a crash mid-append: that request was never answered
                log.warning("%s:%d: unreadable queued unsubscribe skipped (%s)", journal, n, exc)
        if entries:
            with store.atomic():
                for address, at, origin in entries:
                    unsubscribe(store, address, now=at, origin=origin)
            log.info("applied %d queued unsubscribe(s)", len(entries))
        if data:
            os.ftruncate(fd, 0)
            if keep:
                os.pwrite(fd, b"".join(keep), 0)
            os.fsync(fd)
        return len(entries)
    finally:
        os.close(fd)


def address_for_ref(store: Store, ref: str) -> str | None:
    """The address behind a link's ref; a spelling merged into another (issue #24) still names its mailbox."""
    row = store.db.execute("SELECT address FROM subscribers WHERE ref = ?", [ref]).fetchone()
    if row is None:
        row = store.db.execute("SELECT address FROM subscriber_merges WHERE ref = ?", [ref]).fetchone()
    return row[0] if row else None


def fill_refs(store: Store, make_ref: Callable[[str], str]) -> int:
    """Give every subscriber without one its opaque link ref (`make_ref(address)`, keyed). Returns how many.

    Refs depend on the signing key, which the database never holds, so whoever has the key fills them:
    the web app, at start and whenever a link's ref is not found (an address added by the CLI since)."""
    missing = store.db.execute("SELECT id, address FROM subscribers WHERE ref IS NULL").fetchall()
    merged = store.db.execute("SELECT id, address FROM subscriber_merges WHERE ref IS NULL").fetchall()
    if not missing and not merged:
        return 0
    with store.atomic():
        store.db.conn.executemany("UPDATE subscribers SET ref = ? WHERE id = ? AND ref IS NULL",
                                  [(make_ref(a), i) for i, a in missing])
        store.db.conn.executemany("UPDATE subscriber_merges SET ref = ? WHERE id = ? AND ref IS NULL",
                                  [(make_ref(a), i) for i, a in merged])
    return len(missing)


def request_confirmation(store: Store, address: str, *, now: datetime, ttl: timedelta, per_day: int,
                         nonce: str) -> str | None:
    """Record a double opt-in request for `address` (normalised): "confirm" if a confirmation email should go,
    "already" if the mailbox is active (a "you are subscribed already" email), None past the cap.

    A new mailbox is stored as `pending` with the spelling given; an unsubscribed or bounced one keeps its
    state until it confirms. Every case but the cap writes one confirmations row (for an active mailbox, one
    used already, which no link can use), so each costs the same and the page reveals nothing about who is
    subscribed (issue #24). The cap, `per_day` emails in 24 hours, counts the mailbox with any `+tag`
    removed, so case spellings and tags of one inbox share it."""
    key = cap_key(address)
    with store.atomic():
        row = _row(store, address)
        sent = store.db.execute("SELECT count(*) FROM confirmations WHERE mailbox = ? AND created_at > ?",
                                [key, iso(now - timedelta(days=1))]).fetchone()[0]
        if sent >= per_day:
            log.info("confirmation not sent: %d already in the last 24 hours for that mailbox", sent)
            return None
        if row is None:
            store.db["subscribers"].insert({"address": address, "state": "pending", "created_at": iso(now),
                                            "updated_at": iso(now), "origin": "web", "reason": None})
        already = row is not None and row["state"] == "active"
        store.db["confirmations"].insert({"nonce": nonce, "address": address, "created_at": iso(now),
                                          "expires_at": iso(now + ttl), "used_at": iso(now) if already else None,
                                          "mailbox": key})
        return "already" if already else "confirm"


def purge_pending(store: Store, *, now: datetime, keep: timedelta) -> int:
    """Delete pending subscribers whose last confirmation link expired more than `keep` ago, with their
    confirmations (issue #24: third parties' addresses typed into the form do not pile up). Returns how many."""
    cutoff = iso(now - keep)
    with store.atomic():
        last = dict(store.db.execute(
            "SELECT lower(address), max(expires_at) FROM confirmations GROUP BY lower(address)").fetchall())
        stale = [(sid, key) for sid, key in store.db.execute(
            "SELECT id, lower(address) FROM subscribers WHERE state = 'pending'").fetchall()
            if key in last and last[key] <= cutoff]  # one format (iso), so the strings order as the times
        for sid, key in stale:
            store.db.execute("DELETE FROM confirmations WHERE lower(address) = ?", [key])
            store.db.execute("DELETE FROM subscribers WHERE id = ?", [sid])
    if stale:
        log.info("deleted %d pending subscriber(s) never confirmed ([web] pending_ttl)", len(stale))
    return len(stale)


def confirm(store: Store, nonce: str, *, now: datetime) -> tuple[str, str | None]:
    """Use confirmation `nonce`: ("confirmed", address), or ("unknown" | "used" | "expired", None) with
    nothing changed."""
    with store.atomic():
        rows = store.db.execute("SELECT address, expires_at, used_at FROM confirmations WHERE nonce = ?",
                                [nonce]).fetchall()
        if not rows:
            return "unknown", None
        address, expires, used = rows[0]
        if used:
            return "used", None
        if datetime.fromisoformat(expires) <= now:
            return "expired", None
        store.db.execute("UPDATE confirmations SET used_at = ? WHERE nonce = ?", [iso(now), nonce])
        row = _row(store, address)
        if row is None:  # erased since (a deletion request): confirming brings it back as asked
            store.db["subscribers"].insert({"address": address, "state": "active", "created_at": iso(now),
                                            "updated_at": iso(now), "origin": "web", "reason": "confirmed"})
        else:
            address = row["address"]  # the spelling mail goes to
            if row["state"] != "active":
                store.db["subscribers"].update(row["id"], {"state": "active", "updated_at": iso(now),
                                                           "reason": "confirmed via web"})
        log.info("a subscriber confirmed via web")
        return "confirmed", address


def mark_bounced(store: Store, address: str, *, now: datetime, reason: str) -> bool:
    """Stop mail to an address the mail system rejects for good. True if that changed something."""
    return _set_state(store, address, "bounced", now, reason)


def active(store: Store) -> list[tuple[int, str]]:
    """(id, address) of everyone to mail, in the order they joined."""
    return [(r[0], r[1]) for r in store.db.execute(
        "SELECT id, address FROM subscribers WHERE state = 'active' ORDER BY id").fetchall()]


def count(store: Store, state: str | None = None) -> int:
    if state is None:
        return store.db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
    return store.db.execute("SELECT count(*) FROM subscribers WHERE state = ?", [state]).fetchone()[0]


def rows(store: Store, state: str | None = None) -> list[dict]:
    """Every stored field, ordered by id, for listings."""
    if state is None:
        return list(store.db["subscribers"].rows_where(order_by="id"))
    return list(store.db["subscribers"].rows_where("state = ?", [state], order_by="id"))


def _records(f: TextIO) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(f)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvFormatError("the file is empty; the first line must be a header with an 'email' column"
                             ) from None
    names = [h.strip().lower() for h in header]
    if "email" not in names:
        raise CsvFormatError(f"no 'email' column in the header line (found: {', '.join(names) or 'nothing'})")
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        yield reader.line_num, dict(zip(names, cells, strict=False))


def import_csv(store: Store, path: str | Path, *, now: datetime) -> ImportReport:
    """Add every valid address of a CSV file (header, `email` column, optional `name` and `state`) in one
    transaction.

    Addresses already stored keep their state (so an unsubscribed reader stays unsubscribed).
    """
    path = Path(path)
    origin, t = f"import:{path.name}", iso(now)
    rejected: list[tuple[int, str]] = []
    batch: dict[str, tuple[str, str, str | None]] = {}  # mailbox key -> (spelling, state, name)
    repeated = 0
    with path.open(encoding="utf-8-sig", newline="") as f:
        for line, rec in _records(f):
            state = (rec.get("state") or "active").strip().lower()
            if state not in STATES:
                rejected.append((line, f"unknown state {state!r}"))
                continue
            try:
                raw = rec.get("email") or ""
                address = normalize_address(raw)
                name = clean_name(rec["name"]) if rec.get("name") else display_name(raw)
            except InvalidAddress as e:
                rejected.append((line, str(e)))
                continue
            if mailbox_key(address) in batch:
                repeated += 1
            else:
                batch[mailbox_key(address)] = (address, state, name)
    conn = store.db.conn
    with store.atomic():
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO subscribers (address, state, created_at, updated_at, origin, name) "
            "VALUES (?, ?, ?, ?, ?, ?)", ((a, s, t, t, origin, n) for a, s, n in batch.values()))
        added = conn.total_changes - before
    report = ImportReport(added=added, already=len(batch) - added + repeated, rejected=rejected)
    log.info("%s: %d added, %d already there, %d rejected", path, report.added, report.already,
             len(report.rejected))
    return report


def export_csv(store: Store, out: str | Path | TextIO) -> int:
    """Write `email,name,state` for every stored address (the form import_csv reads back). Returns the count."""
    if isinstance(out, str | Path):
        with Path(out).open("w", encoding="utf-8", newline="") as f:
            return export_csv(store, f)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["email", "name", "state"])
    n = 0
    for address, name, state in store.db.execute("SELECT address, name, state FROM subscribers ORDER BY id"):
        w.writerow([address, name or "", state])
        n += 1
    return n
