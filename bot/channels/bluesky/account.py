"""The account paperbot posts as: its session (kept in the state folder, refreshed, created only when needed)
and the calls made with it, each retried once after a refresh when the server says the token expired.

The session file `<state>/bluesky/session.json` is written atomically with mode 0600 and holds the tokens of
one handle at one service; a different handle or service in the config starts a new session. Neither tokens
nor the app password are ever logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.channels.base import storage_error
from bot.channels.bluesky import client as bc

log = logging.getLogger(__name__)
T = TypeVar("T")


def session_path(state_dir: Path) -> Path:
    return state_dir / "bluesky" / "session.json"


def load_session(path: Path, service: str, handle: str) -> bc.Session | None:
    """The saved session of `handle` at `service`, None if there is none (or it is unreadable: log in again)."""
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("service") != service or data.get("login") != handle:
            return None
        return bc.Session.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as e:
        log.warning("bluesky: the saved session %s is unreadable (%s); logging in again", path, type(e).__name__)
        return None


def save_session(path: Path, service: str, handle: str, session: bc.Session) -> None:
    """Atomically, readable by the owner only; StorageError naming the path when the disk refuses."""
    data = json.dumps({"service": service, "login": handle, **session.to_json()}).encode("utf-8")
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(e, "write the Bluesky session", path) from e


class Account:
    """Calls as the account of `credentials` at `xrpc.service`, its session kept at `path`."""

    def __init__(self, xrpc: bc.Xrpc, credentials: bc.Credentials, path: Path,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.xrpc, self.credentials, self.path, self.clock = xrpc, credentials, path, clock
        self.session: bc.Session | None = None

    @property
    def did(self) -> str:
        return self.login().did

    def _keep(self, answer: dict) -> bc.Session:
        try:
            session = bc.Session.from_json(answer)
        except ValueError as e:
            raise bc.BskyError(bc.UNCERTAIN, f"the session answer is incomplete: {e}") from e
        self.session = session
        save_session(self.path, self.xrpc.service, self.credentials.handle, session)
        return session

    def create_session(self) -> bc.Session:
        log.info("bluesky: logging in as %s", self.credentials.handle)
        return self._keep(self.xrpc.call("POST", "com.atproto.server.createSession", body={
            "identifier": self.credentials.handle, "password": self.credentials.password}))

    def refresh(self) -> bc.Session:
        """A fresh pair of tokens from the refresh token; a new login when the server refuses it."""
        assert self.session is not None
        try:
            return self._keep(self.xrpc.call("POST", "com.atproto.server.refreshSession",
                                             token=self.session.refresh_jwt))
        except bc.BskyError as e:
            if e.kind not in (bc.EXPIRED, bc.REFUSED):
                raise
            log.info("bluesky: the session could not be refreshed (%s); logging in again", e.error or e.status)
            return self.create_session()

    def login(self) -> bc.Session:
        """The session to call with: the one in memory or saved, refreshed when its access token is about to
        expire; created only when there is none."""
        if self.session is None:
            self.session = load_session(self.path, self.xrpc.service, self.credentials.handle)
            if self.session is None:
                return self.create_session()
        exp = bc.jwt_exp(self.session.access_jwt)
        if exp is None or exp <= self.clock() + bc.REFRESH_AHEAD:
            return self.refresh()
        return self.session

    def _authed(self, call: Callable[[str], T]) -> T:
        token = self.login().access_jwt
        try:
            return call(token)
        except bc.BskyError as e:
            if e.kind != bc.EXPIRED:
                raise
        return call(self.refresh().access_jwt)  # an expired token: nothing was done; once more, refreshed

    def create_record(self, collection: str, rkey: str, record: dict) -> tuple[str, str]:
        """(uri, cid) of the record made at `rkey` in the account's repository."""
        def call(token: str) -> dict:
            return self.xrpc.call("POST", "com.atproto.repo.createRecord", token=token, now=self.clock(), body={
                "repo": self.did, "collection": collection, "rkey": rkey, "validate": True, "record": record})
        answer = self._authed(call)
        uri, cid = answer.get("uri"), answer.get("cid")
        if not (isinstance(uri, str) and isinstance(cid, str)):
            raise bc.BskyError(bc.UNCERTAIN, "createRecord answered without uri and cid")
        return uri, cid

    def get_record(self, repo: str, collection: str, rkey: str) -> tuple[str, str, dict] | None:
        """(uri, cid, value) of the record, None when the repository has no record there."""
        def call(token: str) -> dict:
            return self.xrpc.call("GET", "com.atproto.repo.getRecord", token=token, now=self.clock(),
                                  params={"repo": repo, "collection": collection, "rkey": rkey})
        try:
            answer = self._authed(call)
        except bc.BskyError as e:
            if e.kind == bc.REFUSED and (e.error == "RecordNotFound" or e.status == 404):
                return None
            raise
        uri, cid, value = answer.get("uri"), answer.get("cid"), answer.get("value")
        if not (isinstance(uri, str) and isinstance(cid, str) and isinstance(value, dict)):
            raise bc.BskyError(bc.UNCERTAIN, "getRecord answered without uri, cid and value")
        return uri, cid, value

    def profile(self) -> dict[str, Any]:
        """The account's profile (`app.bsky.actor.getProfile`): what `paperbot check` shows."""
        session = self.login()
        return self._authed(lambda token: self.xrpc.call("GET", "app.bsky.actor.getProfile", token=token,
                                                         params={"actor": session.did}))
