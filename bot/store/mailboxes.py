"""Issue #24's merge of one mailbox's spellings, for migration m017_mailbox_key (bot/store/schema.py).

The stored local part is ASCII (the address grammar) and the domain lower-case IDNA, so the mailbox key of a
stored address is `lower(address)`: what the unique index holds and every query compares. Of the rows of one
mailbox the one in the strongest state stays, with its spelling (unsubscribed over bounced over active over
pending: a reader who left stays gone); the others move whole to `subscriber_merges` (ref included, so an old
link still names the mailbox). Deliveries keep naming the spelling they went to: history is not rewritten.
"""

from __future__ import annotations

import logging

import sqlite_utils

log = logging.getLogger(__name__)

_STATE_RANK = {"unsubscribed": 0, "bounced": 1, "active": 2, "pending": 3}  # who wins a merge: the first


def cap_key(address: str) -> str:
    """bot/channels/email/addresses.py's `cap_key` of a stored address (the store sits below the channels)."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}"


def merge_spellings(db: sqlite_utils.Database) -> int:
    """Merge every mailbox's spellings into one subscriber, make the key unique, fill `confirmations.mailbox`;
    returns (and logs) how many rows were merged."""
    db.execute("""
        CREATE TABLE subscriber_merges (
            id INTEGER PRIMARY KEY,
            subscriber_id INTEGER NOT NULL,
            address TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            origin TEXT NOT NULL DEFAULT '',
            reason TEXT,
            name TEXT,
            ref TEXT,
            merged_at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX idx_subscriber_merges_ref ON subscriber_merges (ref)")
    rows = db.execute("SELECT id, address, state, created_at, updated_at, origin, reason, name, ref "
                      "FROM subscribers ORDER BY id").fetchall()
    groups: dict[str, list[tuple]] = {}
    for r in rows:
        groups.setdefault(r[1].lower(), []).append(r)
    merged = 0
    now = db.execute("SELECT strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')").fetchone()[0]
    for same in groups.values():
        if len(same) < 2:
            continue
        keep = min(same, key=lambda r: (_STATE_RANK.get(r[2], 9), r[0]))
        for r in same:
            if r is keep:
                continue
            db.execute("INSERT INTO subscriber_merges (subscriber_id, address, state, created_at, updated_at, "
                       "origin, reason, name, ref, merged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [keep[0], *r[1:], now])
            db.execute("DELETE FROM subscribers WHERE id = ?", [r[0]])
            merged += 1
        if keep[7] is None and any(r[7] for r in same):  # the name a merged spelling had
            db.execute("UPDATE subscribers SET name = ? WHERE id = ?", [next(r[7] for r in same if r[7]), keep[0]])
    db.execute("CREATE UNIQUE INDEX idx_subscribers_mailbox ON subscribers (lower(address))")
    db["confirmations"].add_column("mailbox", str)
    for nonce, address in db.execute("SELECT nonce, address FROM confirmations").fetchall():
        db.execute("UPDATE confirmations SET mailbox = ? WHERE nonce = ?", [cap_key(address), nonce])
    db.execute("CREATE INDEX idx_confirmations_mailbox ON confirmations (mailbox, created_at)")
    if merged:
        log.warning("merged %d subscriber row(s) that were another spelling of an address already listed "
                    "(issue #24); their history is in subscriber_merges", merged)
    else:
        log.info("no subscriber spelled twice: nothing to merge")
    return merged
