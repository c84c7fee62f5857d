"""The checks a config must pass before anything is sent for real. Pure: a Config in, problems out.

A config can load and still be unfit to send: `from` and `list_id` left at the example domain `paperbot
init` writes, unsubscribe links pointing at `http://localhost:8080`, a `from` that is not an address, a
subject with a field no edition has (`{nope}` would reach every inbox as written). None of these stop the
outbox trial; all of them must stop a live send. `live_send_problems` is what the publishing pipeline, `paperbot
publish` and `paperbot run` ask before sending; `paperbot check` shows the same list (as notes while email is
still a trial) beside its network checks, whose one-line results are `CheckResult`s.

A local try-out (issue #25: `smtp_url` and `base_url` both on this machine, `local_trial`) sends for real but
only to this machine: a `localhost` base_url is what it needs, and example addresses reach nobody, so those are
notes there, not failures. A signing key too short to use fails everywhere (`secret_key_problem`): nothing could
be published with it, trial or not.
"""

from __future__ import annotations

import ipaddress
import os
import string
from collections.abc import Mapping
from email.utils import parseaddr
from urllib.parse import urlsplit

from bot.channels.email.render import SUBJECT_FIELDS
from bot.channels.email.settings import LOCAL_TRIAL, local_trial
from bot.channels.email.tokens import ENV_KEY, MIN_KEY_CHARS
from bot.config import CheckResult as CheckResult  # one line of `paperbot check`, defined low for sources/channels
from bot.config import Config
from bot.config.sections import broad
from bot.config.values import on_this_machine

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


GOOD_KEY_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
_LOCAL_OK = ("email.from", "email.list_id", "email.contact", "web.base_url")  # example values a local trial may keep


def secret_key_problem(env: dict[str, str] | None = None) -> str | None:
    """Why $PAPERBOT_SECRET_KEY cannot sign links (too short), with the command that makes a good one; None when
    it is unset (a key is made in the state folder) or long enough. Never says what the key is."""
    value = (os.environ if env is None else env).get(ENV_KEY, "").strip()
    if not value or len(value) >= MIN_KEY_CHARS:
        return None
    return (f"${ENV_KEY} is {len(value)} characters, shorter than {MIN_KEY_CHARS}: no unsubscribe or confirmation "
            f"link could be signed, so nothing would be published; make a good one with: {GOOD_KEY_COMMAND}")


def _problems(cfg: Config) -> list[tuple[str, str]]:
    """(key, what is wrong) for each value unfit for a live send, whether or not email is live yet; in a local
    trial, a base_url on this machine is what it needs, not a problem."""
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
    smtp_host = urlsplit(e.smtp_url).hostname or "" if e.smtp_url else ""
    if e.smtp_url and not on_this_machine(smtp_host) and (d := example_domain(smtp_host)):  # a local relay is real
        out.append(("email.smtp_url", f"the server is under the example domain {d}; set your own mail server"))
    if problem := subject_problem(e.subject):
        out.append(("email.subject", problem))
    host = urlsplit(cfg.web.base_url).hostname or ""
    if _local_host(host) and not local_trial(cfg):  # a local trial's base_url is on loopback
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
    empty when the config may send, or when nothing would be sent for real (the outbox trial). In a local trial
    only what would break it counts (a subject with an unknown field), not example addresses."""
    if not cfg.email.smtp_url:
        return []
    local = local_trial(cfg)
    return [f"{_where(cfg)}: {key}: {message}" for key, message in _problems(cfg)
            if not (local and key in _LOCAL_OK)]


def unfit_problems(cfg: Config, env: dict[str, str] | None = None) -> list[str]:
    """Everything that would stop this config from publishing at all (issue #25): a signing key too short,
    `live_send_problems`, then a channel whose credentials are half set. `paperbot run` refuses to start on any."""
    key = secret_key_problem(env)
    return ([f"{ENV_KEY}: {key}"] if key else []) + live_send_problems(cfg) + credential_problems(cfg, env)


def credential_problems(cfg: Config, env: Mapping[str, str] | None = None) -> list[str]:
    """An enabled channel live on some of its credentials but not all (issue #25): every round would fail on it.
    X needs its four PAPERBOT_X_* variables, Bluesky its handle and app password, Mastodon its token and
    `[mastodon] instance`."""
    from bot import channels as registry

    env = os.environ if env is None else env
    out = []
    for name in registry.NAMES:
        settings, module = getattr(cfg, name, None), registry.SETTINGS[name]
        wanted = getattr(module, "ENV_VARS", ())
        if settings is None or not module.enabled(settings) or len(wanted) < 2:
            continue
        missing = [v for v in wanted if not env.get(v, "").strip()]
        if missing and len(missing) < len(wanted):
            out.append(f"{name}: {', '.join(missing)} not set while {', '.join(v for v in wanted if v not in missing)} "
                       "is: set every one of them (a live channel) or none (a trial in the outbox)")
    mastodon = getattr(cfg, "mastodon", None)
    if (mastodon is not None and registry.SETTINGS["mastodon"].enabled(mastodon)
            and env.get("PAPERBOT_MASTODON_TOKEN", "").strip() and not mastodon.instance):
        out.append("mastodon: $PAPERBOT_MASTODON_TOKEN is set but [mastodon] instance is not: name the account's "
                   "server, e.g. instance = \"https://mastodon.social\"")
    return out


def trial_line(cfg: Config) -> str:
    """How email sends now, in words: live, a local trial (and where), or the outbox trial."""
    if local_trial(cfg):
        return (f"email is a {LOCAL_TRIAL}: mail goes to the server on this machine ({cfg.email.smtp_url}) and "
                f"links point at {cfg.web.base_url}; nothing reaches anyone else")
    return "email is live (smtp_url is set)" if cfg.email.smtp_url else "email is a trial (no smtp_url: the outbox)"


def config_results(cfg: Config, env: dict[str, str] | None = None) -> list[CheckResult]:
    """`paperbot check`'s config lines: each problem fails once email is live, and is a note before (and in a
    local trial, for the example addresses it may keep); a short signing key always fails."""
    found = _problems(cfg)
    live, local = bool(cfg.email.smtp_url), local_trial(cfg)
    out = []
    if key := secret_key_problem(env):
        out.append(CheckResult("secret key", False, key))
    out += [CheckResult(f"credentials {line.split(':', 1)[0]}", False, line.split(": ", 1)[1])
            for line in credential_problems(cfg, env)]
    if not found:
        return out + [CheckResult("config", True, f"{_where(cfg)} loads; nothing left at an example value; "
                                                  f"{trial_line(cfg)}")] + [
            CheckResult(f"config {key}", False, message, note=True) for key, message in proxy_warnings(cfg)]
    if local:
        out.append(CheckResult("config", True, f"{_where(cfg)} loads; {trial_line(cfg)}"))
    for key, message in found:
        note = not live or local and key in _LOCAL_OK
        later = ("" if not note else " (fine for a local trial; fix it before sending to readers)" if live
                 else " (fine for the outbox trial; fix it before setting smtp_url)")
        out.append(CheckResult(f"config {key}", False, message + later, note=note))
    out += [CheckResult(f"config {key}", False, message, note=True) for key, message in proxy_warnings(cfg)]
    return out


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
