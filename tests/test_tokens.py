"""Unsubscribe tokens: they round-trip, resist forgery and malformed input, and the key is handled safely."""

from __future__ import annotations

import base64
import logging
import re
import stat

import pytest

from bot.channels.email.tokens import (
    ENV_KEY,
    KEY_FILE,
    SecretKeyError,
    confirm_token,
    legacy_unsubscribe_token,
    load_secret_key,
    subscriber_ref,
    unsubscribe_token,
    unsubscribe_url,
    verify_confirm,
    verify_ref,
    verify_token,
)

KEY = b"k" * 32
OTHER = b"o" * 32


def _b64(s: str) -> str:
    return base64.urlsafe_b64encode(s.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("address", ["reader@example.org", "o'hara&co+tag@example.co.uk",
                                     "a@xn--bcher-kva.example"])
def test_round_trip_and_url_safe(address):
    token = legacy_unsubscribe_token(KEY, address)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    mac = token.split(".")[1]
    assert len(base64.urlsafe_b64decode(mac + "==")) * 8 >= 128
    assert verify_token(KEY, token) == address
    assert legacy_unsubscribe_token(KEY, address) == token  # deterministic: the same link in every email


def test_forged_and_altered_tokens_fail():
    token = legacy_unsubscribe_token(KEY, "victim@example.org")
    payload, mac = token.split(".")
    assert verify_token(OTHER, token) is None  # another key
    assert verify_token(KEY, f"{_b64('other@example.org')}.{mac}") is None  # someone else's address, old MAC
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert verify_token(KEY, f"{payload}.{flipped}") is None
    # a token made with another key for the attacker's chosen address
    assert verify_token(KEY, legacy_unsubscribe_token(OTHER, "victim@example.org")) is None


@pytest.mark.parametrize("bad", [
    "", ".", "abc", "abc.", ".abc", "a.b.c", "!!!.AAAAAAAAAAAAAAAAAAAAAAAA", "YQ.short",
    "YQ.AAAA AAAAAAAAAAAAAAAAAAA",
    "x" * 5000 + ".AAAAAAAAAAAAAAAAAAAAAAAA", "_w.AAAAAAAAAAAAAAAAAAAAAAAA",  # not UTF-8 inside
    None, 12, b"bytes.token",
])
def test_malformed_tokens_are_none(bad):
    assert verify_token(KEY, bad) is None


def test_non_canonical_base64_spelling_is_refused():
    token = legacy_unsubscribe_token(KEY, "ab@example.org")
    payload, mac = token.split(".")
    # "ab@example.org" is 14 bytes: the last base64 character carries 2 unused bits that decoding ignores
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variant = payload[:-1] + last[last.index(payload[-1]) ^ 1]
    assert base64.urlsafe_b64decode(variant + "==") == b"ab@example.org"
    assert verify_token(KEY, f"{variant}.{mac}") is None


def test_a_token_with_a_trailing_newline_is_refused():
    """issue #8: `$` matched before a trailing newline, so a valid token + "\n" (a link ending in %0A) was a
    second accepted spelling of it. Only the exact token is genuine."""
    token = legacy_unsubscribe_token(KEY, "victim@example.org")
    assert verify_token(KEY, token) == "victim@example.org"
    for variant in (token + "\n", token + "\r\n", "\n" + token, token + " "):
        assert verify_token(KEY, variant) is None


def test_unsubscribe_url():
    assert unsubscribe_url("https://news.example.org/", "abc.def") == "https://news.example.org/unsubscribe/abc.def"


def test_key_from_environment_creates_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_KEY, "  " + "s" * 40 + "\n")
    assert load_secret_key(tmp_path) == b"s" * 40
    assert not (tmp_path / KEY_FILE).exists()
    monkeypatch.setenv(ENV_KEY, "too-short")
    with pytest.raises(SecretKeyError, match="shorter than 32") as e:
        load_secret_key(tmp_path)
    assert "too-short" not in str(e.value)


def test_key_file_generated_once_private_and_never_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(ENV_KEY, raising=False)
    state = tmp_path / "state"
    with caplog.at_level(logging.WARNING, logger="bot.channels.email.tokens"):
        key = load_secret_key(state)
    path = state / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and path.read_text().strip().encode() == key
    assert len(caplog.records) == 1 and ENV_KEY in caplog.text and str(path) in caplog.text
    assert key.decode() not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot.channels.email.tokens"):
        assert load_secret_key(state) == key  # the same key next time, silently
    assert caplog.records == []
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bot.channels.email.tokens"):
        assert load_secret_key(state) == key
    assert "chmod 600" in caplog.text and key.decode() not in caplog.text
    path.write_text("short\n")
    with pytest.raises(SecretKeyError, match="delete the file"):
        load_secret_key(state)


def test_new_links_carry_an_opaque_ref_not_the_address():
    """issue #13: the token new mail carries names no address (not even base64-encoded), is the same in every
    email, verifies to the subscriber's ref, and a forged or altered one does not."""
    address = "reader@example.org"
    token = unsubscribe_token(KEY, address)
    assert token == unsubscribe_token(KEY, address)
    assert "reader" not in token and _b64(address)[:8] not in token and "@" not in token
    assert verify_ref(KEY, token) == subscriber_ref(KEY, address)
    assert verify_ref(OTHER, token) is None
    assert verify_ref(KEY, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert verify_token(KEY, token) is None  # never mistaken for the old form
    assert subscriber_ref(KEY, address) != subscriber_ref(OTHER, address)


def test_old_links_still_verify():
    """issue #13: links mailed before carry the address; they keep working."""
    old = legacy_unsubscribe_token(KEY, "reader@example.org")
    assert verify_token(KEY, old) == "reader@example.org"
    assert verify_ref(KEY, old) is None


def test_confirmation_tokens_are_signed():
    """issue #13: a confirmation link's nonce is signed; anything altered or made with another key fails."""
    token = confirm_token(KEY, "n" * 22)
    assert verify_confirm(KEY, token) == "n" * 22
    assert verify_confirm(OTHER, token) is None
    assert verify_confirm(KEY, confirm_token(KEY, "m" * 22).replace("m" * 22, "n" * 22)) is None
    assert verify_confirm(KEY, token + "\n") is None
