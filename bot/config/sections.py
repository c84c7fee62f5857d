"""The tables bot.config reads besides the top level and the sources: `[web]`, `[fetch]`, `[alerts]`, `[health]`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from urllib.parse import urlsplit

from bot.config.values import ConfigError, http_url, line, number, parse_duration, short, table, unknown, whole

_LISTEN = re.compile(r"([A-Za-z0-9_.:\[\]-]*):([0-9]{1,5})")
_WEB_KEYS = {"base_url", "listen", "header_timeout", "title", "description", "confirm_ttl", "trusted_proxies",
             "subscribe_limit", "confirm_per_day", "ipv6_prefix", "pending_ttl", "feed_entries", "costly_threads",
             "costly_per_client"}
_LIMIT = re.compile(r"\s*(\d{1,6})\s*/\s*(\S+)\s*")
CONFIRM_PER_DAY_MAX = 100
_FETCH_KEYS = {"timeout", "max_size"}
_ALERTS_KEYS = {"email", "every", "failures", "quiet", "layout_drop", "failed_after", "bounce_rate"}


@dataclass(frozen=True)
class WebSettings:
    """`[web]`: the small web app (unsubscribe, view in browser)."""

    base_url: str = "http://localhost:8080"
    listen: str = "127.0.0.1:8080"
    header_timeout: float = 10.0  # seconds a client has to send its request headers (and a POST its body)
    title: str = "ML Papers of the Week"
    description: str = "The week's most talked-about machine-learning papers, once a week by email."
    confirm_ttl: float = 48 * 3600.0  # seconds a confirmation link works
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    subscribe_limit: tuple[int, float] = (5, 600.0)  # subscribe attempts per client per window (seconds)
    confirm_per_day: int = 3  # confirmation emails per mailbox (+tags together) per 24 hours
    ipv6_prefix: int = 64  # an IPv6 client is its network of this many bits (issue #24)
    pending_ttl: float = 7 * 86400.0  # seconds a never-confirmed address is kept after its last link expired
    feed_entries: int = 20  # editions in /feed.xml, newest first (issue #24)
    costly_threads: int = 1  # threads for searches and the feed, apart from the pages' (issue #24; 1: a core left)
    costly_per_client: int = 4  # a client's searches and feeds being made at once; more: 429 (issue #24)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


@dataclass(frozen=True)
class FetchSettings:
    """`[fetch]`: what reading one file of a source may cost, HTTP and git alike."""

    timeout: float = 30.0  # seconds for one HTTP attempt, all of it: connect, status line, headers and body
    max_size: int = 50 * 2**20  # bytes per file (an HTTP body, a git blob)


@dataclass(frozen=True)
class AlertsSettings:
    """`[alerts]`: problems the operator hears about (bot/ops/alerts.py), at most once per problem per `every`.
    The Discord webhook URL is a secret: it comes from $PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL, never from here."""

    email: tuple[str, ...] = ()  # who gets alerts by email (over [email] smtp_url; else into the outbox)
    every: timedelta = timedelta(hours=6)  # one alert per problem per this, however often it is seen
    failures: int = 3  # a source failing this many polls in a row
    quiet: timedelta = timedelta(days=14)  # a source with no new week for this long
    layout_drop: float = 0.5  # a version parsing to fewer than this share of the weeks of the one before
    failed_after: timedelta = timedelta(hours=24)  # a delivery still failed this long after its week was planned
    bounce_rate: float = 0.05  # an edition whose bounces pass this share of what it sent


def _parse_web(w: object, f: str) -> WebSettings:
    w = table(w, f"{f}: web")
    unknown(f"{f}: [web]", w, _WEB_KEYS)
    d = WebSettings()
    base_url = http_url(w.get("base_url", d.base_url), f"{f}: web.base_url")
    if "@" in urlsplit(base_url).netloc:
        raise ConfigError(f"{f}: web.base_url: must not hold a user name or password (it goes into every "
                          "email's links); give the public address alone, e.g. https://papers.example.org")
    listen = w.get("listen", d.listen)
    m = _LISTEN.fullmatch(listen) if isinstance(listen, str) else None
    if m is None:
        raise ConfigError(f"{f}: web.listen: {listen!r} must be host:port, e.g. 127.0.0.1:8080")
    if not 0 <= int(m.group(2)) <= 65535:  # 0: any free port (the daemon's tests use it)
        raise ConfigError(f"{f}: web.listen: port {int(m.group(2))} is out of range; allowed: 0 to 65535 "
                          "(0: any free port)")
    header_timeout = parse_duration(w.get("header_timeout", "10s"), f"{f}: web.header_timeout").total_seconds()
    if not 1 <= header_timeout <= 3600:
        raise ConfigError(f"{f}: web.header_timeout: must be from 1s to 1h")
    title = line(w.get("title", d.title), f"{f}: web.title").strip()
    if not title or len(title) > 200:
        raise ConfigError(f"{f}: web.title: must be 1 to 200 characters")
    description = line(w.get("description", d.description), f"{f}: web.description").strip()
    if len(description) > 500:
        raise ConfigError(f"{f}: web.description: must be at most 500 characters")
    confirm_ttl = parse_duration(w.get("confirm_ttl", "48h"), f"{f}: web.confirm_ttl",
                                 (60, 30 * 86400)).total_seconds()
    proxies = w.get("trusted_proxies", [])
    if not isinstance(proxies, list):
        raise ConfigError(f"{f}: web.trusted_proxies: must be a list of IP addresses or networks, "
                          'e.g. ["127.0.0.1", "10.0.0.0/8"]')
    networks = []
    for p in proxies:
        try:
            networks.append(ipaddress.ip_network(p.strip(), strict=False))
        except (ValueError, AttributeError):
            raise ConfigError(f"{f}: web.trusted_proxies: {short(p)} is not an IP address or network "
                              "(e.g. 10.0.0.0/8)") from None
        if catch_all(networks[-1]):
            raise ConfigError(f"{f}: web.trusted_proxies: {short(p)} trusts every address, so any client could "
                              "name itself in X-Forwarded-For; list your proxy's own address (e.g. 127.0.0.1)")
    limit = w.get("subscribe_limit", "5/10m")
    m = _LIMIT.fullmatch(limit) if isinstance(limit, str) else None
    if m is None or not 1 <= int(m.group(1)) <= 10_000:
        raise ConfigError(f"{f}: web.subscribe_limit: {short(limit)} must be attempts per time, from 1 to "
                          '10000 per 1s to 1d, e.g. "5/10m"')
    window = parse_duration(m.group(2), f"{f}: web.subscribe_limit", (1, 86400)).total_seconds()
    per_day = whole(w.get("confirm_per_day", d.confirm_per_day), f"{f}: web.confirm_per_day", 1,
                     CONFIRM_PER_DAY_MAX)
    costs = {k: whole(w.get(k, getattr(d, k)), f"{f}: web.{k}", 1, top)
             for k, top in (("feed_entries", 1000), ("costly_threads", 64), ("costly_per_client", 10_000))}
    prefix = whole(w.get("ipv6_prefix", d.ipv6_prefix), f"{f}: web.ipv6_prefix", 16, 128)
    pending_ttl = parse_duration(w.get("pending_ttl", "7d"), f"{f}: web.pending_ttl",
                                 (3600, 365 * 86400)).total_seconds()
    return WebSettings(base_url=base_url.rstrip("/"), listen=listen, header_timeout=header_timeout, title=title,
                       description=description, confirm_ttl=confirm_ttl, trusted_proxies=tuple(networks),
                       subscribe_limit=(int(m.group(1)), window), confirm_per_day=per_day, ipv6_prefix=prefix,
                       pending_ttl=pending_ttl, **costs)


def catch_all(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """A network that holds every address (`0.0.0.0/0`, `::/0`, `::ffff:0:0/96` for every IPv4 client)."""
    return net.prefixlen == 0 or (net.version == 6 and net.prefixlen <= 96
                                  and ipaddress.ip_address("::ffff:192.0.2.1") in net)


def broad(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """A network wider than one site's (a /16 of IPv4, a /32 of IPv6) that is not all private: a proxy range
    like that trusts strangers (issue #24; `paperbot check` warns)."""
    return net.prefixlen < (16 if net.version == 4 else 32) and not (net.is_private or net.is_loopback)


_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB)?")


def _parse_fetch(t: object, f: str) -> FetchSettings:
    t = table(t, f"{f}: fetch")
    unknown(f"{f}: [fetch]", t, _FETCH_KEYS)
    d = FetchSettings()
    timeout = parse_duration(t.get("timeout", "30s"), f"{f}: fetch.timeout").total_seconds()
    if not 1 <= timeout <= 3600:
        raise ConfigError(f"{f}: fetch.timeout: {t['timeout']!r} must be from 1s to 1h")
    size = t.get("max_size", d.max_size)
    m = _SIZE.fullmatch(size.strip()) if isinstance(size, str) else None
    if m:
        size = int(m.group(1)) * 2 ** (10 * ("B", "KiB", "MiB", "GiB").index(m.group(2) or "B"))
    if not isinstance(size, int) or isinstance(size, bool) or not 2**10 <= size <= 2**30:
        raise ConfigError(f"{f}: fetch.max_size: {t['max_size']!r} must be a size from 1KiB to 1GiB, "
                          "e.g. \"50MiB\" or a number of bytes")
    return FetchSettings(timeout=timeout, max_size=size)


_ALERT_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\".]+")


def _parse_alerts(t: object, f: str) -> AlertsSettings:
    t = table(t, f"{f}: alerts")
    unknown(f"{f}: [alerts]", t, _ALERTS_KEYS)
    d = AlertsSettings()
    emails = t.get("email", [])
    emails = [emails] if isinstance(emails, str) else emails
    if not isinstance(emails, list) or not all(isinstance(a, str) for a in emails):
        raise ConfigError(f"{f}: alerts.email: must be an address or a list of addresses")
    for a in emails:
        line(a, f"{f}: alerts.email")
        if not _ALERT_ADDRESS.fullmatch(parseaddr(a)[1]) or not a.strip():
            raise ConfigError(f"{f}: alerts.email: {short(a)} is not an email address (e.g. you@your.domain)")
    return AlertsSettings(
        email=tuple(a.strip() for a in emails),
        every=parse_duration(t.get("every", "6h"), f"{f}: alerts.every", (60, 30 * 86400)),
        failures=whole(t.get("failures", d.failures), f"{f}: alerts.failures", 1, 10_000),
        quiet=parse_duration(t.get("quiet", "14d"), f"{f}: alerts.quiet", (3600, 3650 * 86400)),
        layout_drop=number(t.get("layout_drop", d.layout_drop), f"{f}: alerts.layout_drop", 0, 1,
                            " (0: never alert)"),
        failed_after=parse_duration(t.get("failed_after", "24h"), f"{f}: alerts.failed_after", (60, 365 * 86400)),
        bounce_rate=number(t.get("bounce_rate", d.bounce_rate), f"{f}: alerts.bounce_rate", 0, 1,
                            " (a share: 0.05 is 5%)"),
    )


# [health] (issue #15)
_HEALTH_KEYS = {"max_heartbeat_age", "max_failing_age"}


@dataclass(frozen=True)
class HealthSettings:
    """`[health]`: when `GET /healthz` answers 503 (bot/web/health.py)."""

    max_heartbeat_age: float = 120.0  # seconds: an older daemon heartbeat means its loop is stuck or it is gone
    max_failing_age: float = 6 * 3600.0  # seconds every source may fail in a row before the daemon is unhealthy


def _parse_health(t: object, f: str) -> HealthSettings:
    t = table(t, f"{f}: health")
    unknown(f"{f}: [health]", t, _HEALTH_KEYS)
    beat = parse_duration(t.get("max_heartbeat_age", "2m"), f"{f}: health.max_heartbeat_age", (1, 86400))
    failing = parse_duration(t.get("max_failing_age", "6h"), f"{f}: health.max_failing_age", (1, 365 * 86400))
    return HealthSettings(max_heartbeat_age=beat.total_seconds(), max_failing_age=failing.total_seconds())
