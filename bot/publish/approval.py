"""The editor's approval step (`[publish] approve = true`, after Buttondown's draft review).

Every week that becomes ready is held as `awaiting-approval` instead (not sent anywhere, not public on the web)
and the editor gets one copy by email, marked as such (issue #21): "[Approval needed]" in its subject, the
`paperbot approve` and `paperbot skip` commands at the top, no subscriber footer, unsubscribe or web link.
`paperbot approve WEEK` makes it ready again, marked approved so it is never held twice, and it goes out like
any ready week; `paperbot skip WEEK` gives it up on every channel, with a note in `paperbot history`.

The same two answers settle a week the age guard held (issue #21, state `held`: bot/track/age.py), and
`approve` also sends a ready week past the daily cap (bot/publish/cap.py): an approved week is never held back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.utils import parseaddr

from bot import channels as registry
from bot.channels.base import EditorCopy, PermanentError, RenderError, StorageError, TransientError, Uncertain
from bot.config import Config
from bot.publish import ledger
from bot.store import Store, WeekRow, iso
from bot.track.age import HELD

log = logging.getLogger(__name__)
AWAITING = "awaiting-approval"


def editor_address(cfg: Config) -> str:
    return parseaddr(cfg.publish.editor)[1] or parseaddr(cfg.email.sender)[1]


def commands(week: WeekRow) -> dict:
    """The editor's two answers to a held week, exactly as typed: what the approval copy's banner names."""
    name = f"{week.source}:{week.key}"
    return {"name": name, "approve": f"paperbot approve {name}", "skip": f"paperbot skip {name}"}


def _approved(store: Store, week: WeekRow) -> bool:
    row = store.db.execute("SELECT approved_at FROM weeks WHERE source = ? AND key = ?",
                           [week.source, week.key]).fetchone()
    return bool(row and row[0])


def hold(cfg: Config, store: Store, now: datetime) -> list[WeekRow]:
    """Hold every ready week not approved yet and not started on any channel; mail the editor a copy of each.
    A copy that cannot be sent is logged (the week is held all the same: `paperbot preview` shows it)."""
    if not cfg.publish.approve:
        return []
    held = []
    for week in store.weeks(state="ready"):
        if _approved(store, week) or ledger.publications(store, week.source, week.key):
            continue
        store.upsert_week(week.source, week.key, state=AWAITING)
        held.append(week)
        to = editor_address(cfg)
        try:
            copier: EditorCopy = registry.make(cfg, "email")  # type: ignore[assignment]
            line = copier.send_copy(store, week, to, approval=commands(week))
        except (TransientError, PermanentError, Uncertain, StorageError, RenderError) as e:
            log.warning("%s:%s awaits approval; the editor's copy to %s was not sent: %s", week.source, week.key,
                        to, e)
        else:
            log.info("%s:%s awaits approval (paperbot approve %s:%s, or paperbot skip); %s", week.source, week.key,
                     week.source, week.key, line)
    return held


def approve(store: Store, week: WeekRow, now: datetime) -> None:
    """The editor approves: the week is ready again, for good, and goes past the daily cap. ValueError unless it
    awaits approval, was held by the age guard, or is ready and not approved yet (waiting for the cap)."""
    if week.state not in (AWAITING, HELD, "ready") or week.state == "ready" and _approved(store, week):
        raise ValueError(f"{week.source}:{week.key} is {week.state}{' and approved' if week.state == 'ready' else ''}"
                         ": only a week awaiting approval, held, or ready (past the daily cap) can be approved")
    with store.atomic():
        if week.state != "ready":  # its send window counts from now
            store.upsert_week(week.source, week.key, state="ready", ready_at=now)
        store.db.execute("UPDATE weeks SET approved_at = ? WHERE source = ? AND key = ?",
                         [iso(now), week.source, week.key])


def skip(cfg: Config, store: Store, week: WeekRow, now: datetime) -> str:
    """The editor rejects it: never sent on any channel; each enabled channel records why, for `history`.
    ValueError for a week that is out already (published) or was never to go (baseline)."""
    if week.state not in (AWAITING, HELD, "ready", "pending"):
        raise ValueError(f"{week.source}:{week.key} is {week.state}: only a week awaiting approval, held, ready "
                         "or pending can be skipped")
    note = f"skipped by the editor (paperbot skip) on {now:%Y-%m-%d %H:%M} UTC"
    with store.atomic():
        for name in registry.enabled(cfg):
            if ledger.publication(store, week.source, week.key, name) is None:
                ledger.plan(store, week.source, week.key, name, [], now, note=note)
            ledger.skip(store, week.source, week.key, name, note, now)
        store.upsert_week(week.source, week.key, state="skipped")
    return note
