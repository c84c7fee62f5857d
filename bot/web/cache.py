"""What keeps the reader's pages cheap under load (issues #24 and #29): the archive's version, rendered pages
cached by it, and the costly requests' own pool with a limit per client.

- `ArchiveVersion`: the counter row `archive_version` (migration m023_web_cache; triggers bump it on every write
  that changes what a reader sees: a publish, an approval, a correction, a poll, an editor's note), read from the
  database for every request, whichever process wrote. Reads are shared: a request waits for a read that
  started after it arrived (so it sees every change committed before it), and all requests arriving while one
  read runs share the next one, so a burst costs one read, not one per request.
- `Pages`: rendered bytes by (version, what): edition pages, the archive, search pages and the feed. A newer
  version empties it; one render per key however many ask at once; at most `max_bytes`. A page's forms carry
  `CSRF`, a random string replaced per request by the browser's token, so a cached page serves every browser.
- `Costly`: searches and the feed are made on their own threads (`[web] costly_threads`), never on the pages',
  and one client may have at most `[web] costly_per_client` of them being made at once; more answer 429.
  A cached answer costs no thread and is never refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import sys
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CSRF = "csrf" + secrets.token_hex(16)  # stands for the browser's token in a cached page; random per process
_ENTRY = 200  # bytes counted per entry on top of its body (a cached 404 costs something too)


class ArchiveVersion:
    """The archive's version, read on one thread of its own with its own connection."""

    def __init__(self, path: Path):
        self.path = path
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="web-version")
        self._conn: sqlite3.Connection | None = None
        self._next: asyncio.Future[int] | None = None  # the read the requests arriving now wait for
        self._running = False

    def _read(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, check_same_thread=False)  # only this thread uses it
            self._conn.execute("PRAGMA busy_timeout = 1000")
        return self._conn.execute("SELECT version FROM archive_version WHERE id = 1").fetchone()[0]

    async def get(self) -> int:
        """The version as committed when this call began (or later)."""
        mine = self._next
        if mine is None:
            mine = self._next = asyncio.get_running_loop().create_future()
            if not self._running:
                self._start()
        return await asyncio.shield(mine)

    def _start(self) -> None:
        waiting, self._next = self._next, None
        self._running = True
        read = asyncio.get_running_loop().run_in_executor(self.pool, self._read)

        def done(f: asyncio.Future[int]) -> None:
            self._running = False
            if waiting is not None and not waiting.done():
                if f.exception() is not None:
                    waiting.set_exception(f.exception())
                else:
                    waiting.set_result(f.result())
            if self._next is not None:  # requests that came while this read ran: one read for all of them
                self._start()

        read.add_done_callback(done)

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
        self.pool.submit(shut).result()
        self.pool.shutdown(wait=True)


class Pages:
    """Rendered bytes by (version, key); None is cached too (a page that does not exist at this version)."""

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = max_bytes
        self.version = -1
        self.entries: OrderedDict[Any, tuple[bytes, ...] | None] = OrderedDict()
        self.size = 0
        self.inflight: dict[tuple[int, Any], asyncio.Future[tuple[bytes, ...] | None]] = {}

    def peek(self, version: int, key: Any) -> tuple[bool, tuple[bytes, ...] | None]:
        """(found, the page's parts) without making it."""
        if version > self.version:
            self.entries.clear()
            self.size, self.version = 0, version
        if version == self.version and key in self.entries:
            self.entries.move_to_end(key)
            return True, self.entries[key]
        return False, None

    async def get(self, version: int, key: Any,
                  make: Callable[[], Awaitable[bytes | None]]) -> tuple[bytes, ...] | None:
        """The page's parts (join them with the browser's CSRF token), made by `make()` when not cached."""
        found, parts = self.peek(version, key)
        if found:
            return parts
        if (pending := self.inflight.get((version, key))) is None:
            pending = self.inflight[(version, key)] = asyncio.ensure_future(self._make(version, key, make))
            pending.add_done_callback(lambda _: self.inflight.pop((version, key), None))
        return await asyncio.shield(pending)

    async def _make(self, version: int, key: Any,
                    make: Callable[[], Awaitable[bytes | None]]) -> tuple[bytes, ...] | None:
        body = await make()
        parts = None if body is None else tuple(body.split(CSRF.encode()))
        if version == self.version:  # an older version's page is served to its request, never kept
            self.entries[key] = parts
            self.size += _ENTRY + (sum(map(len, parts)) if parts else 0)
            while self.size > self.max_bytes and self.entries:
                _, old = self.entries.popitem(last=False)
                self.size -= _ENTRY + (sum(map(len, old)) if old else 0)
        return parts


def join(parts: tuple[bytes, ...], token: str) -> bytes:
    """A cached page with this browser's CSRF token in its forms."""
    return parts[0] if len(parts) == 1 else token.encode().join(parts)


COSTLY_NICE = 10  # how much a costly thread defers to the others for the CPU (Linux's nice, per thread)


def lower_priority() -> None:
    """Run on each costly thread as it starts: on a busy machine the kernel then gives the CPU to the event loop
    and the pages' and unsubscribes' threads first (issue #24: on 2 cores, under a burst of searches, the slowest
    unsubscribe waited for a core; bench/web_load.py measures it). Linux only, where niceness is per thread;
    elsewhere `setpriority` on a thread id could renice another process, so nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COSTLY_NICE)
    except OSError as e:  # a container that forbids it: the threads keep the normal priority
        log.debug("cannot lower the costly threads' priority: %s", e)


class TooMany(Exception):
    """This client already has `per_client` costly requests being made."""


class Costly:
    """The threads searches and the feed are made on, with at most `per_client` of one client's at once (a
    request counts from `admit` until its work on the thread ends, even if the client has gone)."""

    def __init__(self, threads: int, per_client: int):
        self.per_client = per_client
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="web-costly", initializer=lower_priority)
        self.clients: dict[str, int] = {}

    def admit(self, client: str) -> bool:
        """Count one more request of `client`, or False when it has `per_client` already (answer 429)."""
        if self.clients.get(client, 0) >= self.per_client:
            return False
        self.clients[client] = self.clients.get(client, 0) + 1
        return True

    def _release(self, client: str) -> None:
        left = self.clients.get(client, 1) - 1
        if left > 0:
            self.clients[client] = left
        else:
            self.clients.pop(client, None)

    async def run(self, client: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the costly threads for a request `admit` let in; released when the thread is done."""
        loop = asyncio.get_running_loop()
        try:
            work = self.pool.submit(fn, *args)
        except BaseException:
            self._release(client)
            raise
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, client))
        return await asyncio.wrap_future(work)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
