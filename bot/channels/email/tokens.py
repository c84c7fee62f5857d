"""Unsubscribe tokens: the address itself plus an HMAC, so a link is checked without a database lookup.

A token is `base64url(address) "." base64url(HMAC-SHA256(key, domain || address)[:18])`: 144 bits of MAC,
URL-safe, unguessable without the key. The key comes from $PAPERBOT_SECRET_KEY, else from
`state_dir/secret.key` (generated once, mode 0600). Changing the key invalidates every link already mailed.
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
_TOKEN = re.compile(r"([A-Za-z0-9_-]{2,400})\.([A-Za-z0-9_-]{24})")  # fullmatch: `$` allows a "\n"


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


def unsubscribe_token(key: bytes, address: str) -> str:
    """A URL-safe token that proves paperbot issued it for `address` (already normalised)."""
    return f"{_b64(address.encode('utf-8'))}.{_b64(_mac(key, address))}"


def verify_token(key: bytes, token: str) -> str | None:
    """The address a genuine token carries; None for anything forged, altered or malformed."""
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
