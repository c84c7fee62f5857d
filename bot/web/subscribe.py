"""Subscribing with double opt-in (issue #13): the form's POST sends a confirmation email with a signed,
expiring, single-use link; the link's GET shows one button, whose POST confirms and sends the welcome email
with the latest edition. The answer is the same whatever the address's state, and links carry opaque ids, so
nothing shows who is subscribed: an active mailbox gets a "you are subscribed already" email instead of a
confirmation (issue #24), so every answer costs one write and one email; confirmation emails are limited per
mailbox, +tags counted together (`confirm_per_day`); attempts per client (`subscribe_limit`, an IPv6 client by
its `ipv6_prefix`). Emails are built and sent on a thread of their own, after the answer, so its timing does not
depend on the address either.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.channels.email import subscribers, transactional
from bot.channels.email.tokens import (
    confirm_token,
    new_nonce,
    subscriber_ref,
    unsubscribe_token,
    unsubscribe_url,
    verify_confirm,
)
from bot.config import Config
from bot.publish.first import claim_for_welcome
from bot.store import Store
from bot.web import reader
from bot.web.common import DB, LIMITER, SITE, error_page, read_form, slow, spawn, too_many
from bot.web.pages import render
from bot.web.security import CONFIG, KEY, client_address, client_key, csrf_ok

log = logging.getLogger(__name__)


def _send_confirmation(cfg: Config, key: bytes, address: str, nonce: str) -> None:
    now = datetime.now(UTC)
    url = f"{cfg.web.base_url}/confirm/{confirm_token(key, nonce)}"
    try:
        transactional.send(cfg, transactional.confirmation(cfg, address, url, now), now)
        log.info("sent a confirmation email")
    except Exception as e:  # SMTP down, a template error: logged for the operator; the reader can try again
        log.error("could not send a confirmation email: %s", e)


def _send_welcome(cfg: Config, key: bytes, address: str, edition: Any) -> None:
    now = datetime.now(UTC)
    try:
        url = unsubscribe_url(cfg.web.base_url, unsubscribe_token(key, address))
        transactional.send(cfg, transactional.welcome(cfg, address, edition, url, now), now)
        log.info("sent a welcome email")
    except Exception as e:
        log.error("could not send a welcome email: %s", e)


def _send_already(cfg: Config, key: bytes, address: str) -> None:
    now = datetime.now(UTC)
    try:
        url = unsubscribe_url(cfg.web.base_url, unsubscribe_token(key, address))
        transactional.send(cfg, transactional.already_subscribed(cfg, address, url, now), now)
        log.info("sent an already-subscribed email")
    except Exception as e:
        log.error("could not send an already-subscribed email: %s", e)


def _subscribe(store: Store, address: str, now: datetime, cfg: Config, nonce: str) -> tuple[str | None, str]:
    """What to send, and to which spelling: the stored one of an active mailbox (the one mail goes to)."""
    send = subscribers.request_confirmation(store, address, now=now, ttl=timedelta(seconds=cfg.web.confirm_ttl),
                                            per_day=cfg.web.confirm_per_day, nonce=nonce)
    return send, (subscribers.delivery_address(store, address) or address) if send == "already" else address


async def subscribe(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    wait = request.app[LIMITER].check(client_key(client_address(request, cfg.web.trusted_proxies),
                                                 cfg.web.ipv6_prefix))
    if wait:
        log.warning("subscribe attempts over [web] subscribe_limit from one client; answered 429")
        return too_many(wait)
    form = await read_form(request)
    if form is None:
        return slow()
    if not csrf_ok(request, form):
        return error_page(403)
    try:
        address = subscribers.normalize_address(str(form.get("email", "")))
    except subscribers.InvalidAddress:
        return await render(request, "web/message.html", "Check the address", status=400, subscribe=True,
                             paragraphs=["That does not look like an email address. Please check it and try again."])
    nonce = new_nonce()
    send, to = await request.app[DB].write(_subscribe, address, datetime.now(UTC), cfg, nonce)
    if send == "confirm":
        spawn(request, _send_confirmation, cfg, request.app[KEY], to, nonce)
    elif send == "already":  # issue #24: the same page and the same work (one row, one email) for everyone
        spawn(request, _send_already, cfg, request.app[KEY], to)
    return await render(request, "web/message.html", "Check your inbox", paragraphs=[
        "If that address can receive our emails, a message with a confirmation link is on its way.",
        "Open it and press the button to start receiving the newsletter. Nothing is sent until you do."])


_CONFIRM_PAGES = {
    "unknown": ("This link is not valid", "This confirmation link was not made by us, so nothing was changed."),
    "used": ("This link was used already", "This confirmation link has already been used. If you are not "
             "getting the newsletter, subscribe again."),
    "expired": ("This link has expired", "This confirmation link is too old, so nothing was changed. Subscribe "
                "again to get a new one."),
}


def _confirmation_state(store: Store, nonce: str, now: datetime) -> str:
    row = store.db.execute("SELECT expires_at, used_at FROM confirmations WHERE nonce = ?", [nonce]).fetchone()
    if row is None:
        return "unknown"
    if row[1]:
        return "used"
    return "expired" if datetime.fromisoformat(row[0]) <= now else "ok"


async def _confirm_problem(request: web.Request, state: str) -> web.Response:
    title, text = _CONFIRM_PAGES[state]
    return await render(request, "web/message.html", title, status=400 if state == "unknown" else 410,
                         paragraphs=[text], subscribe=True)


async def confirm_form(request: web.Request) -> web.Response:
    nonce = verify_confirm(request.app[KEY], request.match_info["token"])
    if nonce is None:
        return await _confirm_problem(request, "unknown")
    state = await request.app[DB].read(_confirmation_state, nonce, datetime.now(UTC))
    if state != "ok":
        return await _confirm_problem(request, state)
    return await render(request, "web/message.html", "Confirm your subscription", paragraphs=[
        f"Press the button to start receiving {request.app[SITE]['title']}."],
        form={"action": request.path, "button": "Confirm my subscription"})


def _confirm(store: Store, nonce: str, now: datetime, key: bytes) -> tuple[str, str | None]:
    result = subscribers.confirm(store, nonce, now=now)
    if result[0] == "confirmed":
        subscribers.fill_refs(store, lambda a: subscriber_ref(key, a))
    return result


async def confirm(request: web.Request) -> web.Response:
    key = request.app[KEY]
    nonce = verify_confirm(key, request.match_info["token"])
    if nonce is None:
        return await _confirm_problem(request, "unknown")
    form = await read_form(request)
    if form is None:
        return slow()
    if not csrf_ok(request, form):
        return error_page(403)
    state, address = await request.app[DB].write(_confirm, nonce, datetime.now(UTC), key)
    if state != "confirmed" or address is None:
        return await _confirm_problem(request, state)
    cfg = request.app[CONFIG]
    waited = await request.app[DB].write(claim_for_welcome, cfg, datetime.now(UTC))  # issue #25: the newest
    found = None if waited else await request.app[DB].read(reader.latest, cfg)  # week that waited for them
    spawn(request, _send_welcome, cfg, key, address, waited or (found[1] if found else None))
    return await render(request, "web/message.html", "You are subscribed", paragraphs=[
        f"Welcome! {request.app[SITE]['title']} will come to your inbox every week.",
        "A welcome email with the latest edition is on its way. Every email has a link to unsubscribe."])
