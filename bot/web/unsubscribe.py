"""Unsubscribing: the link in every email. A GET never changes anything (mail scanners follow links): it shows
one button, whose POST acts. Mail providers' RFC 8058 one-click POST (`List-Unsubscribe=One-Click`) unsubscribes
at once and gets a tiny 200. Tokens carry an opaque id and an HMAC (channels/email/tokens.py; old links with the
address still work); a forged one changes nothing and gets a 400 page. An unsubscribe is never lost: if the write
lock does not come within `WRITE_WAIT`, it is appended (fsynced) to a journal in the state folder and applied as
soon as the lock frees, and again at start.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.channels.email import subscribers
from bot.channels.email.tokens import (
    subscriber_ref,
    verify_ref,
    verify_token,
)
from bot.store import Store
from bot.web.common import (
    APPLY_BUSY,
    APPLY_EVERY,
    DB,
    SITE,
    WRITE_WAIT,
    Db,
    busy_timeout,
    error_page,
    is_busy,
    page,
    read_form,
    slow,
)
from bot.web.pages import render
from bot.web.security import HEADERS, KEY, SERVER, csrf_ok

log = logging.getLogger(__name__)


def _bad_token() -> web.Response:
    return page("This link is not valid", "<p>This unsubscribe link is damaged or was not made by us, so "
                "nothing was changed. Use the link at the bottom of one of our emails, or write to us.</p>",
                status=400)


def _queued(journal: Path) -> bool:
    try:
        return journal.stat().st_size > 0
    except FileNotFoundError:
        return False


def _address_for(store: Store, key: bytes, ref: str) -> str | None:
    """The address behind a link's opaque ref, filling the refs of addresses added since (by the CLI)."""
    address = subscribers.address_for_ref(store, ref)
    if address is None and subscribers.fill_refs(store, lambda a: subscriber_ref(key, a)):
        address = subscribers.address_for_ref(store, ref)
    return address


def _unsubscribe(store: Store, journal: Path, who: tuple[str, str], origin: str, now: datetime,
                 key: bytes = b"") -> bool:
    """Unsubscribe `who` (("address", a) from an old link, ("ref", r) from a new one) now, or queue it in the
    journal if the lock does not come within WRITE_WAIT (or the database fails). True if queued.

    Earlier queued requests go first, so the journal keeps the order the requests came in."""
    kind, value = who
    try:
        if _queued(journal):
            busy_timeout(store, APPLY_BUSY)
            if key:
                subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))
            subscribers.apply_queued(store, journal)
        busy_timeout(store, WRITE_WAIT)
        address = value if kind == "address" else _address_for(store, key, value)
        if address is not None:  # None: an address erased since; there is nothing to stop
            subscribers.unsubscribe(store, address, now=now, origin=origin)
        return False
    except sqlite3.Error as e:  # locked, or worse: the reader asked, so keep the request until it can be done
        subscribers.queue_unsubscribe(journal, value if kind == "address" else "", now=now, origin=origin,
                                      ref=value if kind == "ref" else None)
        (log.warning if isinstance(e, sqlite3.OperationalError) and is_busy(e) else log.error)(
            "database: %s; an unsubscribe via %s is queued in %s and applied as soon as it can be", e, origin,
            journal)
        return True


def apply_journal(store: Store, journal: Path, key: bytes = b"") -> int:
    if not _queued(journal):
        return 0
    busy_timeout(store, APPLY_BUSY)
    if key:  # a queued new-form link names a ref: map every address to its ref first
        subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))
    return subscribers.apply_queued(store, journal)


async def drain_journal(app: web.Application) -> None:
    """Apply queued unsubscribes at start and then whenever the lock frees, every APPLY_EVERY seconds."""
    db = app[DB]
    last = ""
    while True:
        problem = ""
        try:
            if await asyncio.to_thread(_queued, db.journal):  # no connection is opened for an empty journal
                await db.write(apply_journal, db.journal, app[KEY])
        except sqlite3.Error as e:
            problem = "" if isinstance(e, sqlite3.OperationalError) and is_busy(e) else f"database: {e}"
        except OSError as e:
            problem = f"{db.journal}: {e.strerror or e}"
        if problem and problem != last:  # once per problem, not every half second
            log.error("cannot apply the queued unsubscribes yet (%s); retrying", problem)
        last = problem
        await asyncio.sleep(APPLY_EVERY)


def _who(key: bytes, token: str) -> tuple[str, str] | None:
    """("ref", r) for a new-form link, ("address", a) for one mailed before issue #13; None if forged."""
    ref = verify_ref(key, token)
    if ref is not None:
        return "ref", ref
    address = verify_token(key, token)
    return ("address", address) if address is not None else None


async def unsubscribe_form(request: web.Request) -> web.Response:
    if _who(request.app[KEY], request.match_info["token"]) is None:
        return _bad_token()
    site = request.app[SITE]
    return await render(request, "web/message.html", "Unsubscribe", paragraphs=[
        f"Stop sending {site['title']} to the address this link was emailed to?"],
        form={"action": request.path, "button": "Unsubscribe"})


async def _record_unsubscribe(db: Db, who: tuple[str, str], origin: str, key: bytes) -> bool:
    """Unsubscribe `who` now or queue it; True if queued. OSError if neither can be done."""
    now = datetime.now(UTC)
    try:
        return await db.write(_unsubscribe, db.journal, who, origin, now, key)
    except sqlite3.Error as e:  # not even a connection: queue it all the same
        log.error("database: %s; an unsubscribe via %s is queued in %s", e, origin, db.journal)
        kind, value = who
        await asyncio.to_thread(subscribers.queue_unsubscribe, db.journal, value if kind == "address" else "",
                                now=now, origin=origin, ref=value if kind == "ref" else None)
        return True


async def unsubscribe(request: web.Request) -> web.StreamResponse:
    key = request.app[KEY]
    who = _who(key, request.match_info["token"])
    if who is None:
        return _bad_token()
    form = await read_form(request)
    if form is None:
        return slow()
    one_click = form.get("List-Unsubscribe") == "One-Click"  # RFC 8058: the mail provider posts, no cookie
    if not one_click and not csrf_ok(request, form):
        return error_page(403)
    origin = "web:one-click" if one_click else "web"
    try:
        queued = await _record_unsubscribe(request.app[DB], who, origin, key)
    except OSError as e:  # the database unusable and the journal not writable (a full disk): ask to come back
        log.error("an unsubscribe via %s could not be recorded: %s", origin, e.strerror or e)
        return error_page(503)
    if one_click:
        return web.Response(text="unsubscribe queued\n" if queued else "unsubscribed\n", status=202 if queued
                            else 200, headers={**HEADERS, "Server": SERVER})
    site = request.app[SITE]
    contact = f" To reach us, write to {site['contact']}." if site["contact"] else ""
    return await render(request, "web/message.html", "You are unsubscribed", paragraphs=[
        f"That address will get no more emails from {site['title']}.",
        "Changed your mind? Subscribe again below; we will ask you to confirm." + contact], subscribe=True)
