"""Signed link tokens: unsubscribe links that name no address, and confirmation links for double opt-in.

An unsubscribe token (issue #13) is `"2." ref "." base64url(HMAC-SHA256(key, domain || ref)[:18])` where
`ref = base64url(HMAC-SHA256(key, ref-domain || address)[:12])`: an opaque id, the same in every email to
that address, that the web app maps back to the subscriber through `subscribers.ref`. Nothing in the link
(hence in server logs and proxies) reveals the address. Links mailed before issue #13 carried
`base64url(address) "." MAC`; `verify_token` still accepts them, so they keep working.

A confirmation token is `"c." nonce "." MAC(nonce)`: the nonce is random and stored with its expiry and
used-at time, so the link works once and only until it expires.

The key comes from $PAPERBOT_SECRET_KEY, else from `state_dir/secret.key` (generated once, mode 0600).
Changing the key invalidates every link already mailed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

ENV_KEY = "PAPERBOT_SECRET_KEY"
KEY_FILE = "secret.key"
MIN_KEY_CHARS = 32
_MAC_BYTES = 18
_DOMAIN = b"paperbot/unsubscribe/v1\x00"
_REF_DOMAIN = b"paperbot/subscriber-ref/v2\x00"
_REF_MAC_DOMAIN = b"paperbot/unsubscribe/v2\x00"
_CONFIRM_DOMAIN = b"paperbot/confirm/v1\x00"
_TOKEN = re.compile(r"([A-Za-z0-9_-]{2,400})\.([A-Za-z0-9_-]{24})")  # fullmatch: `$` allows a "\n"
_REF_TOKEN = re.compile(r"2\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{24})")
_CONFIRM_TOKEN = re.compile(r"c\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{24})")


class SecretKeyError(RuntimeError):
    """The signing key cannot be used; the message says how to fix it (never what the key is)."""


def load_secret_key(state_dir: Path) -> bytes:
    """The key that signs unsubscribe links: from the environment, else created once in the state folder."""
    env = os.environ.get(ENV_KEY)
    if env is not None and env.strip():
        if len(env.strip()) < MIN_KEY_CHARS:
            raise SecretKeyError(f"{ENV_KEY} is shorter than {MIN_KEY_CHARS} characters; make one with: "
                                 "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return env.strip().encode("utf-8")
    path = Path(state_dir) / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it in between: use theirs
        return _read_key(path)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    log.warning("%s is not set: generated a new unsubscribe signing key in %s (mode 0600). Back it up with "
                "the state folder; if it changes, unsubscribe links in emails already sent stop working.",
                ENV_KEY, path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_KEY_CHARS:
        raise SecretKeyError(f"{path}: the signing key is shorter than {MIN_KEY_CHARS} characters; "
                             "delete the file to have a new one made")
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users; chmod 600 it", path)
    return key.encode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, address: str) -> bytes:
    return hmac.new(key, _DOMAIN + address.encode("utf-8"), hashlib.sha256).digest()[:_MAC_BYTES]


def legacy_unsubscribe_token(key: bytes, address: str) -> str:
    """The pre-issue-#13 form, carrying the address itself: no longer mailed, still verified."""
    return f"{_b64(address.encode('utf-8'))}.{_b64(_mac(key, address))}"


def subscriber_ref(key: bytes, address: str) -> str:
    """The opaque id of `address` (normalised) in links: 96 bits, unguessable and unlinkable without the key."""
    return _b64(hmac.new(key, _REF_DOMAIN + address.encode("utf-8"), hashlib.sha256).digest()[:12])


def _signed(key: bytes, domain: bytes, value: str) -> str:
    return _b64(hmac.new(key, domain + value.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES])


def unsubscribe_token(key: bytes, address: str) -> str:
    """The token new mail carries for `address` (already normalised): an opaque ref and its MAC."""
    ref = subscriber_ref(key, address)
    return f"2.{ref}.{_signed(key, _REF_MAC_DOMAIN, ref)}"


def verify_ref(key: bytes, token: str) -> str | None:
    """The subscriber ref a genuine new-form token carries; None for anything else."""
    m = _REF_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if not m or not hmac.compare_digest(m.group(2), _signed(key, _REF_MAC_DOMAIN, m.group(1))):
        return None
    return m.group(1)


def confirm_token(key: bytes, nonce: str) -> str:
    """The link token for a stored confirmation nonce (22 URL-safe characters)."""
    return f"c.{nonce}.{_signed(key, _CONFIRM_DOMAIN, nonce)}"


def verify_confirm(key: bytes, token: str) -> str | None:
    """The nonce of a genuine confirmation token; None for anything forged, altered or malformed."""
    m = _CONFIRM_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if not m or not hmac.compare_digest(m.group(2), _signed(key, _CONFIRM_DOMAIN, m.group(1))):
        return None
    return m.group(1)


def new_nonce() -> str:
    return secrets.token_urlsafe(16)  # 22 characters


def csrf_token(key: bytes, cookie: str) -> str:
    """The form field matching the browser's CSRF cookie (double submit, signed so it cannot be set)."""
    return _b64(hmac.new(key, b"paperbot/csrf/v1\x00" + cookie.encode("utf-8"), hashlib.sha256).digest()[:18])


def verify_token(key: bytes, token: str) -> str | None:
    """The address an old-form (address-carrying) token holds; None for anything forged, altered or
    malformed, and for new-form tokens (see `verify_ref`)."""
    m = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if not m:
        return None
    try:
        address = _unb64(m.group(1)).decode("utf-8")
        mac = _unb64(m.group(2))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if _b64(address.encode("utf-8")) != m.group(1):  # one spelling per token: no variants of a valid one
        return None
    if not hmac.compare_digest(mac, _mac(key, address)):
        return None
    return address


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"
