"""The web app's defences: every form carries a CSRF token matching a cookie (double submit, HMAC-signed);
every answer gets our security headers and a plain Server name; subscribe attempts are limited per client
(`[web] subscribe_limit`; X-Forwarded-For is read only from `trusted_proxies`), a client being what it controls
(issue #24, `client_key`): an IPv4 address, IPv4-mapped IPv6 counted as the IPv4 address, an IPv6 address by
its `[web] ipv6_prefix` (a /64 by default, what one home or host is given). On HTTPS the CSRF cookie is a
`__Host-` cookie, which no subdomain or plain-HTTP page can set.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from typing import Any

from aiohttp import web

from bot.channels.email.tokens import (
    csrf_token,
)
from bot.config import Config

KEY = web.AppKey("key", bytes)


CONFIG = web.AppKey("config", Config)


CSRF_COOKIE = "paperbot_csrf"
HOST_CSRF_COOKIE = "__Host-paperbot_csrf"  # on HTTPS: Secure, Path=/, no Domain, so only this origin sets it


def cookie_name(request: web.Request) -> str:
    return HOST_CSRF_COOKIE if request.app[CONFIG].web.base_url.startswith("https:") else CSRF_COOKIE


HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "X-Content-Type-Options": "nosniff",
}


SERVER = "paperbot"  # not aiohttp's "Python/3.x aiohttp/3.y"


def csrf_cookie(request: web.Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a new one (True: set it on the answer)."""
    cookie = request.cookies.get(cookie_name(request), "")
    if 20 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum():
        return cookie, False
    return secrets.token_urlsafe(24), True


def csrf_ok(request: web.Request, form: Any) -> bool:
    """The form's `csrf` field is the signature of the cookie this browser holds (an attacker's page can
    neither read our cookie nor make the signature)."""
    cookie = request.cookies.get(cookie_name(request), "")
    field = form.get("csrf", "")
    return bool(cookie) and isinstance(field, str) and hmac.compare_digest(
        field.encode(), csrf_token(request.app[KEY], cookie).encode())


def set_cookie(request: web.Request, resp: web.StreamResponse, cookie: str) -> None:
    name = cookie_name(request)
    resp.set_cookie(name, cookie, httponly=True, samesite="Lax", path="/", secure=name == HOST_CSRF_COOKIE)


class ClientLimiter:
    """At most `limit` attempts per client address in any `window` seconds (a sliding window in memory)."""

    def __init__(self, limit: int, window: float, max_clients: int = 100_000):
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self.hits: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, client: str, now: float | None = None) -> float:
        """0 if this attempt is allowed (and counted), else the seconds until the next one would be."""
        now = time.monotonic() if now is None else now
        q = self.hits.get(client)
        if q is None:
            q = self.hits[client] = deque()
            while len(self.hits) > self.max_clients:
                self.hits.popitem(last=False)
        self.hits.move_to_end(client)
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return q[0] + self.window - now
        q.append(now)
        return 0.0


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an address, an IPv4-mapped IPv6 address as its IPv4 one; None if it is not one."""
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    return addr.ipv4_mapped or addr if isinstance(addr, ipaddress.IPv6Address) else addr


def client_key(address: str, ipv6_prefix: int = 64) -> str:
    """The key a client's requests are counted under (issue #24): what the client controls, not one of the
    many addresses it can pick. IPv4 as it is; `::ffff:a.b.c.d` as `a.b.c.d`; other IPv6 as its network of
    `ipv6_prefix` bits (`2001:db8:1:2::/64`). Anything that is not an address is its own key. Pure, for every
    per-client limit."""
    addr = _ip(address)
    if addr is None:
        return address
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    return str(ipaddress.IPv6Network((addr, ipv6_prefix), strict=False))


def client_address(request: web.Request, trusted: tuple) -> str:
    """The client's IP: the peer's, or, when the peer is a trusted proxy, the right-most X-Forwarded-For
    entry that is not itself a trusted proxy (entries further left are the client's own claims)."""
    peer = request.remote or "?"

    def is_trusted(ip: str) -> bool:
        addr = _ip(ip)
        return addr is not None and any(addr in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    for hop in reversed(hops):
        if not is_trusted(hop):
            addr = _ip(hop)
            return str(addr) if addr is not None else peer  # garbage from a proxy we trust: count the proxy
    return peer


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response the app sends gets our headers and a plain Server name."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER
