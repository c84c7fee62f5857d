"""The checks a config must pass before anything is sent for real. Pure: a Config in, problems out.

A config can load and still be unfit to send: `from` and `list_id` left at the example domain `paperbot
init` writes, unsubscribe links pointing at `http://localhost:8080`, a `from` that is not an address, a
subject with a field no edition has (`{nope}` would reach every inbox as written). None of these stop the
outbox trial; all of them must stop a live send. `live_send_problems` is what the publishing pipeline, `paperbot
publish` and `paperbot run` ask before sending; `paperbot check` shows the same list (as notes while email is
still a trial) beside its network checks, whose one-line results are `CheckResult`s.
"""

from __future__ import annotations

import ipaddress
import string
from email.utils import parseaddr
from urllib.parse import urlsplit

from bot.channels.email.render import SUBJECT_FIELDS
from bot.config import CheckResult as CheckResult  # one line of `paperbot check`, defined low for sources/channels
from bot.config import Config
from bot.config.sections import broad

EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net")  # RFC 2606: documentation, never a real sender
RESERVED_TLDS = ("example", "invalid", "localhost")  # RFC 2606/6761 names that never reach anyone


def example_domain(host: str) -> str | None:
    """The example or reserved domain `host` is under (`example.org`, `localhost`), else None."""
    host = host.strip().rstrip(".").lower()
    for d in EXAMPLE_DOMAINS:
        if host == d or host.endswith("." + d):
            return d
    tld = host.rpartition(".")[2]
    if tld in RESERVED_TLDS:
        return host if host == tld else f".{tld}"
    return None


def _local_host(host: str) -> bool:
    """Only this machine (or no machine): localhost, a loopback, unspecified or link-local address."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified or ip.is_link_local


def subject_problem(pattern: str) -> str | None:
    """Why `[email] subject` would not render as meant, or None: a broken pattern, or a field no edition has
    (a conversion or an attribute, `{title!r}` or `{title.__class__}`, counts as unknown too)."""
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as e:
        return f"{pattern!r} is not a valid pattern ({e}); write fields as {{title}}, and a brace as {{{{"
    unknown = [name for _, name, _, conv in parts if name is not None and (name not in SUBJECT_FIELDS or conv)]
    if unknown:
        return (f"unknown field {{{unknown[0]}}} in {pattern!r}; known: "
                + ", ".join(f"{{{f}}}" for f in SUBJECT_FIELDS))
    return None


def _problems(cfg: Config) -> list[tuple[str, str]]:
    """(key, what is wrong) for each value unfit for a live send, whether or not email is live yet."""
    e, out = cfg.email, []
    address = parseaddr(e.sender)[1]
    if "@" not in address or not address.partition("@")[2] or " " in address:
        out.append(("email.from", f"{e.sender!r} is not an email address; write `Name <you@your.domain>`"))
    elif d := example_domain(address.rpartition("@")[2]):
        out.append(("email.from", f"{e.sender!r} is at the example domain {d}; use an address at your own "
                                  "domain (mail from it would be refused or lost)"))
    if e.list_id and (d := example_domain(e.list_id)):
        out.append(("email.list_id", f"{e.list_id!r} is under the example domain {d}; use a name under your "
                                     "own domain, e.g. papers.your.domain"))
    contact = parseaddr(e.contact)[1] if e.contact else ""
    if "@" in contact and (d := example_domain(contact.rpartition("@")[2])):
        out.append(("email.contact", f"{contact!r} is at the example domain {d}; readers could not write to it"))
    if e.smtp_url and (d := example_domain(urlsplit(e.smtp_url).hostname or "")):
        out.append(("email.smtp_url", f"the server is under the example domain {d}; set your own mail server"))
    if problem := subject_problem(e.subject):
        out.append(("email.subject", problem))
    host = urlsplit(cfg.web.base_url).hostname or ""
    if _local_host(host):
        out.append(("web.base_url", f"{cfg.web.base_url!r} points at this machine: readers' unsubscribe and "
                                    "\"view in browser\" links would not work; set the public address of the web "
                                    "app (e.g. https://papers.your.domain)"))
    elif d := example_domain(host):
        out.append(("web.base_url", f"{cfg.web.base_url!r} is under the example domain {d}; set the public "
                                    "address of the web app"))
    return out


def _where(cfg: Config) -> str:
    return str(cfg.path) if cfg.path else "built-in config"


def live_send_problems(cfg: Config) -> list[str]:
    """One line per problem that must stop a live send (email with `smtp_url`), naming the file and the key;
    empty when the config may send, or when nothing would be sent for real (the outbox trial)."""
    if not cfg.email.smtp_url:
        return []
    return [f"{_where(cfg)}: {key}: {message}" for key, message in _problems(cfg)]


def config_results(cfg: Config) -> list[CheckResult]:
    """`paperbot check`'s config lines: each problem fails once email is live, and is a note before; then the
    web app's warnings (`proxy_warnings`), as notes."""
    found = _problems(cfg)
    live = bool(cfg.email.smtp_url)
    warnings = [CheckResult(f"config {key}", False, message, note=True) for key, message in proxy_warnings(cfg)]
    if not found:
        how = "email is live (smtp_url is set)" if live else "email is a trial (no smtp_url: the outbox)"
        return [CheckResult("config", True, f"{_where(cfg)} loads; nothing left at an example value; {how}"),
                *warnings]
    later = "" if live else " (fine for the outbox trial; fix it before setting smtp_url)"
    return [CheckResult(f"config {key}", False, message + later, note=not live) for key, message in found] + warnings


def behind_proxy(cfg: Config) -> bool:
    """Whether readers reach the app through a proxy: paperbot serves plain HTTP, so an `https:` base_url (or
    one on another port than `listen`'s) is answered by something in front of it."""
    url = urlsplit(cfg.web.base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme == "https" or (not _local_host(url.hostname or "") and port != cfg.web.host_port[1])


def proxy_warnings(cfg: Config) -> list[tuple[str, str]]:
    """(key, warning) for a proxy set-up that defeats the per-client limits (issue #24): behind a proxy with no
    `trusted_proxies`, every reader is the proxy's one address and shares one subscribe bucket; a trusted range
    wider than a site's believes X-Forwarded-For from strangers, who then pick any address they like."""
    out = []
    if behind_proxy(cfg) and not cfg.web.trusted_proxies:
        out.append(("web.trusted_proxies", f"{cfg.web.base_url!r} is answered by a proxy, but no proxy is "
                    "trusted: every reader counts as the proxy's one address and shares one subscribe limit; "
                    'list the proxy\'s address, e.g. trusted_proxies = ["127.0.0.1"]'))
    for net in cfg.web.trusted_proxies:
        if broad(net):
            out.append(("web.trusted_proxies", f"{net} is far wider than one site's proxies and holds public "
                        "addresses: any client there can name itself in X-Forwarded-For; list your proxy alone"))
    return out
